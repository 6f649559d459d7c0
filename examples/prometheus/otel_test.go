package main

import (
	"context"
	"slices"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/memstore/memstore"
	"github.com/memstore/memstore/codec"
	"github.com/memstore/memstore/memtest"
)

// The store's spans and their events, with the OpenTelemetry SDK, against
// a real Redis and SQLite. They live in this module because the SDK stays
// out of memstore's own.

func newTraced(t *testing.T, tp trace.TracerProvider) *memstore.Store[string] {
	t.Helper()
	s, err := memstore.New(memtest.Redis(t).NewClient(nil), memtest.SQLite(t), &memstore.Options[string]{
		Namespace: "traced", Codec: codec.String(), AutoMigrate: true, DisableReconciler: true,
		TracerProvider: tp,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func events(s sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, e := range s.Events() {
		out = append(out, e.Name)
	}
	return out
}

func TestSpans(t *testing.T) {
	ctx := context.Background()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	s := newTraced(t, tp)

	// The first write of a new namespace fences its stripe (a fresh Redis
	// has no marker): its span shows that too.
	if err := s.Set(ctx, "warm", "w"); err != nil {
		t.Fatal(err)
	}
	if got := events(rec.Ended()[0]); !slices.Contains(got, "db.fence") {
		t.Errorf("first write's events %v, want a db.fence", got)
	}
	if err := s.Set(ctx, "k", "v1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "k"); err != nil { // a miss: get script, DB, fill
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "k"); err != nil { // a hit
		t.Fatal(err)
	}
	spans := rec.Ended()[1:]
	var names []string
	for _, sp := range spans {
		names = append(names, sp.Name())
	}
	if want := []string{"memstore.set", "memstore.get", "memstore.get"}; !slices.Equal(names, want) {
		t.Fatalf("spans %v, want %v", names, want)
	}
	for i, want := range [][]string{
		{"redis.begin", "redis.begin done", "db.write", "db.write done"},
		{"redis.get", "redis.get done", "redis.get", "redis.get done", "db.load", "db.load done", "redis.fill", "redis.fill done"},
		{"redis.get", "redis.get done"},
	} {
		if got := events(spans[i]); !slices.Equal(got, want) {
			t.Errorf("span %d (%s) events %v, want %v", i, spans[i].Name(), got, want)
		}
	}
	attrs := map[string]string{}
	for _, kv := range spans[1].Attributes() {
		attrs[string(kv.Key)] = kv.Value.String()
	}
	if attrs["memstore.namespace"] != "traced" || attrs["memstore.operation"] != "get" || attrs["memstore.outcome"] != "ok" {
		t.Errorf("get span attributes %v", attrs)
	}

	// A span of the caller's is the parent, so redisotel's and pgx's
	// spans, children of the same context, nest under memstore's.
	parentCtx, parent := tp.Tracer("test").Start(ctx, "request")
	if _, err := s.Get(parentCtx, "absent"); err == nil {
		t.Fatal("Get(absent): no error")
	}
	parent.End()
	got := rec.Ended()
	child := got[len(got)-2]
	if child.Name() != "memstore.get" || child.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("span %s has parent %v, want the caller's %v", child.Name(), child.Parent().SpanID(), parent.SpanContext().SpanID())
	}
	if st := child.Status(); st.Code != 0 { // a not-found is no error
		t.Errorf("not-found Get span status %v, want unset", st)
	}
}

// TestGlobalProviderLater checks the default: a store made before the
// application sets the global tracer provider starts spans once it does.
func TestGlobalProviderLater(t *testing.T) {
	ctx := context.Background()
	s := newTraced(t, nil)
	mustSetGet := func() {
		t.Helper()
		if err := s.Set(ctx, "k", "v"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, "k"); err != nil {
			t.Fatal(err)
		}
	}
	mustSetGet() // no provider yet: nothing to record, and nothing breaks
	rec := tracetest.NewSpanRecorder()
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	t.Cleanup(func() { otel.SetTracerProvider(prev) })
	mustSetGet()
	var names []string
	for _, sp := range rec.Ended() {
		names = append(names, sp.Name())
	}
	if want := "memstore.set memstore.get"; strings.Join(names, " ") != want {
		t.Errorf("spans after SetTracerProvider: %v, want %s", names, want)
	}
}

// BenchmarkGetHit is the root package's hit benchmark with the SDK: no
// provider (the global no-ops), SDK metrics, SDK metrics and sampled spans.
// Compare allocs/op with `go test -bench GetHit -benchmem` in the root.
func BenchmarkGetHit(b *testing.B) {
	for _, c := range []struct {
		name string
		mp   func() *sdkmetric.MeterProvider
		tp   func() *sdktrace.TracerProvider
	}{
		{"provider=none", nil, nil},
		{"provider=sdk-metrics", func() *sdkmetric.MeterProvider {
			return sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
		}, nil},
		{"provider=sdk-metrics+spans", func() *sdkmetric.MeterProvider {
			return sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
		}, func() *sdktrace.TracerProvider {
			return sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			o := &memstore.Options[string]{Namespace: "bench", Codec: codec.String(), AutoMigrate: true, DisableReconciler: true}
			if c.mp != nil {
				o.MeterProvider = c.mp()
			}
			if c.tp != nil {
				o.TracerProvider = c.tp()
			}
			s, err := memstore.New(memtest.RedisWith(b, &memtest.RedisOptions{Private: true}).NewClient(nil), memtest.SQLite(b), o)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			ctx := context.Background()
			if err := s.Set(ctx, "hot", strings.Repeat("v", 128)); err != nil {
				b.Fatal(err)
			}
			if err := s.Sync(ctx); err != nil {
				b.Fatal(err)
			}
			if _, err := s.Get(ctx, "hot"); err != nil { // fills
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Get(ctx, "hot"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
