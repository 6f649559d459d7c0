package schedule_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/memstore/memstore/memtest"
	"github.com/memstore/memstore/schedule"
	"github.com/memstore/memstore/strategies"
)

func TestMain(m *testing.M) { os.Exit(memtest.Main(m)) }

// sqliteDB is memtest's SQLite without an fsync per commit: on a disk the
// fsync is most of a schedule's cost, and interleavings, not durability,
// are under test here.
func sqliteDB(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", memtest.SQLiteDSN(filepath.Join(t.TempDir(), "schedule.db"))+"&_pragma=synchronous(OFF)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// explore runs cfg on a private Redis and, unless cfg.DB is set, SQLite.
func explore(t *testing.T, cfg schedule.Config) *schedule.Result {
	t.Helper()
	if cfg.Redis == nil {
		cfg.Redis = memtest.Redis(t).Client()
	}
	if cfg.DB == nil {
		cfg.DB = sqliteDB(t)
	}
	cfg.Migrate = true
	res, err := schedule.Explore(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res)
	return res
}

// Every known-bad strategy loses a write in some schedule of the scenario
// that exposes it, and the scheduler finds that schedule on purpose: the
// enumeration is exhaustive, not lucky. With a shared instance too, where
// every hook point is a decision.
func TestKnownBadCaught(t *testing.T) {
	for _, tt := range []struct {
		f  strategies.Factory
		sc schedule.Scenario
	}{
		{strategies.WriteDBDeleteCache(), schedule.ReaderWriter()},
		{strategies.DeleteCacheWriteDB(), schedule.ReaderWriter()},
		{strategies.WriteDBSetCache(), schedule.TwoWriters()},
		{strategies.WriteDBSetCache(), schedule.ReaderWriter()},
		{strategies.DoubleDelete(), schedule.ReaderWriter()},
		{strategies.LeaseNoIntent(), schedule.ReaderWriter()},
		{strategies.WriteDBDeleteCache(), schedule.ReaderDeleter()},
	} {
		t.Run(tt.f.Name+"/"+tt.sc.Name, func(t *testing.T) {
			t.Parallel()
			if tt.f.ExpectPass {
				t.Fatalf("%s expects to pass", tt.f.Name)
			}
			rs := memtest.Redis(t)
			db := sqliteDB(t)
			cfg := schedule.Config{Factory: tt.f, Redis: rs.Client(), DB: db, Scenario: tt.sc}
			res := explore(t, cfg)
			if !res.Exhaustive {
				t.Errorf("%d schedules, not exhaustive; want every interleaving", res.Schedules)
			}
			if len(res.Failures) == 0 {
				t.Fatalf("no failing schedule among %d; want %s caught", res.Schedules, tt.f.Name)
			}
			f := res.Failures[0]
			t.Logf("%d of %d schedules fail; the first:\n%s", len(res.Failures), res.Schedules, f)
			// double-delete's second delete runs on a timer, outside the
			// scheduler, so a re-run may not fail the same way; every other
			// strategy's failure is fully scheduled and must re-run.
			timed := tt.f.Name == strategies.DoubleDelete().Name
			if !f.Annotated && !timed {
				t.Errorf("the first failure was not re-run with snapshots")
			}

			// The printed decisions replay the failure.
			replay := cfg
			replay.Replay, replay.Namespace = f.Choices, "replay-"
			again, err := schedule.Explore(t.Context(), replay)
			switch {
			case err != nil:
				t.Fatal(err)
			case again.Diverged > 0:
				t.Logf("the replay diverged (%d quiet timeouts): not checked", again.QuietTimeouts)
			case timed:
				t.Logf("replay of a timer-driven failure: %d of %d schedules failed", len(again.Failures), again.Schedules)
			case again.Schedules != 1 || len(again.Failures) != 1:
				t.Errorf("replay of %v: %d schedules, %d failures; want 1 and 1", f.Choices, again.Schedules, len(again.Failures))
			case again.Failures[0].Violation != f.Violation:
				t.Errorf("replay violation = %q, want %q", again.Failures[0].Violation, f.Violation)
			}

			shared := cfg
			shared.Shared, shared.MaxFailures, shared.Namespace = true, 1, "shared-"
			if res := explore(t, shared); len(res.Failures) == 0 {
				t.Errorf("shared instance: no failing schedule among %d", res.Schedules)
			}
		})
	}
}

// memstore passes every interleaving of the small scenarios with separate
// instances, and a sample of the larger ones and of one shared instance
// (and its in-process flights), where every hook point is a decision.
// PostgreSQL runs the biggest sample: under the race detector it is some
// four times faster than the pure-Go SQLite.
func TestMemstorePasses(t *testing.T) {
	for _, tt := range []struct {
		sc       schedule.Scenario
		shared   bool
		postgres bool
		max      int
		all      bool // want every interleaving run
	}{
		{sc: schedule.ReaderWriter(), max: 1000, all: true},
		{sc: schedule.ReaderDeleter(), max: 1000, all: true},
		{sc: schedule.TwoWriters(), max: 1000, all: true},
		{sc: schedule.ReaderTwoWriters(), max: 300},
		{sc: schedule.LateReader(), max: 100},
		{sc: schedule.ReaderWriter(), postgres: true, max: 1000, all: true},
		// With one shared instance every hook point is a decision: ~11k
		// interleavings since a hit became a plain HGET before the Lua get
		// (one more point). A sample keeps the package under two minutes.
		{sc: schedule.ReaderWriter(), shared: true, postgres: true, max: 1500},
		{sc: schedule.ReaderDeleter(), shared: true, max: 150},
		{sc: schedule.ReaderTwoWriters(), shared: true, max: 300},
		{sc: schedule.LateReader(), shared: true, max: 100},
	} {
		name := tt.sc.Name + "/separate"
		if tt.shared {
			name = tt.sc.Name + "/shared"
		}
		if tt.postgres {
			name += "/postgres"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg := schedule.Config{Factory: strategies.Memstore(), Scenario: tt.sc, Shared: tt.shared, Max: tt.max, Seed: 1}
			if tt.postgres {
				cfg.DB = memtest.Postgres(t).DB()
			}
			res := explore(t, cfg)
			for i, f := range res.Failures {
				if i == 3 {
					break
				}
				t.Errorf("failing schedule:\n%s", f)
			}
			switch {
			case tt.all && !res.Exhaustive:
				t.Errorf("%d schedules, not exhaustive; want every interleaving", res.Schedules)
			case !res.Exhaustive && res.Schedules != tt.max:
				t.Errorf("%d schedules, want %d", res.Schedules, tt.max)
			}
		})
	}
}

