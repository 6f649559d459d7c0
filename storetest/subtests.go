package storetest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/memstore/memstore"
	"github.com/memstore/memstore/codec"
	"github.com/memstore/memstore/fault"
	"github.com/memstore/memstore/history"
	"github.com/memstore/memstore/internal/testenv"
	"github.com/memstore/memstore/memtest"
	"github.com/memstore/memstore/verify"
)

// suite is what subtests run on: one redis-server, one database (a SQLite
// file or a PostgreSQL database); every subtest works in a namespace of
// its own. Run gives each subtest a suite of its own, Check shares one.
type suite struct {
	h       Harness
	rs      *memtest.RedisServer
	dialect string // dialectSQLite or dialectPostgres
	dbArg   string // the SQLite path or the postgres:// URL
	seq     atomic.Int64
	dbOnce  sync.Once
	dbErr   error
	// historyDir names where to save failing histories, creating it;
	// nil: nowhere.
	historyDir func() (string, error)
}

// keep saves a failing run's history and returns where, or why it could
// not.
func (s *suite) keep(r *verify.Result, name string) string {
	if s.historyDir == nil || r.History == nil {
		return ""
	}
	dir, err := s.historyDir()
	if err != nil {
		return "; the history could not be saved: " + err.Error()
	}
	path := filepath.Join(dir, strings.NewReplacer("/", "_", "+", "_").Replace(name)+".history.jsonl")
	f, err := os.Create(path)
	if err == nil {
		err = errors.Join(history.Write(f, r.History), f.Close())
	}
	if err != nil {
		return "; the history could not be saved: " + err.Error()
	}
	msg := "; history saved in " + path + " (memstore check-history " + path + ")"
	if name, dump := r.GoroutineDump(); name != "" {
		dpath := filepath.Join(dir, name)
		if err := os.WriteFile(dpath, []byte(dump), 0o644); err == nil {
			msg += "; every goroutine's stack when the call hung: " + dpath
		}
	}
	return msg
}

type subtest struct {
	name string
	run  func(ctx context.Context, s *suite, logf func(string, ...any)) error
}

func subtests(h Harness) []subtest {
	sts := []subtest{
		{"round-trip", roundTrip},
		{"delete", deleteThenGet},
		{"not-found", notFound},
		{"bad-input", badInput},
		{"ttl", ttlBoundsMemoryOnly},
		{"ttl-honoured", ttlHonoured},
		{"convergence", convergence},
		{"stampede", stampede},
		{"linearizability", func(ctx context.Context, s *suite, logf func(string, ...any)) error {
			return s.verify(ctx, logf, []string{"none"}, nil)
		}},
	}
	for _, f := range h.Faults {
		if f == "none" {
			continue
		}
		sts = append(sts, subtest{"fault/" + f, func(ctx context.Context, s *suite, logf func(string, ...any)) error {
			return s.verify(ctx, logf, []string{f}, nil)
		}})
	}
	for _, n := range h.Nemeses {
		sts = append(sts, subtest{"fault/" + n.Name(), func(ctx context.Context, s *suite, logf func(string, ...any)) error {
			return s.verify(ctx, logf, []string{"none"}, n)
		}})
	}
	return sts
}

// instances opens n instances of the store in a fresh namespace, each with
// its own Redis client and DB handle. close releases them.
func (s *suite) instances(ctx context.Context, n int, hook memstore.Hook, ttl time.Duration) (sts []Store, close func(), err error) {
	s.dbOnce.Do(func() {
		if s.dialect != dialectSQLite {
			return
		}
		// Create the file in WAL mode before the handles open it.
		var db *sql.DB
		if db, s.dbErr = memtest.OpenSQLite(s.dbArg); s.dbErr == nil {
			db.Close()
		}
	})
	if s.dbErr != nil {
		return nil, nil, s.dbErr
	}
	return s.instancesIn(ctx, fmt.Sprintf("storetest-%d", s.seq.Add(1)), n, hook, ttl)
}

