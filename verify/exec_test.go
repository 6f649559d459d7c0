package verify_test

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/redis/go-redis/v9"

	"github.com/memstore/memstore"
	"github.com/memstore/memstore/memtest"
	"github.com/memstore/memstore/strategies"
	"github.com/memstore/memstore/verify"
)

// envTestAdapter makes the test binary an --exec adapter (see
// testAdapterMain): its value names the store of package strategies the
// adapter serves, or db-only.
const envTestAdapter = "VERIFY_TEST_ADAPTER"

// How the test adapter misbehaves, for the watchdog and handshake tests.
const (
	envAdapterMute     = "VERIFY_TEST_ADAPTER_MUTE_AFTER" // stop answering after this many requests
	envAdapterBadHello = "VERIFY_TEST_ADAPTER_BAD_HELLO"  // answer init with garbage
	envAdapterFeatures = "VERIFY_TEST_ADAPTER_FEATURES"   // comma-separated; default evict,inspect,ttl
)

// testAdapterMain is a minimal adapter written against
// docs/exec-protocol.md only: it reads the MEMSTORE_* environment, opens
// the store, and answers one request at a time (or all at once, with
// "concurrent").
func testAdapterMain(name string) error {
	ctx := context.Background()
	ropts, err := redis.ParseURL(os.Getenv("MEMSTORE_REDIS_URL"))
	if err != nil {
		return err
	}
	ropts.ReadTimeout, ropts.WriteTimeout, ropts.DialTimeout = 500*time.Millisecond, 500*time.Millisecond, 500*time.Millisecond
	rdb := redis.NewClient(ropts)
	dbURL := os.Getenv("MEMSTORE_DB_URL")
	var db *sql.DB
	if strings.HasPrefix(dbURL, "postgres://") {
		db, err = sql.Open("pgx", dbURL)
	} else {
		db, err = sql.Open("sqlite", memtest.SQLiteDSN(dbURL))
		db.SetMaxOpenConns(1)
	}
	if err != nil {
		return err
	}
	f := strategies.DBOnly()
	if name != f.Name {
		if f, err = strategies.Lookup(name); err != nil {
			return err
		}
	}
	st, err := f.New(ctx, strategies.Config{Redis: rdb, DB: db, Namespace: os.Getenv("MEMSTORE_NAMESPACE"), Migrate: os.Getenv("MEMSTORE_INSTANCE") == "0"})
	if err != nil {
		return err
	}
	features := "evict,inspect,ttl"
	if v, ok := os.LookupEnv(envAdapterFeatures); ok {
		features = v
	}
	mute := -1
	if v := os.Getenv(envAdapterMute); v != "" {
		mute, _ = strconv.Atoi(v)
	}
	concurrent := strings.Contains(features, "concurrent")

	var mu sync.Mutex
	out := json.NewEncoder(os.Stdout)
	send := func(v map[string]any) {
		mu.Lock()
		defer mu.Unlock()
		_ = out.Encode(v)
	}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(nil, 1<<20)
	var served atomic.Int64
	var wg sync.WaitGroup
	defer wg.Wait()
	for in.Scan() {
		var req struct {
			ID    int    `json:"id"`
			Op    string `json:"op"`
			Key   string `json:"key"`
			Value string `json:"value"`
		}
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			return err
		}
		if req.Op == "init" {
			if os.Getenv(envAdapterBadHello) != "" {
				fmt.Fprintln(os.Stderr, "adapter: cannot connect to the frobnicator")
				fmt.Println("hello?")
				return nil
			}
			var fs []string
			if features != "" {
				fs = strings.Split(features, ",")
			}
			send(map[string]any{"id": 0, "ok": true, "protocol": 1, "features": fs})
			continue
		}
		if n := served.Add(1); mute >= 0 && n > int64(mute) {
			fmt.Fprintf(os.Stderr, "adapter: request %d: not answering\n", req.ID)
			continue // never answered: the watchdog's case
		}
		serve := func() {
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			rep := map[string]any{"id": req.ID, "ok": true}
			var err error
			switch req.Op {
			case "get":
				var v string
				v, err = st.Get(cctx, req.Key)
				if errors.Is(err, memstore.ErrNotFound) {
					rep["found"], err = false, nil
				} else if err == nil {
					rep["found"], rep["value"] = true, v
				}
			case "set":
				err = st.Set(cctx, req.Key, req.Value)
			case "delete":
				err = st.Delete(cctx, req.Key)
			case "evict":
				err = st.Evict(cctx, req.Key)
			case "inspect":
				var s strategies.Snapshot
				s, err = st.Inspect(cctx, req.Key)
				rep["cached"], rep["cache_found"], rep["cache_value"], rep["db_found"], rep["db_value"] = s.Cached, s.CacheFound, s.CacheValue, s.DBFound, s.DBValue
			default:
				err = fmt.Errorf("unknown op %q", req.Op)
			}
			if err != nil {
				rep = map[string]any{"id": req.ID, "ok": false, "error": err.Error(), "outcome": "unknown"}
			}
			send(rep)
		}
		if concurrent {
			wg.Go(serve)
		} else {
			serve()
		}
	}
	return in.Err()
}

