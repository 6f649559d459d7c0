package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/memstore/memstore"
	"github.com/memstore/memstore/codec"
	"github.com/memstore/memstore/internal/inspect"
	"github.com/memstore/memstore/memtest"
)

// TestMonitorSetupErrors: an unreachable Redis or database, or a missing
// SQLite file, is one line on stderr and exit status 2.
func TestMonitorSetupErrors(t *testing.T) {
	t.Parallel()
	good := memtest.Redis(t).URL()
	missing := filepath.Join(t.TempDir(), "nope.db")
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"bad redis", []string{"--redis", "redis://127.0.0.1:1", "--db", missing}, "cannot reach Redis at 127.0.0.1:1"},
		{"missing sqlite", []string{"--redis", good, "--db", missing}, "no such SQLite database file"},
		{"bad postgres", []string{"--redis", good, "--db", "postgres://u:secret@127.0.0.1:1/x?connect_timeout=2"}, "cannot reach the database postgres://u:xxxxx@127.0.0.1:1"},
		{"not a db url", []string{"--redis", good, "--db", "mysql://h/x"}, "want a SQLite file path or a postgres:// URL"},
	} {
		t.Run(c.name, func(t *testing.T) {
			stdout, stderr, code := runBinary(t, nil, append([]string{"monitor"}, c.args...)...)
			if code != 2 {
				t.Errorf("exit status %d, want 2 (stderr %q)", code, stderr)
			}
			if lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "memstore: monitor: ") {
				t.Errorf("stderr %q: want one line starting memstore: monitor:", stderr)
			}
			if !strings.Contains(stderr, c.want) || strings.Contains(stderr, "secret") {
				t.Errorf("stderr %q: want it to say %q, and no password", stderr, c.want)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
		})
	}
}

// monitored is a memstore namespace in a SQLite file, with keys cached.
func monitored(t *testing.T, ns string, n int) (redisURL, dbPath string, s *memstore.Store[string], r *memtest.RedisServer) {
	t.Helper()
	r = memtest.Redis(t)
	dbPath = filepath.Join(t.TempDir(), "app.db")
	db, err := memtest.OpenSQLite(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	rdb := r.NewClient(nil)
	s, err = memstore.New(rdb, db, &memstore.Options[string]{Namespace: ns, Codec: codec.String(), AutoMigrate: true, DisableReconciler: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx := context.Background()
	for i := range n {
		k := fmt.Sprintf("user:%d", i)
		if err := s.Set(ctx, k, "v"); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := s.Get(ctx, fmt.Sprintf("user:%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	return r.URL(), dbPath, s, r
}

type monitorDoc struct {
	Sampled int64 `json:"sampled"`
	Agreed  int64 `json:"agreed"`
	Stale   int64 `json:"stale"`
	Windows []struct {
		Within  time.Duration `json:"within_ns"`
		Decided int64         `json:"decided"`
		Share   float64       `json:"share"`
	} `json:"windows"`
	Inconsistencies []struct {
		Key          string `json:"key"`
		CacheVersion uint64 `json:"cache_version"`
		RowVersion   uint64 `json:"row_version"`
	} `json:"inconsistencies"`
	RedisOps int64 `json:"redis_ops"`
	DBOps    int64 `json:"db_ops"`
}

// TestMonitorNamespace watches a consistent namespace with --metrics,
// scrapes /metrics on loopback while it runs, and reads the JSON summary.
func TestMonitorNamespace(t *testing.T) {
	t.Parallel()
	redisURL, dbPath, _, _ := monitored(t, "app", 20)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	type result struct {
		stdout, stderr string
		code           int
	}
	done := make(chan result, 1)
	go func() {
		stdout, stderr, code, _ := run(t, "monitor", "--redis", redisURL, "--db", dbPath, "--namespace", "app",
			"--duration", "2s", "--windows", "0s,200ms", "--redis-ops", "200", "--db-ops", "100", "--metrics", addr)
		done <- result{stdout, stderr, code}
	}()

	// Scrape until the monitor has sampled something (bounded).
	var sampled, share float64
	for start := time.Now(); time.Since(start) < 5*time.Second && sampled == 0; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			continue
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := parser.TextToMetricFamilies(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("parse /metrics: %v", err)
		}
		if f := fams["memstore_monitor_sampled_total"]; f != nil {
			sampled = f.Metric[0].GetCounter().GetValue()
		}
		if f := fams["memstore_monitor_consistency_ratio"]; f != nil {
			for _, m := range f.Metric {
				for _, l := range m.Label {
					if l.GetName() == "memstore_monitor_window" && l.GetValue() == "200ms" {
						share = m.GetGauge().GetValue()
					}
				}
			}
		}
	}
	if sampled == 0 || share != 1 {
		t.Errorf("/metrics: memstore_monitor_sampled_total %v, consistency within 200ms %v; want > 0 and 1", sampled, share)
	}
	res := <-done
	if res.code != 0 {
		t.Fatalf("exit status %d, stderr %s", res.code, res.stderr)
	}
	var doc monitorDoc
	if err := json.Unmarshal([]byte(res.stdout), &doc); err != nil {
		t.Fatalf("stdout is not the JSON summary: %v\n%s", err, res.stdout)
	}
	if doc.Sampled < 20 || doc.Agreed != doc.Sampled || doc.Stale != 0 || len(doc.Windows) != 2 || doc.Windows[1].Share != 1 {
		t.Errorf("summary %+v: want every one of at least 20 samples consistent", doc)
	}
	if !strings.Contains(res.stderr, "memstore monitor: app sampled") {
		t.Errorf("stderr %q: want the summary line", res.stderr)
	}
}

// TestMonitorRolledBackEntry brings back an old cache entry of one key, as
// a failover to a replica that missed a write does (with the reconciler,
// which would repair it, off): the monitor reports that key, its versions,
// and exits 1.
func TestMonitorRolledBackEntry(t *testing.T) {
	t.Parallel()
	redisURL, dbPath, s, r := monitored(t, "app", 10)
	ctx := context.Background()
	rdb := r.Client()
	old, err := inspect.ReadCache(ctx, rdb, "app", "user:3")
	if err != nil || !old.Cached {
		t.Fatalf("cache entry of user:3: %+v, %v", old, err)
	}
	if err := s.Set(ctx, "user:3", "newer"); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := inspect.WriteRaw(ctx, rdb, "app", "user:3", old.Raw); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code, _ := run(t, "monitor", "--redis", redisURL, "--db", dbPath, "--namespace", "app",
		"--passes", "1", "--windows", "0s,300ms", "--redis-ops", "500", "--db-ops", "500")
	if code != 1 {
		t.Fatalf("exit status %d, want 1; stderr %s", code, stderr)
	}
	var doc monitorDoc
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatalf("stdout is not the JSON summary: %v\n%s", err, stdout)
	}
	if doc.Stale != 1 || len(doc.Inconsistencies) != 1 || doc.Inconsistencies[0].Key != "user:3" ||
		doc.Inconsistencies[0].CacheVersion != old.Version || doc.Inconsistencies[0].RowVersion <= old.Version {
		t.Errorf("summary %+v: want user:3 stale, cached at version %d below its row's", doc, old.Version)
	}
	if doc.Sampled != 10 || doc.Agreed != 9 {
		t.Errorf("sampled %d, agreed %d; want 10, 9", doc.Sampled, doc.Agreed)
	}
}