// instancesIn opens n instances of the store in namespace ns, each with a
// Redis client and a DB handle of its own (internal/testenv's options).
func (s *suite) instancesIn(ctx context.Context, ns string, n int, hook memstore.Hook, ttl time.Duration) (sts []Store, close func(), err error) {
	var closers testenv.Closers
	close = func() { _ = closers.Close() }
	r := testenv.Standalone(s.rs)
	d := &testenv.DB{Dialect: testenv.SQLite, Arg: s.dbArg}
	if s.dialect == dialectPostgres {
		d.Dialect = testenv.Postgres
	}
	for i := range n {
		rdb := r.NewClient("")
		db, err := d.Open()
		if err != nil {
			rdb.Close()
			close()
			return nil, nil, err
		}
		closers.OnClose(func() error { return errors.Join(rdb.Close(), db.Close()) })
		env := Env{Redis: rdb, DB: db, Dialect: s.dialect, Namespace: ns, Hook: hook, TTL: ttl, Migrate: i == 0}
		env.RedisAddr, env.RedisURL = redisAddr(rdb)
		st, err := s.h.New(ctx, env)
		if err != nil {
			close()
			return nil, nil, fmt.Errorf("harness New: %w", err)
		}
		if st == nil {
			close()
			return nil, nil, errors.New("harness New returned a nil Store")
		}
		closers.OnClose(func() error { return adapted{st}.Close() })
		sts = append(sts, st)
	}
	return sts, close, nil
}

// verify runs a short workload with faults (and the extra nemesis n, if
// any) through package verify; the store must pass. Its stampede probe is
// reported, not judged: the stampede subtest does that, without faults.
func (s *suite) verify(ctx context.Context, logf func(string, ...any), faults []string, n fault.Nemesis) error {
	cfg := verify.Config{
		Store:     s.h.factory(s.dialect),
		Redis:     s.rs,
		DB:        s.dbArg,
		Clients:   s.h.Clients,
		Instances: s.h.Instances,
		Duration:  s.h.Duration,
		Seed:      s.h.Seed,
		Faults:    faults,
		// The workload's own faults come one at a time here: hold each
		// for a good part of the run.
		FaultGap:  150 * time.Millisecond,
		FaultHold: 300 * time.Millisecond,
	}
	if n != nil {
		cfg.Nemeses = append(cfg.Nemeses, n)
	}
	cfg.RequireFaults = true
	r, err := verify.Run(ctx, cfg)
	if errors.Is(err, verify.ErrFaultUnavailable) {
		return fmt.Errorf("%w: %v", errSkip, err)
	}
	if err != nil {
		return err
	}
	logf("%s", r.Summary())
	if r.Passed() {
		return nil
	}
	name := r.Store + "-" + s.dialect + "-" + strings.Join(faults, "+")
	if n != nil {
		name += "-" + n.Name()
	}
	msg := "problems: " + strings.Join(r.Problems(), "; ")
	if fired := r.Fired(); len(fired) > 0 {
		msg = "checks fired: " + strings.Join(fired, ", ") + "; " + msg
	}
	return errors.New(msg + s.keep(r, name))
}

// Values is the table of awkward values every store must return exactly,
// byte for byte: empty, invalid UTF-8, NUL bytes, long values, words that
// stores use as markers ("null", "nil"), JSON look-alikes, and memstore's
// own entry header (a value that looks like a sealed cache entry,
// including a cached "not found").
func Values() []struct{ Name, Value string } {
	long := strings.Repeat("0123456789abcdef", 64<<10/16)
	bin := make([]byte, 256<<10)
	for i := range bin {
		bin[i] = byte(i * 7)
	}
	return []struct{ Name, Value string }{
		{"empty", ""},
		{"ascii", "hello"},
		{"space", " "},
		{"newline", "\r\n"},
		{"nul", "\x00"},
		{"nul-inside", "a\x00b"},
		{"invalid-utf8", "\xff\xfe\xfd"},
		{"surrogate-utf8", "\xed\xa0\x80"},
		{"overlong-utf8", "\xc0\xaf"},
		{"utf8", "héllo, 世界 🙂"},
		{"bom", "\ufeffx"},
		{"null", "null"},
		{"nil", "nil"},
		{"go-nil", "<nil>"},
		{"redis-nil", "(nil)"},
		{"not-found-word", "NOT_FOUND"},
		{"json-object", `{"a":1}`},
		{"json-string", `"x"`},
		{"json-array", `[]`},
		{"big-int", "9007199254740993"},
		{"false", "false"},
		{"codec-magic", "\xc5\x4d"},
		{"sealed-not-found", string(codec.Seal(nil, codec.Header{NotFound: true}, nil))},
		{"sealed-value", string(codec.Seal(nil, codec.Header{Format: codec.FormatString, Version: 7}, []byte("x")))},
		{"long-64KiB", long},
		{"binary-256KiB", string(bin)},
	}
}

