package memstore_test

import (
	"context"
	"database/sql"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/memstore/memstore"
	"github.com/memstore/memstore/internal/inspect"
	"github.com/memstore/memstore/memtest"
)

func rowValue(t testing.TB, db *sql.DB, key string) (string, bool) {
	t.Helper()
	var v string
	var tomb bool
	err := db.QueryRow(`SELECT value, tombstone FROM memstore_entries WHERE key = '`+key+`'`).Scan(&v, &tomb)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	return v, !tomb
}

func TestRedisKilled(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		s := store[string](e, nil)
		proceed := storeOn(e, e.rdb, &memstore.Options[string]{Namespace: s.Namespace(), WritePolicy: memstore.WriteProceed, DisableReconciler: true})
		mustSet(t, s, "k", "v1")
		mustGet(t, s, "k", "v1")
		if err := e.redis.Kill(); err != nil {
			t.Fatal(err)
		}
		mustGet(t, s, "k", "v1") // from the DB
		err := s.Set(ctx, "k", "v2")
		wantErr(t, err, memstore.ErrUnavailable)
		if v, _ := rowValue(t, e.db, "k"); v != `"v1"` {
			t.Fatalf("a write that failed on Redis changed the row to %s", v)
		}
		err = proceed.Set(ctx, "k", "v3")
		wantErr(t, err, memstore.ErrOutcomeUnknown)
		if v, _ := rowValue(t, e.db, "k"); v != `"v3"` {
			t.Fatalf("WriteProceed: row holds %s, want \"v3\"", v)
		}
		mustGet(t, s, "k", "v3")
		if st := s.Stats(); st.Errors["redis"] == 0 {
			t.Fatalf("redis errors not counted: %+v", st.Errors)
		}
		if err := e.redis.Restart(); err != nil {
			t.Fatal(err)
		}
		back := time.Now()
		waitFilled(t, e, s, "k", "v3")
		t.Logf("fills resumed %v after Redis came back", time.Since(back).Round(time.Millisecond))
	})
}

// waitFilled reloads key until a reload fills the cache again (the breaker
// closes within a probe interval of Redis answering), failing after 10s.
func waitFilled(t testing.TB, e *env, s *memstore.Store[string], key, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for fills := s.Stats().Fills; ; {
		got, err := s.Refresh(context.Background(), key)
		if err != nil || got != want {
			t.Fatalf("Refresh(%s) = %q, %v; want %q", key, got, err, want)
		}
		if _, ok := cached(t, e, s, key); ok && s.Stats().Fills > fills {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no read filled %s within 10s: stats %+v", key, s.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRedisPaused(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		s := store[string](e, nil)
		mustSet(t, s, "k", "v1")
		mustGet(t, s, "k", "v1")
		if err := e.redis.Pause(); err != nil {
			t.Fatal(err)
		}
		defer e.redis.Resume()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		t0 := time.Now()
		got, err := s.Get(ctx, "k")
		if err != nil || got != "v1" {
			t.Fatalf("Get with Redis paused = %q, %v; want v1 from the DB", got, err)
		}
		err = s.Set(ctx, "k", "v2")
		wantErr(t, err, memstore.ErrUnavailable)
		short, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel2()
		_, err = s.Get(short, "k")
		if !errors.Is(err, context.DeadlineExceeded) && err != nil {
			t.Fatalf("Get under a 50ms deadline: %v", err)
		}
		if d := time.Since(t0); d > 1500*time.Millisecond {
			t.Fatalf("calls hung past their contexts: %v", d)
		}
		if err := e.redis.Resume(); err != nil {
			t.Fatal(err)
		}
		mustGet(t, s, "k", "v1")
	})
}

func TestDBUnavailable(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := &env{t: t, redis: memtest.RedisWith(t, &memtest.RedisOptions{Private: true}), db: b.open(t)}
			e.rdb = e.client()
			s := store[string](e, nil)
			mustSet(t, s, "cached", "c")
			mustGet(t, s, "cached", "c")
			mustSet(t, s, "cold", "x")
			// A second handle on the same database, closed under the store:
			// every statement then fails as on a dead server.
			broken := &env{t: t, redis: e.redis, rdb: e.rdb, db: reopen(t, e.db)}
			bs := storeOn(broken, e.rdb, &memstore.Options[string]{Namespace: s.Namespace(), DisableReconciler: true})
			broken.db.Close()

			mustGet(t, bs, "cached", "c")
			_, err := bs.Get(ctx, "cold")
			wantErr(t, err, memstore.ErrUnavailable)
			if _, ok := cached(t, e, s, "cold"); ok {
				t.Fatal("a failed load cached something")
			}
			wantErr(t, bs.Set(ctx, "cold", "y"), memstore.ErrUnavailable)
			if v, _ := rowValue(t, e.db, "cold"); v != `"x"` {
				t.Fatalf("the row changed to %s", v)
			}
			// The failed write left no intent behind: the healthy store fills.
			mustGet(t, s, "cold", "x")
			if _, ok := cached(t, e, s, "cold"); !ok {
				t.Fatal("a failed write left the key unfillable")
			}
		})
	}
}

