package monitor_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/memstore/memstore"
	"github.com/memstore/memstore/codec"
	"github.com/memstore/memstore/internal/inspect"
	"github.com/memstore/memstore/memtest"
	"github.com/memstore/memstore/monitor"
	"github.com/memstore/memstore/strategies"
)

func TestMain(m *testing.M) {
	redis.SetLogger(quiet{}) // the fault test restarts Redis on purpose
	os.Exit(memtest.Main(m))
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

func client(r *memtest.RedisServer) redis.UniversalClient {
	return r.NewClient(func(o *redis.Options) {
		o.ContextTimeoutEnabled = true
		o.ReadTimeout, o.WriteTimeout, o.DialTimeout = 300*time.Millisecond, 300*time.Millisecond, 300*time.Millisecond
		o.MaxRetries = -1
	})
}

func newStore(t *testing.T, rdb redis.UniversalClient, db *sql.DB, ns string) *memstore.Store[string] {
	t.Helper()
	s, err := memstore.New(rdb, db, &memstore.Options[string]{
		Namespace: ns, Codec: codec.String(), AutoMigrate: true,
		ReconcileInterval: 200 * time.Millisecond, ReconcileAge: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestMemstoreUnderFaults runs the monitor on a memstore namespace while
// writers and readers hammer it, keys are evicted and Redis restarts
// (losing everything): every sampled entry must be consistent within the
// store's documented bound (ReconcileAge, here 1s), and none stale.
func TestMemstoreUnderFaults(t *testing.T) {
	t.Parallel()
	for _, b := range []struct {
		name string
		open func(testing.TB) *sql.DB
	}{
		{"sqlite", memtest.SQLite},
		{"postgres", func(t testing.TB) *sql.DB { return memtest.Postgres(t).DB() }},
	} {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			memstoreUnderFaults(t, b.open(t))
		})
	}
}

func memstoreUnderFaults(t *testing.T, db *sql.DB) {
	ctx := context.Background()
	r := memtest.RedisWith(t, &memtest.RedisOptions{Private: true})
	rdb := client(r)
	s := newStore(t, rdb, db, "faulty")
	keys := make([]string, 40)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%02d", i)
		if err := s.Set(ctx, keys[i], "init"); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if _, err := s.Get(ctx, k); err != nil {
			t.Fatal(err)
		}
	}

	mctx, stopMonitor := context.WithCancel(ctx)
	defer stopMonitor()
	mon, err := monitor.New(monitor.Config{
		Redis: rdb, Layout: monitor.Memstore(rdb, db, "faulty"), Name: "faulty",
		RedisOps: 3000, DBOps: 1500, ScanCount: 10,
		Windows: []time.Duration{0, 250 * time.Millisecond, time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- mon.Run(mctx) }()

	// The workload: 4 clients, each writing unique values and reading,
	// bounded in count and time.
	var wg sync.WaitGroup
	var writes atomic.Int64
	deadline := time.Now().Add(3 * time.Second)
	for c := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100000 && time.Now().Before(deadline); i++ {
				k := keys[rand.IntN(len(keys))]
				cctx, cancel := context.WithTimeout(ctx, time.Second)
				if i%4 == 0 {
					if s.Set(cctx, k, fmt.Sprintf("c%d-%d", c, i)) == nil {
						writes.Add(1)
					}
				} else {
					_, _ = s.Get(cctx, k)
				}
				cancel()
			}
		}()
	}
	// The faults: evictions every 100ms, and one Redis restart.
	for i := 0; time.Now().Before(deadline); i++ {
		time.Sleep(100 * time.Millisecond)
		_ = inspect.Evict(ctx, rdb, "faulty", keys[rand.IntN(len(keys))])
		if i == 12 {
			if err := r.Restart(); err != nil {
				t.Fatalf("restart Redis: %v", err)
			}
		}
	}
	wg.Wait()
	// Let the last samples' re-checks run past the largest window.
	time.Sleep(1500 * time.Millisecond)
	stopMonitor()
	if err := <-runErr; err != nil {
		t.Fatalf("Run: %v", err)
	}

	sum := mon.Summary()
	t.Log(sum.Line())
	if writes.Load() < 50 {
		t.Fatalf("only %d writes succeeded: the workload did not run", writes.Load())
	}
	if sum.Sampled < 100 {
		t.Fatalf("sampled %d entries, want at least 100 (summary %+v)", sum.Sampled, sum)
	}
	if sum.Stale != 0 || len(sum.Inconsistencies) != 0 {
		t.Errorf("memstore: %d stale entries: %+v", sum.Stale, sum.Inconsistencies)
	}
	last := sum.Windows[len(sum.Windows)-1]
	if last.Within != time.Second || last.Share != 1 || last.Decided < sum.Sampled-sum.Undecided {
		t.Errorf("within %v: %d of %d decided samples consistent (sampled %d, undecided %d), want all",
			last.Within, last.Consistent, last.Decided, sum.Sampled, sum.Undecided)
	}
}

// strategyLayout is the known-bad strategies' layout described as a
// monitor.Plain: values as plain Redis strings at "<ns>:{<key>}", rows in
// strategy_entries.
func strategyLayout(rdb redis.UniversalClient, db *sql.DB, ns string) *monitor.Plain {
	return &monitor.Plain{
		Redis: rdb, DB: db,
		Match: ns + ":{*}",
		KeyOf: func(rk string) (string, bool) {
			k, ok := strings.CutPrefix(rk, ns+":{")
			if !ok || !strings.HasSuffix(k, "}") {
				return "", false
			}
			return strings.TrimSuffix(k, "}"), true
		},
		RedisKey: func(k string) string { return ns + ":{" + k + "}" },
		Query:    `SELECT value FROM strategy_entries WHERE ns = ? AND key = ?`,
		Args:     func(k string) []any { return []any{ns, k} },
	}
}

type readerKey struct{}

// TestKnownBadStrategyReported forces the classic race of
// write-db-delete-cache on three keys (a reader's fill of the old row lands
// after the write's delete) and checks that the monitor reports exactly
// those keys as stale, with their values, and the others as consistent.
func TestKnownBadStrategyReported(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := client(memtest.Redis(t))
	db := memtest.SQLite(t)
	const ns = "naive"
	// The hook holds a marked reader after its DB read until released.
	var read, release chan struct{}
	hook := func(ctx context.Context, ev memstore.HookEvent) error {
		if ctx.Value(readerKey{}) != nil && ev.Step == memstore.StepDBLoad && ev.Phase == memstore.After {
			read <- struct{}{}
			<-release
		}
		return nil
	}
	kv, err := strategies.WriteDBDeleteCache().New(ctx, strategies.Config{Redis: rdb, DB: db, Namespace: ns, Hook: hook, Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer kv.Close()
	var bad []string
	for i := range 12 {
		k := fmt.Sprintf("key%02d", i)
		if err := kv.Set(ctx, k, "old-"+k); err != nil {
			t.Fatal(err)
		}
		if i%4 != 0 {
			if _, err := kv.Get(ctx, k); err != nil { // cached, and current
				t.Fatal(err)
			}
			continue
		}
		bad = append(bad, k)
		read, release = make(chan struct{}), make(chan struct{})
		done := make(chan error, 1)
		go func() {
			_, err := kv.Get(context.WithValue(ctx, readerKey{}, true), k)
			done <- err
		}()
		<-read // the reader has the old row
		if err := kv.Set(ctx, k, "new-"+k); err != nil {
			t.Fatal(err)
		}
		close(release) // and now caches it, after the write's delete
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}

	mon, err := monitor.New(monitor.Config{
		Redis: rdb, Layout: strategyLayout(rdb, db, ns), Name: ns,
		RedisOps: 2000, DBOps: 2000, Passes: 1,
		Windows: []time.Duration{0, 100 * time.Millisecond, 300 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := mon.Run(ctx); err != nil {
		t.Fatal(err)
	}
	sum := mon.Summary()
	t.Log(sum.Line())
	var got []string
	for _, inc := range sum.Inconsistencies {
		got = append(got, inc.Key)
		if inc.CacheValue != "old-"+inc.Key || inc.RowValue != "new-"+inc.Key || inc.Resolved || inc.StaleFor < 300*time.Millisecond {
			t.Errorf("inconsistency %+v: want cache old-%s, row new-%s, stale for 300ms or more, unresolved", inc, inc.Key, inc.Key)
		}
	}
	if !slices.Equal(got, bad) {
		t.Errorf("stale keys %v, want %v", got, bad)
	}
	if sum.Sampled != 12 || sum.Agreed != 9 || sum.Stale != 3 {
		t.Errorf("sampled %d, agreed %d, stale %d; want 12, 9, 3", sum.Sampled, sum.Agreed, sum.Stale)
	}
	for _, w := range sum.Windows {
		if w.Decided != 12 || w.Consistent != 9 {
			t.Errorf("within %v: %d of %d consistent, want 9 of 12", w.Within, w.Consistent, w.Decided)
		}
	}
	if sum.WorstStaleness < 300*time.Millisecond {
		t.Errorf("worst staleness %v, want at least the largest window", sum.WorstStaleness)
	}
}

// TestMemstoreLayoutDuringWrite pauses a memstore write after its commit,
// before its end, and reads the key as the monitor does: the cache serves
// nothing (begin dropped the value), the row is the new one, and the write
// intent is live; after the end it is not.
func TestMemstoreLayoutDuringWrite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := client(memtest.Redis(t))
	db := memtest.SQLite(t)
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	s, err := memstore.New(rdb, db, &memstore.Options[string]{
		Namespace: "inflight", Codec: codec.String(), AutoMigrate: true, DisableReconciler: true,
		Hook: func(ctx context.Context, ev memstore.HookEvent) error {
			if ev.Step == memstore.StepDBWrite && ev.Phase == memstore.After && ev.Key == "k" && ctx.Value(readerKey{}) != nil {
				once.Do(func() { close(entered) })
				<-release
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Set(ctx, "k", "v1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	layout := monitor.Memstore(rdb, db, "inflight")
	before, err := layout.Cache(ctx, "k")
	if err != nil || !before.Cached {
		t.Fatalf("cache entry of k before the write: %+v, %v", before, err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Set(context.WithValue(ctx, readerKey{}, true), "k", "v2") }()
	<-entered // committed, its intent live, its end not yet run
	live, err := layout.(monitor.InFlight).WriteInFlight(ctx, "k")
	if err != nil || !live {
		t.Errorf("WriteInFlight(k) during the write = %v, %v; want true", live, err)
	}
	row, err := layout.Row(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if row.Version <= before.Version || string(row.Value) != "v2" {
		t.Fatalf("row during the write: %+v, want v2 at a version above %d", row, before.Version)
	}
	after, err := layout.Cache(ctx, "k")
	if err != nil || after.Cached {
		t.Errorf("cache entry of k during the write: %+v, %v; want none (begin drops it)", after, err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if live, err := layout.(monitor.InFlight).WriteInFlight(ctx, "k"); err != nil || live {
		t.Errorf("WriteInFlight(k) after the write = %v, %v; want false", live, err)
	}
}

// TestLoadBudget runs the monitor over many cached entries with a small
// budget and checks the ops it made against it.
func TestLoadBudget(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := client(memtest.Redis(t))
	db := memtest.SQLite(t)
	s := newStore(t, rdb, db, "budget")
	m := map[string]string{}
	for i := range 300 {
		m[fmt.Sprintf("k%03d", i)] = "v"
	}
	if err := s.SetMany(ctx, m); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	if _, err := s.GetMany(ctx, keys); err != nil {
		t.Fatal(err)
	}
	const redisBudget, dbBudget = 60, 25
	mon, err := monitor.New(monitor.Config{
		Redis: rdb, Layout: monitor.Memstore(rdb, db, "budget"), Name: "budget",
		RedisOps: redisBudget, DBOps: dbBudget, ScanCount: 20,
	})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	start := time.Now()
	if err := mon.Run(rctx); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start).Seconds()
	sum := mon.Summary()
	rb, db2 := mon.Burst()
	t.Logf("%.2fs: %d Redis ops (%.1f/s, budget %d/s), %d DB ops (%.1f/s, budget %d/s), %d sampled",
		elapsed, sum.RedisOps, float64(sum.RedisOps)/elapsed, redisBudget, sum.DBOps, float64(sum.DBOps)/elapsed, dbBudget, sum.Sampled)
	if limit := redisBudget*elapsed*1.2 + float64(rb); float64(sum.RedisOps) > limit {
		t.Errorf("%d Redis ops in %.2fs: over the budget's %.0f", sum.RedisOps, elapsed, limit)
	}
	if limit := dbBudget*elapsed*1.2 + float64(db2); float64(sum.DBOps) > limit {
		t.Errorf("%d DB ops in %.2fs: over the budget's %.0f", sum.DBOps, elapsed, limit)
	}
	if sum.DBOps < 5 || sum.Sampled < 5 || sum.Sampled > int64(len(m)) {
		t.Errorf("sampled %d entries with %d DB ops: the monitor made no progress", sum.Sampled, sum.DBOps)
	}
	if sum.Stale != 0 || sum.Agreed != sum.Sampled {
		t.Errorf("an idle store: %d of %d samples agreed, %d stale", sum.Agreed, sum.Sampled, sum.Stale)
	}
}

func TestConfigErrors(t *testing.T) {
	rdb := client(memtest.Redis(t))
	layout := monitor.Memstore(rdb, nil, "x")
	for _, c := range []monitor.Config{
		{Layout: layout},
		{Redis: rdb, Layout: layout, SampleRate: 1.5},
		{Redis: rdb, Layout: layout, RedisOps: 0.5},
		{Redis: rdb, Layout: layout, Windows: []time.Duration{time.Second, 0}},
	} {
		if _, err := monitor.New(c); err == nil {
			t.Errorf("New(%+v): no error", c)
		}
	}
	// An unreachable Redis fails Run's first SCAN, at once.
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	mon, err := monitor.New(monitor.Config{Redis: dead, Layout: monitor.Memstore(dead, nil, "x")})
	if err != nil {
		t.Fatal(err)
	}
	if err := mon.Run(context.Background()); err == nil || errors.Is(err, context.Canceled) {
		t.Errorf("Run on an unreachable Redis: %v, want a SCAN error", err)
	}
}

// TestMemstoreRollbackWithinBound brings an old entry back as a failover to
// a lagging replica does, the one case the store documents as stale for a
// while: the reconciler drops it within ReconcileAge (1s here, passes every
// 200ms), so the monitor sees it disagree at first and resolve within the
// window, and reports no stale entry.
func TestMemstoreRollbackWithinBound(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := client(memtest.Redis(t))
	db := memtest.SQLite(t)
	s := newStore(t, rdb, db, "rollback")
	for i := range 5 {
		k := fmt.Sprintf("k%d", i)
		if err := s.Set(ctx, k, "v1"); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := s.Get(ctx, fmt.Sprintf("k%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	old, err := inspect.ReadCache(ctx, rdb, "rollback", "k2")
	if err != nil || !old.Cached {
		t.Fatalf("cache entry of k2: %+v, %v", old, err)
	}
	if err := s.Set(ctx, "k2", "v2"); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := inspect.WriteRaw(ctx, rdb, "rollback", "k2", old.Raw); err != nil {
		t.Fatal(err)
	}
	mon, err := monitor.New(monitor.Config{
		Redis: rdb, Layout: monitor.Memstore(rdb, db, "rollback"), Name: "rollback",
		RedisOps: 1000, DBOps: 1000, Passes: 1,
		Windows: []time.Duration{0, 3 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := mon.Run(ctx); err != nil {
		t.Fatal(err)
	}
	sum := mon.Summary()
	t.Log(sum.Line())
	if sum.Sampled != 5 || sum.Disagreed != 1 || sum.InFlight != 1 || sum.Stale != 0 {
		t.Errorf("sampled %d, disagreed %d, resolved %d, stale %d; want 5, 1, 1, 0 (%+v)", sum.Sampled, sum.Disagreed, sum.InFlight, sum.Stale, sum)
	}
	if w := sum.Windows; w[0].Consistent != 4 || w[1].Consistent != 5 || w[1].Decided != 5 {
		t.Errorf("windows %+v: want 4 of 5 consistent at once, 5 of 5 within 3s", w)
	}
}

// TestOddKeysAndNamespace samples keys and a namespace made of the
// characters the key layout and SCAN's glob treat specially: every entry
// is found once, and no lease or marker is taken for one.
func TestOddKeysAndNamespace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := client(memtest.Redis(t))
	db := memtest.SQLite(t)
	const ns = "n*s?[x]"
	s := newStore(t, rdb, db, ns)
	other := newStore(t, rdb, db, "nxs?[x]") // matched by the pattern if ns's glob characters were not escaped
	keys := []string{"a}:l", "}", "x*y", "k:m", "{b}", "é"}
	for _, k := range keys {
		for _, st := range []*memstore.Store[string]{s, other} {
			if err := st.Set(ctx, k, "v-"+k); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, st := range []*memstore.Store[string]{s, other} {
		if err := st.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if _, err := st.Get(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
	}
	mon, err := monitor.New(monitor.Config{
		Redis: rdb, Layout: monitor.Memstore(rdb, db, ns), Name: ns, RedisOps: 1000, DBOps: 1000, Passes: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := mon.Run(ctx); err != nil {
		t.Fatal(err)
	}
	sum := mon.Summary()
	if sum.Scanned != int64(len(keys)) || sum.Sampled != int64(len(keys)) || sum.Agreed != int64(len(keys)) {
		t.Errorf("scanned %d, sampled %d, agreed %d; want %d each", sum.Scanned, sum.Sampled, sum.Agreed, len(keys))
	}
}