// execConfig runs the test binary as an adapter for store name, with env
// set for it.
func execConfig(t *testing.T, name string, env ...string) *verify.Exec {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := envTestAdapter + "=" + name
	for _, e := range env {
		cmd += " " + e
	}
	return &verify.Exec{Command: cmd + " exec " + strconv.Quote(exe), Name: "exec-" + name, Stderr: &testLog{t: t}}
}

// testLog is the adapters' stderr, into the test's log.
type testLog struct {
	mu sync.Mutex
	t  *testing.T
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.t.Logf("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// A store behind an adapter is checked like any other: plain cache-aside
// is caught, by the search and by an explainer that names the stale read.
func TestExecCatchesCacheAside(t *testing.T) {
	t.Parallel()
	r := run(t, verify.Config{Exec: execConfig(t, "write-db-delete-cache"), Seed: 1, Ops: 2000, Duration: 15 * time.Second,
		Faults: []string{"none"}, Quiet: 200 * time.Millisecond, Clients: 6})
	if !r.ExpectPass || !r.Caught() {
		t.Fatalf("write-db-delete-cache behind an adapter was not caught: %s", r.Summary())
	}
	if got := strings.Join(r.Features, ","); got != "evict,inspect,ttl" {
		t.Errorf("features %q, want evict,inspect,ttl", got)
	}
}

// The DB-only control behind an adapter passes under every fault the
// checker can apply from outside, kill-worker (an adapter killed
// mid-request) included; the faults that need the store's own DB
// connections are left out, with the reason.
func TestExecDBOnlyPassesUnderFaults(t *testing.T) {
	t.Parallel()
	r := run(t, verify.Config{Exec: execConfig(t, "db-only", "VERIFY_TEST_ADAPTER_FEATURES=evict,inspect,concurrent"), Seed: 2,
		Clients: 4, FaultRounds: 1, Duration: 30 * time.Second, Quiet: 200 * time.Millisecond})
	if !r.Passed() {
		t.Fatalf("db-only behind an adapter did not pass:\n%s", strings.Join(r.Problems(), "\n"))
	}
	seen := map[string]bool{}
	for _, ev := range r.Faults {
		seen[ev.Name] = true
	}
	if !seen[verify.FaultKillWorker] || !seen[verify.FaultPartition] || !seen[verify.FaultRedisKill] {
		t.Errorf("fault windows %v: want kill-worker, partition and redis-kill among them", seen)
	}
	for _, f := range []string{verify.FaultDBFail, verify.FaultDBLatency} {
		if why := r.LeftOut[f]; !strings.Contains(why, "--exec adapter") {
			t.Errorf("fault %s: left out %q, want the reason", f, why)
		}
	}
}

// An adapter that stops answering is killed and restarted by the
// watchdog, the request recorded as unknown, and the run reports it and
// does not pass. Without the watchdog the request would never end (a
// serial adapter's next requests queue behind it) and nothing would name
// it.
func TestExecWatchdog(t *testing.T) {
	t.Parallel()
	start := time.Now()
	r := run(t, verify.Config{Exec: execConfig(t, "db-only", envAdapterMute+"=20"), Seed: 3, Clients: 2,
		Duration: 2 * time.Second, OpTimeout: 500 * time.Millisecond, Faults: []string{"none"}, Quiet: 100 * time.Millisecond})
	if len(r.Hangs) == 0 || !r.FiredCheck(verify.CheckHang) || r.Passed() {
		t.Fatalf("no hang reported for an adapter that stopped answering: %s\nnotes: %q", r.Summary(), r.Notes)
	}
	h := r.Hangs[0]
	msg := h.String()
	for _, want := range []string{"stopped answering", "adapter ", "did not answer within 500ms", "killed and restarted"} {
		if !strings.Contains(msg, want) {
			t.Errorf("hang %q does not say %q", msg, want)
		}
	}
	if !strings.Contains(h.Stderr, "not answering") {
		t.Errorf("hang: stderr %q, want the adapter's last words", h.Stderr)
	}
	if h.At <= 0 || h.Waited < 500*time.Millisecond {
		t.Errorf("hang at %v, waited %v", h.At, h.Waited)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("the run took %v", d)
	}
	t.Logf("%s", msg)
}

// An adapter that fails its handshake is a setup problem: Run fails with
// ErrExecHandshake and shows the adapter's stderr.
func TestExecHandshakeFails(t *testing.T) {
	t.Parallel()
	_, err := verify.Run(t.Context(), verify.Config{Exec: execConfig(t, "db-only", envAdapterBadHello+"=1"),
		Redis: memtest.RedisWith(t, &memtest.RedisOptions{Private: true}), DB: filepath.Join(t.TempDir(), "v.db"), Faults: []string{"none"}})
	if !errors.Is(err, verify.ErrExecHandshake) {
		t.Fatalf("Run = %v, want ErrExecHandshake", err)
	}
	for _, want := range []string{"frobnicator", `"hello?"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not show %q", err, want)
		}
	}
}

// hangOnFlush is a store that deadlocks, as rueidisaside does under the
// flush fault: once its marker key is gone from Redis, every Get blocks,
// ignoring its context.
type hangOnFlush struct {
	strategies.Store
	rdb     redis.UniversalClient
	marker  string
	release <-chan struct{}
}

func (s *hangOnFlush) Get(ctx context.Context, key string) (string, error) {
	if n, err := s.rdb.Exists(ctx, s.marker).Result(); err == nil && n == 0 {
		deadlockedGet(s.release)
	}
	return s.Store.Get(ctx, key)
}

// deadlockedGet is where the goroutine dump must show the hung call.
func deadlockedGet(release <-chan struct{}) { <-release }

// A Go store whose call never returns does not hang the run: the
// watchdog abandons the call after its context and the slack, the run
// ends with the hung call named, and the goroutine dump shows where it
// is stuck. Without the watchdog, Run would wait forever (the test fails
// at its deadline instead).
func TestGoStoreHangEndsRun(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	base := strategies.DBOnly()
	f := strategies.Factory{Name: "hang-on-flush", ExpectPass: true, New: func(ctx context.Context, c strategies.Config) (strategies.Store, error) {
		st, err := base.New(ctx, c)
		if err != nil {
			return nil, err
		}
		marker := c.Namespace + ":marker"
		if err := c.Redis.Set(ctx, marker, "1", 0).Err(); err != nil {
			return nil, err
		}
		return &hangOnFlush{Store: st, rdb: c.Redis, marker: marker, release: release}, nil
	}}
	type out struct {
		r   *verify.Result
		err error
	}
	done := make(chan out, 1)
	start := time.Now()
	go func() {
		r, err := verify.Run(context.WithoutCancel(t.Context()), verify.Config{Store: f, Seed: 4,
			Redis: memtest.RedisWith(t, &memtest.RedisOptions{Private: true}), DB: filepath.Join(t.TempDir(), "v.db"),
			Faults: []string{verify.FaultFlush}, Duration: 20 * time.Second, OpTimeout: 300 * time.Millisecond, HangSlack: 300 * time.Millisecond,
			FaultGap: 300 * time.Millisecond, Clients: 3})
		done <- out{r, err}
	}()
	var o out
	select {
	case o = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("Run did not return within 60s of a store call that never returns: no watchdog")
	}
	if o.err != nil {
		t.Fatal(o.err)
	}
	r := o.r
	t.Log(r.Summary())
	if len(r.Hangs) == 0 || !r.FiredCheck(verify.CheckHang) || r.Passed() {
		t.Fatalf("no hang reported: %s", r.Summary())
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("the run took %v after a hang; it should end at the first", d)
	}
	h := r.Hangs[0]
	if !strings.Contains(h.Call, "get") || !strings.HasPrefix(h.Where, "instance ") || !strings.Contains(h.String(), "run ended") {
		t.Errorf("hang %+v: want a get on an instance, and that the run ended", h)
	}
	name, dump := r.GoroutineDump()
	if name == "" || !strings.Contains(dump, "deadlockedGet") {
		t.Errorf("goroutine dump %q does not show deadlockedGet (%d bytes)", name, len(dump))
	}
	if !strings.Contains(strings.Join(r.Problems(), "\n"), "stopped answering") {
		t.Errorf("problems %q do not say the store stopped answering", r.Problems())
	}
}