// The control store, with no cache, passes everything: a failure here would
// be a false alarm of the scheduler or the judge.
func TestDBOnlyPasses(t *testing.T) {
	for _, sc := range []schedule.Scenario{schedule.ReaderWriter(), schedule.ReaderDeleter(), schedule.TwoWriters(), schedule.ReaderTwoWriters(), schedule.LateReader()} {
		for _, shared := range []bool{false, true} {
			t.Run(sc.Name, func(t *testing.T) {
				t.Parallel()
				res := explore(t, schedule.Config{Factory: strategies.DBOnly(), Scenario: sc, Shared: shared, Max: 300, Seed: 1})
				for _, f := range res.Failures {
					t.Errorf("failing schedule:\n%s", f)
				}
				if !shared && !res.Exhaustive {
					t.Errorf("%d schedules, not exhaustive", res.Schedules)
				}
			})
		}
	}
}

// An in-process singleflight that hands a load to every caller that joins
// it, however late, is the bug of "strong" caches the design describes. Only
// a shared instance can show it, and only if the scheduler copes with an
// actor that blocks outside the hooks (on the flight).
func TestSharedFlightCaught(t *testing.T) {
	t.Parallel()
	f := naiveFlight()
	sep := explore(t, schedule.Config{Factory: f, Scenario: schedule.LateReader()})
	if len(sep.Failures) > 0 {
		t.Errorf("separate instances (no sharing) failed:\n%s", sep.Failures[0])
	}
	shared := explore(t, schedule.Config{Factory: f, Scenario: schedule.LateReader(), Shared: true, Max: 300, Seed: 1})
	if len(shared.Failures) == 0 {
		t.Fatalf("no failing schedule among %d; want the late joiner caught", shared.Schedules)
	}
	if shared.QuietTimeouts == 0 {
		t.Errorf("no quiet timeouts: the late reader never blocked on the flight")
	}
	t.Logf("%d of %d schedules fail; the first:\n%s", len(shared.Failures), shared.Schedules, shared.Failures[0])
}

// naiveFlight is the control store (DB only, no cache) behind a singleflight
// without a freshness rule.
func naiveFlight() strategies.Factory {
	db := strategies.DBOnly()
	return strategies.Factory{
		Name: "db-only+singleflight",
		Doc:  "db-only, with concurrent Gets of a key sharing one load in-process, whenever they joined it.",
		New: func(ctx context.Context, c strategies.Config) (strategies.Store, error) {
			s, err := db.New(ctx, c)
			if err != nil {
				return nil, err
			}
			return &flightStore{Store: s, flights: make(map[string]*flightCall)}, nil
		},
	}
}

type flightStore struct {
	strategies.Store
	mu      sync.Mutex
	flights map[string]*flightCall
}

type flightCall struct {
	done chan struct{}
	v    string
	err  error
}

func (s *flightStore) Get(ctx context.Context, key string) (string, error) {
	s.mu.Lock()
	if c := s.flights[key]; c != nil {
		s.mu.Unlock()
		select {
		case <-c.done:
			return c.v, c.err
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	c := &flightCall{done: make(chan struct{})}
	s.flights[key] = c
	s.mu.Unlock()
	c.v, c.err = s.Store.Get(ctx, key)
	s.mu.Lock()
	delete(s.flights, key)
	s.mu.Unlock()
	close(c.done)
	return c.v, c.err
}
