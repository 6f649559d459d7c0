package memstore

import (
	"context"
	"errors"
	"reflect"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// Metrics and traces, in OpenTelemetry's API (Options.MeterProvider,
// Options.TracerProvider; by default the global providers, no-ops until the
// application sets them).
//
// Cost. The counters are asynchronous: the meter reads the store's own
// atomic counters (the ones Stats returns) when it collects, so the hit
// path does no metric work for them. What a call pays is the latency
// histogram (two clock reads and one Record with attributes built at New)
// and, only while a tracer is live, a span. With the default global
// providers and none set, no span is started: a call allocates nothing
// for telemetry.
//
// Spans. Every public call is one span, "memstore.get", "memstore.set" and
// so on, and every step of the protocol inside it (the HGET, the get, fill,
// begin scripts, the DB load and write, a fence) is a pair of events on
// it, "redis.get" and "redis.get done", so a slow Get shows where its time
// went: Redis, a lease wait (a run of redis.get events a few milliseconds
// apart), or the database. Keys are not recorded (they are often user ids).
//
// Other instrumentation composes: the store passes each call's context,
// and so its span, to go-redis and to database/sql. With go-redis's
// redisotel (redisotel.InstrumentTracing(rdb)) every Redis command is a
// child span of the memstore span, and with pgx's tracer (pgx.ConnConfig's
// Tracer, e.g. otelpgx, through pgx/v5/stdlib) so is every SQL statement.
// memstore's own events then say which protocol step each child served.

// scope is the instrumentation scope of the store's meter and tracer.
const scope = "github.com/memstore/memstore"

// Attribute keys of the store's metrics and spans.
const (
	attrNamespace = attribute.Key("memstore.namespace")
	attrOperation = attribute.Key("memstore.operation")
	attrOutcome   = attribute.Key("memstore.outcome")
	attrErrorType = attribute.Key("error.type")
)

// The operations a call is measured as.
type opKind uint8

const (
	opGet opKind = iota
	opRefresh
	opGetMany
	opSet
	opCAS
	opDelete
	opSetMany
	opDeleteMany
	numOps
)

var opNames = [numOps]string{"get", "refresh", "getmany", "set", "cas", "delete", "setmany", "deletemany"}

// The outcomes a call ends with: ok, not_found, or the error kinds of
// Stats.Errors (plus "error" for any other).
type outcome uint8

const (
	outOK outcome = iota
	outNotFound
	outConflict
	outUnknown
	outUnavailable
	outCanceled
	outInvalid
	outCodec
	outError
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"ok", "not_found", "conflict", "unknown", "unavailable", "canceled", "invalid", "codec", "error"}

func outcomeOf(err error) outcome {
	switch {
	case err == nil:
		return outOK
	case errors.Is(err, ErrNotFound):
		return outNotFound
	case errors.Is(err, ErrInvalidKey), errors.Is(err, ErrTooLarge), errors.Is(err, ErrInvalidOption):
		return outInvalid
	case errors.Is(err, ErrCodec):
		return outCodec
	case errors.Is(err, ErrConflict):
		return outConflict
	case errors.Is(err, ErrOutcomeUnknown):
		return outUnknown
	case isCtxErr(err):
		return outCanceled
	case errors.Is(err, ErrUnavailable):
		return outUnavailable
	}
	return outError
}

// telemetry is a store's meter and tracer, and what it built from them.
type telemetry struct {
	duration metric.Float64Histogram
	// record holds one option list per operation and outcome, built once,
	// so that a Record allocates nothing.
	record [numOps][numOutcomes][]metric.RecordOption
	reg    metric.Registration

	// tracer is the fixed tracer of Options.TracerProvider; nil when the
	// store follows the global provider (see tracing) or traces nothing.
	tracer      trace.Tracer
	followsGlob bool
	glob        atomic.Pointer[globTracer]
	spanOpts    [numOps][]trace.SpanStartOption
	spanNames   [numOps]string
	// events is set while spans may be recorded: before and after then
	// look for a recording span in the step's context.
	events atomic.Bool
}

// globTracer caches the tracer of the global provider it came from.
type globTracer struct {
	tp     trace.TracerProvider
	tracer trace.Tracer // nil: that provider records nothing
}

// newTelemetry builds the store's instruments. The asynchronous ones read
// st, brk and queue when the meter collects.
func newTelemetry(ns string, mp metric.MeterProvider, tp trace.TracerProvider, st *stats, brk *breaker, queue func() int) (*telemetry, error) {
	t := &telemetry{}
	nsAttr := attrNamespace.String(ns)
	for op := range numOps {
		t.spanNames[op] = "memstore." + opNames[op]
		t.spanOpts[op] = []trace.SpanStartOption{
			trace.WithSpanKind(trace.SpanKindInternal),
			trace.WithAttributes(nsAttr, attrOperation.String(opNames[op])),
		}
	}
	switch {
	case tp == nil, globalDelegate(tp):
		// The global provider, or its stand-in taken before the
		// application set one (it forwards to it): follow the global.
		t.followsGlob = true
	case isNoopTracer(tp):
	default:
		t.tracer = tp.Tracer(scope)
		t.events.Store(true)
	}

	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter(scope)
	var err error
	t.duration, err = m.Float64Histogram("memstore.operation.duration",
		metric.WithDescription("Duration of store calls, by operation and outcome."),
		metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
	if err != nil {
		return nil, err
	}
	for op := range numOps {
		for o := range numOutcomes {
			set := attribute.NewSet(nsAttr, attrOperation.String(opNames[op]), attrOutcome.String(outcomeNames[o]))
			t.record[op][o] = []metric.RecordOption{metric.WithAttributeSet(set)}
		}
	}

	// The counters, each one of the store's atomic counters.
	type counter struct {
		name, unit, desc string
		attrs            attribute.Set
		v                func() uint64
	}
	with := func(kvs ...attribute.KeyValue) attribute.Set {
		return attribute.NewSet(append([]attribute.KeyValue{nsAttr}, kvs...)...)
	}
	plain := with()
	counters := []counter{
		{"memstore.hits", "{call}", "Gets answered from Redis.", plain, st.hits.Load},
		{"memstore.misses", "{call}", "Gets that had to read the database.", plain, st.misses.Load},
		{"memstore.db.loads", "{row}", "Rows read from the database for Gets.", plain, st.dbLoads.Load},
		{"memstore.coalesced", "{call}", "Gets that shared another caller's load in this process.", plain, st.coalesced.Load},
		{"memstore.lease.waits", "{call}", "Gets that waited for another reader's fill lease.", plain, st.leaseWaits.Load},
		{"memstore.lease.takeovers", "{call}", "Lease waits that ran out and took the lease over.", plain, st.takeovers.Load},
		{"memstore.fills", "{fill}", "Fills of loaded rows into Redis, by outcome.", with(attrOutcome.String("installed")), st.fills.Load},
		{"memstore.fills", "{fill}", "Fills of loaded rows into Redis, by outcome.", with(attrOutcome.String("rejected")), st.rejected.Load},
		{"memstore.intents", "{intent}", "Write intents recorded.", plain, st.intents.Load},
		{"memstore.reconciler.repairs", "{entry}", "Stale cache entries the reconciler dropped.", plain, st.repairs.Load},
		{"memstore.reconciler.ends", "{write}", "Committed writes whose end the reconciler re-applied.", plain, st.reconciled.Load},
		{"memstore.corrupt", "{entry}", "Cache entries dropped for a bad header, checksum or format.", plain, st.corrupt.Load},
		{"memstore.fences", "{stripe}", "Stripes fenced after Redis lost their marker.", plain, st.fences.Load},
		{"memstore.fenced_writes", "{write}", "Writes that began again because their stripe was fenced.", plain, st.fencedWrites.Load},
		{"memstore.cleanup.dropped", "{task}", "Background cleanup tasks dropped on a full queue.", plain, st.droppedTasks.Load},
		{"memstore.breaker.opens", "{open}", "Times the Redis breaker opened.", plain, brk.opens.Load},
	}
	for _, e := range []struct {
		kind string
		v    func() uint64
	}{
		{"redis", st.errRedis.Load}, {"db", st.errDB.Load}, {"codec", st.errCodec.Load},
		{"invalid", st.errInvalid.Load}, {"conflict", st.errConflict.Load}, {"unknown", st.errUnkn.Load},
		{"canceled", st.errCanceled.Load},
	} {
		counters = append(counters, counter{"memstore.errors", "{error}", "Failed calls and Redis round trips, by kind (see Stats.Errors).", with(attrErrorType.String(e.kind)), e.v})
	}
	instruments := map[string]metric.Int64ObservableCounter{}
	var observables []metric.Observable
	for _, c := range counters {
		if _, ok := instruments[c.name]; ok {
			continue
		}
		ins, err := m.Int64ObservableCounter(c.name, metric.WithUnit(c.unit), metric.WithDescription(c.desc))
		if err != nil {
			return nil, err
		}
		instruments[c.name] = ins
		observables = append(observables, ins)
	}
	breakerOpen, err := m.Int64ObservableGauge("memstore.breaker.open",
		metric.WithDescription("1 while the Redis breaker is open (reads go to the database, writes fail fast), else 0."))
	if err != nil {
		return nil, err
	}
	queued, err := m.Int64ObservableGauge("memstore.cleanup.queue", metric.WithUnit("{task}"),
		metric.WithDescription("Background tasks (write ends, unleases) waiting in the queue."))
	if err != nil {
		return nil, err
	}
	observables = append(observables, breakerOpen, queued)
	plainOpt := metric.WithAttributeSet(plain)
	t.reg, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for _, c := range counters {
			o.ObserveInt64(instruments[c.name], int64(c.v()), metric.WithAttributeSet(c.attrs))
		}
		open := int64(0)
		if !brk.allow() {
			open = 1
		}
		o.ObserveInt64(breakerOpen, open, plainOpt)
		o.ObserveInt64(queued, int64(queue()), plainOpt)
		return nil
	}, observables...)
	if err != nil {
		return nil, err
	}
	return t, nil
}

