package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/memstore/memstore/monitor"
)

const monitorHelp = `Usage: memstore monitor --redis URL --db DB --namespace NS [flags]

Watch a live memstore namespace: sample its cached entries (SCAN, paced),
compare each with its row in the database, re-check disagreements after
each window so that writes in flight are told from stale entries, and
report the share consistent within each window ("N nines within M
seconds"), the worst staleness, and the key and versions of every entry
still stale past the largest window. Read-only: SCAN, HGET and SELECT,
within the --redis-ops and --db-ops budget.

A live summary line goes to stderr on a terminal; the JSON summary goes to
stdout (or --json FILE) at the end: after --passes full scans, after
--duration, or at Ctrl-C. --metrics ADDR serves the figures as
Prometheus metrics on http://ADDR/metrics meanwhile.

Exit status: 0 when no entry was stale past the largest window, 1 when
one was, 2 for a bad flag or an unreachable Redis or database.

Flags:
`

func runMonitor(ctx context.Context, m *Main, args []string) error {
	fs := flag.NewFlagSet("monitor", flag.ContinueOnError)
	redisURL := fs.String("redis", "", "Redis to watch (redis://host:port/db)")
	dbArg := fs.String("db", "", "the namespace's database: a SQLite file path or a postgres:// URL (opened read-only)")
	ns := fs.String("namespace", "memstore", "the memstore namespace (Options.Namespace)")
	sample := fs.Float64("sample", 1, "share of scanned entries to check, in (0, 1]")
	redisOps := fs.Float64("redis-ops", 100, "Redis commands per second at most")
	dbOps := fs.Float64("db-ops", 50, "SQL queries per second at most")
	count := fs.Int("count", 100, "SCAN COUNT")
	windows := fs.String("windows", "0s,1s,5s,30s", "the windows Δt consistency is measured within, comma-separated, increasing")
	passes := fs.Int("passes", 0, "stop after this many full scans (0: run until --duration or Ctrl-C)")
	duration := fs.Duration("duration", 0, "stop after this long (0: no limit)")
	metricsAddr := fs.String("metrics", "", "serve Prometheus metrics on http://ADDR/metrics (e.g. 127.0.0.1:9465)")
	jsonOut := fs.String("json", "-", "where the JSON summary goes at the end: a file, or - for stdout")
	if _, err := m.parseArgs(fs, args, monitorHelp, 0); err != nil {
		return err
	}
	if *redisURL == "" || *dbArg == "" {
		return usagef("monitor: --redis and --db are required")
	}
	var ws []time.Duration
	for _, f := range strings.Split(*windows, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(f))
		if err != nil {
			return usagef("monitor: --windows %q: %v", *windows, err)
		}
		ws = append(ws, d)
	}

	rdb, err := openMonitorRedis(ctx, *redisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	db, err := openMonitorDB(ctx, *dbArg)
	if err != nil {
		return err
	}
	defer db.Close()
	layout := monitor.Memstore(rdb, db, *ns)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	_, err = layout.Row(pctx, "memstore-monitor-probe")
	cancel()
	if err != nil {
		return setupf("monitor: --db %s: cannot read namespace %q's rows (is it a memstore database?): %v", redactDB(*dbArg), *ns, err)
	}
	mon, err := monitor.New(monitor.Config{
		Redis: rdb, Layout: layout, Name: *ns, SampleRate: *sample,
		RedisOps: *redisOps, DBOps: *dbOps, ScanCount: *count, Windows: ws, Passes: *passes,
	})
	if err != nil {
		return usagef("%s", strings.TrimPrefix(err.Error(), "monitor: "))
	}
	if *metricsAddr != "" {
		stop, err := serveMonitorMetrics(ctx, mon, *metricsAddr)
		if err != nil {
			return err
		}
		defer stop()
		fmt.Fprintf(m.Stderr, "memstore monitor: metrics on http://%s/metrics\n", *metricsAddr)
	}

	rctx := ctx
	if *duration > 0 {
		var cancel context.CancelFunc
		rctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	done := make(chan error, 1)
	go func() { done <- mon.Run(rctx) }()
	live := isTerminal(m.Stderr)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for running := true; running; {
		select {
		case err = <-done:
			running = false
		case <-tick.C:
			if live {
				fmt.Fprintf(m.Stderr, "\r\033[K%s", mon.Summary().Line())
			}
		}
	}
	sum := mon.Summary()
	if live {
		fmt.Fprint(m.Stderr, "\r\033[K")
	}
	fmt.Fprintln(m.Stderr, "memstore monitor: "+sum.Line())
	if err != nil {
		return setupf("monitor: %v", err)
	}
	if werr := writeSummary(m.Stdout, *jsonOut, sum); werr != nil {
		return werr
	}
	if sum.Stale > 0 {
		return fmt.Errorf("monitor: %d entries of namespace %s stale past %v (the first: %q)",
			sum.Stale, *ns, ws[len(ws)-1], sum.Inconsistencies[0].Key)
	}
	return nil
}

func openMonitorRedis(ctx context.Context, raw string) (*redis.Client, error) {
	opts, err := redis.ParseURL(raw)
	if err != nil {
		return nil, usagef("monitor: --redis %q: %v", raw, err)
	}
	opts.ContextTimeoutEnabled = true
	opts.DialTimeout, opts.MaxRetries = 2*time.Second, -1
	c := redis.NewClient(opts)
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := c.Ping(pctx).Err(); err != nil {
		c.Close()
		return nil, setupf("monitor: cannot reach Redis at %s: %v", opts.Addr, err)
	}
	return c, nil
}

// openMonitorDB opens --db read-only: a SQLite file that must exist, or a
// PostgreSQL URL whose sessions are read-only.
func openMonitorDB(ctx context.Context, arg string) (*sql.DB, error) {
	var db *sql.DB
	switch {
	case strings.HasPrefix(arg, "postgres://"), strings.HasPrefix(arg, "postgresql://"):
		u, err := url.Parse(arg)
		if err != nil || u.Host == "" && u.Query().Get("host") == "" {
			return nil, usagef("monitor: --db %q: not a valid postgres:// URL", arg)
		}
		q := u.Query()
		if q.Get("default_transaction_read_only") == "" {
			q.Set("default_transaction_read_only", "on")
		}
		u.RawQuery = q.Encode()
		if db, err = sql.Open("pgx", u.String()); err != nil {
			return nil, usagef("monitor: --db: %v", err)
		}
	case strings.Contains(arg, "://"):
		return nil, usagef("monitor: --db %q: want a SQLite file path or a postgres:// URL", arg)
	default:
		abs, err := filepath.Abs(arg)
		if err != nil {
			return nil, setupf("monitor: --db %s: %v", arg, err)
		}
		if st, err := os.Stat(abs); err != nil || !st.Mode().IsRegular() {
			return nil, setupf("monitor: --db %s: no such SQLite database file", arg)
		}
		u := url.URL{Path: abs}
		if db, err = sql.Open("sqlite", "file:"+u.EscapedPath()+"?mode=ro&_pragma=busy_timeout(5000)"); err != nil {
			return nil, setupf("monitor: --db %s: %v", arg, err)
		}
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, setupf("monitor: cannot reach the database %s: %v", redactDB(arg), err)
	}
	return db, nil
}

// redactDB hides a postgres:// URL's password.
func redactDB(arg string) string {
	if u, err := url.Parse(arg); err == nil && u.User != nil {
		return u.Redacted()
	}
	return arg
}

// serveMonitorMetrics serves mon's metrics on addr through OpenTelemetry's
// Prometheus exporter, until the returned stop is called.
func serveMonitorMetrics(ctx context.Context, mon *monitor.Monitor, addr string) (stop func(), err error) {
	reg := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	if _, err := mon.Instrument(mp); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, setupf("monitor: --metrics %s: %v", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	return func() {
		srv.Close()
		mp.Shutdown(context.WithoutCancel(ctx))
	}, nil
}

func writeSummary(stdout io.Writer, dest string, sum monitor.Summary) error {
	b, err := json.MarshalIndent(sum, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if dest == "-" {
		_, err = stdout.Write(b)
		return err
	}
	if err := os.WriteFile(dest, b, 0o644); err != nil {
		return setupf("monitor: --json %s: %v", dest, errors.Unwrap(err))
	}
	return nil
}