func show(v string) string {
	if len(v) > 48 {
		return fmt.Sprintf("%q… (%d bytes)", v[:48], len(v))
	}
	return strconv.Quote(v)
}

// roundTrip writes each value on a key of its own and reads it back through
// every path: the writer's instance (twice: a fill, then a hit), another
// instance, and after an eviction.
func roundTrip(ctx context.Context, s *suite, _ func(string, ...any)) error {
	sts, closeAll, err := s.instances(ctx, 2, nil, 0)
	if err != nil {
		return err
	}
	defer closeAll()
	a, b := sts[0], sts[1]
	var errs []error
	for _, tc := range Values() {
		key := "rt-" + tc.Name
		if err := a.Set(ctx, key, tc.Value); err != nil {
			errs = append(errs, fmt.Errorf("%s: Set: %w", tc.Name, err))
			continue
		}
		steps := []struct {
			path string
			st   Store
		}{{"read back", a}, {"read again", a}, {"read by another instance", b}}
		for _, step := range steps {
			got, err := step.st.Get(ctx, key)
			if err != nil || got != tc.Value {
				errs = append(errs, fmt.Errorf("%s: %s: got %s, %v; want %s", tc.Name, step.path, show(got), err, show(tc.Value)))
			}
		}
		if ev, ok := a.(Evicter); ok {
			if err := ev.Evict(ctx, key); err != nil {
				errs = append(errs, fmt.Errorf("%s: Evict: %w", tc.Name, err))
				continue
			}
			if got, err := b.Get(ctx, key); err != nil || got != tc.Value {
				errs = append(errs, fmt.Errorf("%s: read after eviction (from the DB): got %s, %v; want %s", tc.Name, show(got), err, show(tc.Value)))
			}
		}
	}
	return errors.Join(errs...)
}

func wantNotFound(ctx context.Context, st Store, key, what string) error {
	got, err := st.Get(ctx, key)
	if !errors.Is(err, memstore.ErrNotFound) {
		return fmt.Errorf("%s: Get = %s, %v; want an error wrapping memstore.ErrNotFound", what, show(got), err)
	}
	return nil
}

// deleteThenGet: a deleted key is missing everywhere, cached or not.
func deleteThenGet(ctx context.Context, s *suite, _ func(string, ...any)) error {
	sts, closeAll, err := s.instances(ctx, 2, nil, 0)
	if err != nil {
		return err
	}
	defer closeAll()
	a, b := sts[0], sts[1]
	if err := a.Set(ctx, "d", "v"); err != nil {
		return fmt.Errorf("calling Set: %w", err)
	}
	if got, err := b.Get(ctx, "d"); err != nil || got != "v" {
		return fmt.Errorf("before Delete, Get = %s, %v; want \"v\"", show(got), err)
	}
	if err := a.Delete(ctx, "d"); err != nil {
		return fmt.Errorf("calling Delete: %w", err)
	}
	errs := []error{
		wantNotFound(ctx, a, "d", "after Delete, same instance"),
		wantNotFound(ctx, b, "d", "after Delete, another instance"),
		wantNotFound(ctx, b, "d", "after Delete, read again"),
	}
	if ev, ok := a.(Evicter); ok {
		errs = append(errs, ev.Evict(ctx, "d"), wantNotFound(ctx, a, "d", "after Delete and eviction"))
	}
	if err := a.Delete(ctx, "never-written"); err != nil {
		errs = append(errs, fmt.Errorf("deleting a key never written: %w; want nil", err))
	}
	if err := a.Set(ctx, "d", "again"); err != nil {
		errs = append(errs, fmt.Errorf("after Delete, Set: %w", err))
	} else if got, err := b.Get(ctx, "d"); err != nil || got != "again" {
		errs = append(errs, fmt.Errorf("after Delete and Set, Get = %s, %v; want \"again\"", show(got), err))
	}
	return errors.Join(errs...)
}