// close unregisters the store's callback, so a closed store is no longer
// collected.
func (t *telemetry) close() {
	if t != nil && t.reg != nil {
		_ = t.reg.Unregister()
	}
}

// isNoopTracer reports whether tp is known to record nothing.
func isNoopTracer(tp trace.TracerProvider) bool {
	switch tp.(type) {
	case tracenoop.TracerProvider, *tracenoop.TracerProvider:
		return true
	}
	return false
}

// globalDelegate reports whether tp is OpenTelemetry's global provider as
// it is until the application sets one: a stand-in that records nothing
// and forwards to the provider set later. Starting a span on it still
// costs a context, so the store asks, per call, whether the global provider
// is still that stand-in (one atomic load).
func globalDelegate(tp trace.TracerProvider) bool {
	t := reflect.TypeOf(tp)
	return t.Kind() == reflect.Pointer && t.Elem().PkgPath() == "go.opentelemetry.io/otel/internal/global"
}

// tracing returns the tracer a call starts its span with, nil for none.
func (t *telemetry) tracing() trace.Tracer {
	if !t.followsGlob {
		return t.tracer
	}
	tp := otel.GetTracerProvider()
	if g := t.glob.Load(); g != nil && g.tp == tp {
		return g.tracer
	}
	g := &globTracer{tp: tp}
	if !globalDelegate(tp) && !isNoopTracer(tp) {
		g.tracer = tp.Tracer(scope)
	}
	t.glob.Store(g)
	t.events.Store(g.tracer != nil)
	return g.tracer
}

