package monitor

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Instrument exports the monitor's figures as OpenTelemetry metrics on mp,
// read from Summary when the meter collects:
//
//	memstore.monitor.sampled        entries checked
//	memstore.monitor.decided        samples decided for a window (attribute memstore.monitor.window, e.g. "1s")
//	memstore.monitor.consistent     of those, consistent within the window
//	memstore.monitor.consistency    their share (gauge, 0 to 1)
//	memstore.monitor.stale          entries still stale past the largest window
//	memstore.monitor.staleness.worst  the longest staleness seen (gauge, s)
//	memstore.monitor.ops            Redis commands and SQL queries made (attribute memstore.monitor.tier)
//	memstore.monitor.errors         failed reads
//
// Every instrument carries memstore.namespace = Config.Name. Unregister
// the returned registration to stop.
func (m *Monitor) Instrument(mp metric.MeterProvider) (metric.Registration, error) {
	meter := mp.Meter("github.com/memstore/memstore/monitor")
	var errs []error
	counter := func(name, unit, desc string) metric.Int64ObservableCounter {
		c, err := meter.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	sampled := counter("memstore.monitor.sampled", "{entry}", "Cache entries checked against their rows.")
	decided := counter("memstore.monitor.decided", "{entry}", "Samples decided for a window: seen consistent within it, or stale past it.")
	consistent := counter("memstore.monitor.consistent", "{entry}", "Samples seen consistent within the window.")
	stale := counter("memstore.monitor.stale", "{entry}", "Entries still stale past the largest window.")
	ops := counter("memstore.monitor.ops", "{op}", "Redis commands and SQL queries the monitor made.")
	failed := counter("memstore.monitor.errors", "{error}", "Failed reads.")
	share, err := meter.Float64ObservableGauge("memstore.monitor.consistency", metric.WithUnit("1"),
		metric.WithDescription("Share of decided samples consistent within the window."))
	errs = append(errs, err)
	worst, err := meter.Float64ObservableGauge("memstore.monitor.staleness.worst", metric.WithUnit("s"),
		metric.WithDescription("Longest time a cache entry was seen stale after its row was read."))
	errs = append(errs, err)
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	ns := attribute.Key("memstore.namespace").String(m.cfg.Name)
	plain := metric.WithAttributeSet(attribute.NewSet(ns))
	windowOpts := make([]metric.ObserveOption, len(m.cfg.Windows))
	for i, w := range m.cfg.Windows {
		windowOpts[i] = metric.WithAttributeSet(attribute.NewSet(ns, attribute.String("memstore.monitor.window", w.String())))
	}
	tierRedis := metric.WithAttributeSet(attribute.NewSet(ns, attribute.String("memstore.monitor.tier", "redis")))
	tierDB := metric.WithAttributeSet(attribute.NewSet(ns, attribute.String("memstore.monitor.tier", "db")))
	return meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := m.Summary()
		o.ObserveInt64(sampled, s.Sampled, plain)
		o.ObserveInt64(stale, s.Stale, plain)
		o.ObserveInt64(failed, s.Errors, plain)
		o.ObserveInt64(ops, s.RedisOps, tierRedis)
		o.ObserveInt64(ops, s.DBOps, tierDB)
		o.ObserveFloat64(worst, s.WorstStaleness.Seconds(), plain)
		for i, w := range s.Windows {
			o.ObserveInt64(decided, w.Decided, windowOpts[i])
			o.ObserveInt64(consistent, w.Consistent, windowOpts[i])
			o.ObserveFloat64(share, w.Share, windowOpts[i])
		}
		return nil
	}, sampled, decided, consistent, stale, ops, failed, share, worst)
}