// notFound: a key never written is missing, also when asked again (a cached
// miss must not turn into a value).
func notFound(ctx context.Context, s *suite, _ func(string, ...any)) error {
	sts, closeAll, err := s.instances(ctx, 2, nil, 0)
	if err != nil {
		return err
	}
	defer closeAll()
	return errors.Join(
		wantNotFound(ctx, sts[0], "missing", "first Get"),
		wantNotFound(ctx, sts[0], "missing", "second Get"),
		wantNotFound(ctx, sts[1], "missing", "Get by another instance"),
	)
}

// badInput: an empty key is an error, never a panic or a stored value.
func badInput(ctx context.Context, s *suite, _ func(string, ...any)) error {
	sts, closeAll, err := s.instances(ctx, 1, nil, 0)
	if err != nil {
		return err
	}
	defer closeAll()
	st := sts[0]
	var errs []error
	try := func(what string, f func() error) {
		defer func() {
			if p := recover(); p != nil {
				errs = append(errs, fmt.Errorf("%s with an empty key panicked: %v", what, p))
			}
		}()
		if err := f(); err == nil {
			errs = append(errs, fmt.Errorf("%s with an empty key returned no error", what))
		}
	}
	try("Set", func() error { return st.Set(ctx, "", "v") })
	try("Get", func() error { _, err := st.Get(ctx, ""); return err })
	try("Delete", func() error { return st.Delete(ctx, "") })
	return errors.Join(errs...)
}

// ttlBoundsMemoryOnly: an entry whose cache TTL ran out is still read, from
// the DB. TTL bounds memory, not correctness.
func ttlBoundsMemoryOnly(ctx context.Context, s *suite, _ func(string, ...any)) error {
	sts, closeAll, err := s.instances(ctx, 2, nil, 50*time.Millisecond)
	if err != nil {
		return err
	}
	defer closeAll()
	a, b := sts[0], sts[1]
	if err := a.Set(ctx, "t", "v"); err != nil {
		return fmt.Errorf("calling Set: %w", err)
	}
	if got, err := a.Get(ctx, "t"); err != nil || got != "v" {
		return fmt.Errorf("after Set, Get = %s, %v; want \"v\"", show(got), err)
	}
	time.Sleep(150 * time.Millisecond)
	var errs []error
	for i, st := range []Store{a, b, a} {
		if got, err := st.Get(ctx, "t"); err != nil || got != "v" {
			errs = append(errs, fmt.Errorf("after the 50ms TTL ran out, Get %d = %s, %v; want \"v\" (from the DB)", i+1, show(got), err))
		}
	}
	return errors.Join(errs...)
}

// convergence: after concurrent writes from several instances stop, the
// cache holds nothing or exactly the DB's value for every key, and every
// instance reads the same value before and after an eviction.
func convergence(ctx context.Context, s *suite, _ func(string, ...any)) error {
	sts, closeAll, err := s.instances(ctx, 3, nil, 0)
	if err != nil {
		return err
	}
	defer closeAll()
	keys := []string{"c0", "c1", "c2"}
	var wg sync.WaitGroup
	for w := range 6 {
		st := sts[w%len(sts)]
		wg.Go(func() {
			for i := range 40 {
				k := keys[(w+i)%len(keys)]
				cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				switch i % 5 {
				case 0, 2:
					_ = st.Set(cctx, k, fmt.Sprintf("w%d-%d", w, i))
				case 4:
					_ = st.Delete(cctx, k)
				default:
					_, _ = st.Get(cctx, k)
				}
				cancel()
			}
		})
	}
	wg.Wait()
	var errs []error
	for _, k := range keys {
		if in, ok := sts[0].(Inspector); ok {
			snap, err := in.Inspect(ctx, k)
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("%s: Inspect: %w", k, err))
			case snap.Cached && snap.CacheFound && (!snap.DBFound || snap.CacheValue != snap.DBValue):
				errs = append(errs, fmt.Errorf("%s: the cache holds %s, the DB %s", k, show(snap.CacheValue), dbWords(snap)))
			case snap.Cached && !snap.CacheFound && snap.DBFound:
				errs = append(errs, fmt.Errorf("%s: the cache holds a cached miss, the DB %s", k, dbWords(snap)))
			}
		}
		var seen []string
		read := func(st Store) {
			v, err := st.Get(ctx, k)
			switch {
			case errors.Is(err, memstore.ErrNotFound):
				seen = append(seen, "(missing)")
			case err != nil:
				seen = append(seen, "error: "+err.Error())
			default:
				seen = append(seen, show(v))
			}
		}
		for _, st := range sts {
			read(st)
		}
		if ev, ok := sts[0].(Evicter); ok {
			if err := ev.Evict(ctx, k); err != nil {
				errs = append(errs, fmt.Errorf("%s: Evict: %w", k, err))
			}
			read(sts[1])
		}
		for _, v := range seen[1:] {
			if v != seen[0] {
				errs = append(errs, fmt.Errorf("%s: after the writes stopped, reads disagree: %s (instances 1..%d, then after an eviction)", k, strings.Join(seen, ", "), len(sts)))
				break
			}
		}
	}
	return errors.Join(errs...)
}