// A writer that dies between the commit and end leaves an intent and an
// outbox row; the reconciler repairs both within its bound.
func TestWriterCrashRepairedByReconciler(t *testing.T) {
	eachRedis(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		crash := errors.New("crash")
		var crashing atomic.Bool
		hook := func(ctx context.Context, ev memstore.HookEvent) error {
			if crashing.Load() && ev.Step == memstore.StepRedisEnd && ev.Phase == memstore.Before {
				return crash
			}
			return nil
		}
		s := store(e, &memstore.Options[string]{Hook: hook, ReconcileAge: 50 * time.Millisecond, ReconcileInterval: 20 * time.Millisecond})
		mustSet(t, s, "k", "old")
		crashing.Store(true)
		// Set returns once the row is committed; the process "dies" before
		// its end runs.
		if err := s.Set(ctx, "k", "new"); err != nil {
			t.Fatal(err)
		}
		mustSync(t, s)
		crashing.Store(false)
		mustGet(t, s, "k", "new") // the intent sends reads to the DB
		if _, ok := cached(t, e, s, "k"); ok {
			t.Fatal("filled while the dead writer's intent lives")
		}
		// Within the reconciler's bound (50ms age + 20ms interval, plus
		// slack for a loaded machine) the intent is cleared and reads fill.
		deadline := time.Now().Add(5 * time.Second)
		for {
			mustGet(t, s, "k", "new")
			if _, ok := cached(t, e, s, "k"); ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the reconciler did not repair the key: stats %+v", s.Stats())
			}
			time.Sleep(10 * time.Millisecond)
		}
		for s.Stats().Reconciled < 1 { // the count lands just after the repair
			if time.Now().After(deadline) {
				t.Fatalf("writes reconciled: %d, want the row's last write", s.Stats().Reconciled)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// A failover to a replica that missed a write's begin rolls Redis back: the
// old value is cached again and the write's intent is gone. The reconciler
// replays the outbox and drops a cached value older than a committed write.
func TestReconcileDropsRolledBackValue(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		crash := errors.New("crash")
		var crashing atomic.Bool
		hook := func(ctx context.Context, ev memstore.HookEvent) error {
			if crashing.Load() && ev.Step == memstore.StepRedisEnd && ev.Phase == memstore.Before {
				return crash
			}
			return nil
		}
		s := store(e, &memstore.Options[string]{Hook: hook, ReconcileAge: time.Millisecond, DisableReconciler: true})
		mustSet(t, s, "k", "old")
		mustGet(t, s, "k", "old")
		rdb := e.redis.Client()
		before, err := inspect.ReadCache(ctx, rdb, s.Namespace(), "k")
		if err != nil || !before.Cached {
			t.Fatalf("cached entry %+v, %v", before, err)
		}
		crashing.Store(true)
		if err := s.Set(ctx, "k", "new"); err != nil {
			t.Fatal(err)
		}
		mustSync(t, s) // its end never ran
		crashing.Store(false)
		// The rollback: the old entry is back and the intent is gone.
		markers, err := rdb.Keys(ctx, s.Namespace()+":{*}:m").Result()
		if err != nil || len(markers) != 1 {
			t.Fatalf("markers %v, %v", markers, err)
		}
		if err := rdb.HDel(ctx, markers[0], "i:"+inspect.Key(s.Namespace(), "k")).Err(); err != nil {
			t.Fatal(err)
		}
		if err := inspect.WriteRaw(ctx, rdb, s.Namespace(), "k", before.Raw); err != nil {
			t.Fatal(err)
		}
		mustGet(t, s, "k", "old") // what a rolled-back replica serves
		time.Sleep(5 * time.Millisecond)
		n, err := s.Reconcile(ctx)
		if err != nil || n != 1 {
			t.Fatalf("Reconcile = %d, %v; want 1 stale entry dropped", n, err)
		}
		mustGet(t, s, "k", "new")
		mustGet(t, s, "k", "new")
	})
}

// reopen opens a second handle on the database behind db.
func reopen(t testing.TB, db *sql.DB) *sql.DB {
	t.Helper()
	var other *sql.DB
	var err error
	var file string
	if db.QueryRow(`SELECT file FROM pragma_database_list WHERE name = 'main'`).Scan(&file) == nil {
		other, err = memtest.OpenSQLite(file)
	} else {
		var name string
		if err := db.QueryRow(`SELECT current_database()`).Scan(&name); err != nil {
			t.Fatal(err)
		}
		postgresMu.Lock()
		dsn := postgresDSN[name]
		postgresMu.Unlock()
		other, err = sql.Open("pgx", dsn)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	return other
}
