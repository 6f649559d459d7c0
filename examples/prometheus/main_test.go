package main

import (
	"context"
	"net"
	"net/http"
	"os"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/memstore/memstore/memtest"
)

func TestMain(m *testing.M) { os.Exit(memtest.Main(m)) }

// TestScrape runs the example's store and /metrics endpoint on loopback,
// makes known traffic, and scrapes and parses the exposition as Prometheus
// would.
func TestScrape(t *testing.T) {
	ctx := context.Background()
	rdb := memtest.Redis(t).NewClient(nil)
	db := memtest.SQLite(t)
	mp, handler, err := newMeterProvider()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mp.Shutdown(context.Background()) })
	s, err := newStore(rdb, db, mp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })

	// Three keys written, each read once cold (a miss and a fill) and
	// twice warm (hits), and one key that does not exist.
	for _, k := range []string{"a", "b", "c"} {
		if err := s.Set(ctx, k, "v-"+k); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		for _, k := range []string{"a", "b", "c"} {
			if _, err := s.Get(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := s.Get(ctx, "missing"); err == nil {
		t.Fatal("Get(missing): no error")
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := serve(ln, handler)
	t.Cleanup(func() { srv.Close() })
	resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse the exposition: %v", err)
	}

	ns := map[string]string{"memstore_namespace": "example"}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"memstore_hits_total", ns, 6},
		{"memstore_misses_total", ns, 4},
		{"memstore_db_loads_total", ns, 4},
		{"memstore_intents_total", ns, 3},
		{"memstore_fills_total", with(ns, "memstore_outcome", "installed"), 4},
		{"memstore_fills_total", with(ns, "memstore_outcome", "rejected"), 0},
		{"memstore_errors_total", with(ns, "error_type", "db"), 0},
		{"memstore_breaker_open", ns, 0},
	} {
		m := find(t, families, c.name, c.labels)
		var got float64
		switch {
		case m.Counter != nil:
			got = m.Counter.GetValue()
		case m.Gauge != nil:
			got = m.Gauge.GetValue()
		}
		if got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	for _, c := range []struct {
		op, outcome string
		want        uint64
	}{
		{"get", "ok", 9},
		{"get", "not_found", 1},
		{"set", "ok", 3},
	} {
		m := find(t, families, "memstore_operation_duration_seconds",
			with(with(ns, "memstore_operation", c.op), "memstore_outcome", c.outcome))
		if got := m.GetHistogram().GetSampleCount(); got != c.want {
			t.Errorf("duration of %s/%s: %d samples, want %d", c.op, c.outcome, got, c.want)
		}
		if m.GetHistogram().GetSampleSum() <= 0 {
			t.Errorf("duration of %s/%s: sum %v, want > 0", c.op, c.outcome, m.GetHistogram().GetSampleSum())
		}
	}
}

func with(labels map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for lk, lv := range labels {
		out[lk] = lv
	}
	return out
}

// find returns the sample of family name whose labels include labels.
func find(t *testing.T, families map[string]*dto.MetricFamily, name string, labels map[string]string) *dto.Metric {
	t.Helper()
	f, ok := families[name]
	if !ok {
		var names []string
		for n := range families {
			names = append(names, n)
		}
		t.Fatalf("no metric %s in the exposition; it has %v", name, names)
	}
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue next
			}
		}
		return m
	}
	t.Fatalf("no sample of %s with labels %v", name, labels)
	return nil
}