func dbWords(s Snapshot) string {
	if !s.DBFound {
		return "has no row"
	}
	return "holds " + show(s.DBValue)
}

// stampede: many concurrent Gets of a cold key across instances all return
// its value; the DB loads they cause are counted through Env.Hook and
// reported (a failure above Harness.MaxColdLoads).
func stampede(ctx context.Context, s *suite, logf func(string, ...any)) error {
	var loads atomic.Int64
	hook := func(_ context.Context, ev memstore.HookEvent) error {
		if ev.Step == memstore.StepDBLoad && ev.Phase == memstore.Before && ev.Key == "cold" {
			loads.Add(1)
		}
		return nil
	}
	if s.h.SkipStampede != "" {
		return fmt.Errorf("%w: the harness opts out: %s", errSkip, s.h.SkipStampede)
	}
	sts, closeAll, err := s.instances(ctx, 3, hook, 0)
	if err != nil {
		return err
	}
	defer closeAll()
	for k, v := range map[string]string{"cold": "v", "warm": "w"} {
		if err := sts[0].Set(ctx, k, v); err != nil {
			return fmt.Errorf("calling Set: %w", err)
		}
	}
	// The writes' background work (memstore: their ends, until which
	// every read goes to the DB uncoordinated) must be done for the key to
	// be cold rather than being written.
	if err := settle(ctx, sts[0]); err != nil {
		return err
	}
	ev, ok := sts[0].(Evicter)
	if !ok {
		return fmt.Errorf("%w: the store has no Evict, so no key can be made cold", errSkip)
	}
	if err := ev.Evict(ctx, "cold"); err != nil {
		return fmt.Errorf("Evict: %w", err)
	}
	// Warm every instance's connections with the same burst on a cached
	// key first: the measurement is of how a store coordinates loads of a
	// cold key, not of how long opening connections takes on a loaded
	// machine (memstore reads the DB when a Redis round trip, connection
	// set-up included, overruns its Redis budget).
	const readers = 50
	if err := burst(ctx, sts, readers, "warm", "w"); err != nil {
		return fmt.Errorf("warming up: %w", err)
	}
	loads.Store(0)
	errs := []error{burst(ctx, sts, readers, "cold", "v")}
	n := int(loads.Load())
	if n == 0 {
		// Every Get of a cold key must read the DB at least once: seeing
		// none means the loads were not reported, and a measurement that
		// saw nothing proves nothing.
		errs = append(errs, fmt.Errorf("%d concurrent Gets of a cold key, and the store reported no DB load through Env.Hook (memstore.StepDBLoad, Before): install the hook, or set Harness.SkipStampede with the reason", readers))
	} else {
		logf("stampede: %d concurrent Gets of a cold key across %d instances made %d DB loads", readers, len(sts), n)
	}
	if max := s.h.MaxColdLoads; max > 0 && n > max {
		errs = append(errs, fmt.Errorf("%d concurrent Gets of a cold key made %d DB loads; at most %d allowed", readers, n, max))
	}
	return errors.Join(errs...)
}

// burst runs readers concurrent Gets of key, spread over sts and released
// at once, each of which must return want.
func burst(ctx context.Context, sts []Store, readers int, key, want string) error {
	gate := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for r := range readers {
		st := sts[r%len(sts)]
		wg.Go(func() {
			<-gate
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			if got, err := st.Get(cctx, key); err != nil || got != want {
				mu.Lock()
				errs = append(errs, fmt.Errorf("reader %d: Get(%q) = %s, %v; want %q", r, key, show(got), err, want))
				mu.Unlock()
			}
		})
	}
	close(gate)
	wg.Wait()
	return errors.Join(errs...)
}
