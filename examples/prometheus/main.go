// Command prometheus is a memstore store whose OpenTelemetry metrics are
// served to Prometheus on /metrics, through OTel's Prometheus exporter.
//
// The wiring is the few lines of newMeterProvider and the MeterProvider
// field of memstore.Options; the rest is a small workload so that the
// metrics move:
//
//	go run . --redis 127.0.0.1:6379 --db example.db --listen 127.0.0.1:9464
//	curl -s 127.0.0.1:9464/metrics | grep '^memstore_'
//
// It is a module of its own so that the OpenTelemetry SDK and the exporter
// stay out of memstore's import graph: the store itself depends only on
// the OpenTelemetry API.
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	_ "modernc.org/sqlite"

	"github.com/memstore/memstore"
	"github.com/memstore/memstore/codec"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9464", "address of the /metrics endpoint")
	redisAddr := flag.String("redis", "127.0.0.1:6379", "Redis address")
	dbPath := flag.String("db", "example.db", "SQLite database file")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	rdb := redis.NewClient(&redis.Options{Addr: *redisAddr, ContextTimeoutEnabled: true})
	db, err := sql.Open("sqlite", "file:"+*dbPath+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_txlock=immediate")
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("metrics on http://%s/metrics\n", ln.Addr())
	if err := run(ctx, ln, rdb, db); err != nil && !errors.Is(err, context.Canceled) {
		log.Fatal(err)
	}
}

// newMeterProvider returns an OpenTelemetry SDK meter provider whose
// metrics the returned handler serves in Prometheus's exposition format.
func newMeterProvider() (*sdkmetric.MeterProvider, http.Handler, error) {
	reg := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, nil, err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	return mp, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), nil
}

// newStore opens the example's store, its metrics going to mp.
func newStore(rdb redis.UniversalClient, db *sql.DB, mp *sdkmetric.MeterProvider) (*memstore.Store[string], error) {
	return memstore.New(rdb, db, &memstore.Options[string]{
		Namespace:     "example",
		Codec:         codec.String(),
		AutoMigrate:   true,
		MeterProvider: mp,
	})
}

// run serves /metrics on ln and, every 100ms until ctx ends, reads one of
// ten keys (after writing each once), and now and then writes one.
func run(ctx context.Context, ln net.Listener, rdb redis.UniversalClient, db *sql.DB) error {
	mp, handler, err := newMeterProvider()
	if err != nil {
		return err
	}
	defer mp.Shutdown(context.WithoutCancel(ctx))
	s, err := newStore(rdb, db, mp)
	if err != nil {
		return err
	}
	defer s.Close()
	srv := serve(ln, handler)
	defer srv.Close()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		key := "user:" + strconv.Itoa(i%10)
		if i < 10 || i%7 == 0 {
			_ = s.Set(ctx, key, "v"+strconv.Itoa(i))
		}
		_, _ = s.Get(ctx, key)
	}
}

// serve serves handler on ln at /metrics.
func serve(ln net.Listener, handler http.Handler) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("/metrics", handler)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	return srv
}