// observation is one call in progress: its start and its span (nil: none).
type observation struct {
	t     *telemetry
	ctx   context.Context // the call's, for exemplars
	op    opKind
	start time.Time
	span  trace.Span
}

// observe starts measuring one call: its latency, and, while a tracer is
// live, its span, which the returned context carries to every step.
func (s *Store[T]) observe(ctx context.Context, op opKind) (context.Context, observation) {
	t := s.tel
	ob := observation{t: t, op: op, start: time.Now()}
	if tr := t.tracing(); tr != nil {
		ctx, ob.span = tr.Start(ctx, t.spanNames[op], t.spanOpts[op]...)
	}
	ob.ctx = ctx
	return ctx, ob
}

// end records the call's latency and outcome, and ends its span.
func (ob observation) end(err error) {
	o := outcomeOf(err)
	ob.t.duration.Record(ob.ctx, time.Since(ob.start).Seconds(), ob.t.record[ob.op][o]...)
	if ob.span == nil {
		return
	}
	ob.span.SetAttributes(attrOutcome.String(outcomeNames[o]))
	if o != outOK && o != outNotFound {
		ob.span.RecordError(err)
		ob.span.SetStatus(codes.Error, outcomeNames[o])
	}
	ob.span.End()
}

// traceStep adds a step's event to the call's span, if it records one:
// the step's name before it, and "<step> done" (with its error) after.
// It costs one atomic load while no span can record.
func (s *Store[T]) traceStep(ctx context.Context, st Step, ph Phase, err error) {
	if !s.tel.events.Load() {
		return
	}
	sp := trace.SpanFromContext(ctx)
	if !sp.IsRecording() {
		return
	}
	switch {
	case ph == Before:
		sp.AddEvent(string(st))
	case err != nil:
		sp.AddEvent(string(st)+" done", trace.WithAttributes(attribute.String("error", err.Error())))
	default:
		sp.AddEvent(string(st) + " done")
	}
}

// traceFunc wraps a batch step's f with its events (stepMany).
func (s *Store[T]) traceFunc(ctx context.Context, st Step, f func() error) func() error {
	if !s.tel.events.Load() {
		return f
	}
	return func() error {
		s.traceStep(ctx, st, Before, nil)
		err := f()
		s.traceStep(ctx, st, After, err)
		return err
	}
}
