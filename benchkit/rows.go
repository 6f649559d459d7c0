package benchkit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/memstore/memstore"
	"github.com/memstore/memstore/codec"
	"github.com/memstore/memstore/internal/inspect"
	"github.com/memstore/memstore/strategies"
)

// Subject is a cache+DB store as the shared row family drives it: the
// memstore store, each classic strategy and each peer library get the same
// rows, built by SubjectRows, so their numbers compare.
type Subject struct {
	Name string
	Kind Kind
	// Open returns a new instance of the store over rdb, a Redis client of
	// its own. The stampede row opens two, as two processes would. If the
	// instance is an io.Closer, the Env closes it.
	Open func(ctx context.Context, rdb redis.UniversalClient) (strategies.KV, error)
	// Evict, if set, drops key's cache entry. The rows make a key cold by
	// writing it with Set, then evicting it: needed only for stores whose
	// Set fills the cache.
	Evict func(ctx context.Context, kv strategies.KV, key string) error
	// DBLoads returns how many rows all instances have read from the DB.
	DBLoads func() int64
	// Settle, if set, waits for the store's background work after writes
	// (for stores that finish writes after they return), before a key
	// written counts as cold and after each measurement of a write row.
	Settle func(ctx context.Context) error
}

// SubjectRows returns the rows every store gets:
//
//	<name>/get-hit     Get of a cached key, cycling through Opts.HotKeys keys
//	<name>/get-miss    Get of a key whose row exists but is not cached (a
//	                   fresh key per op, from a pool of Opts.MissKeys made
//	                   cold again after each measurement)
//	<name>/set         Set of a key, cycling through Opts.HotKeys other keys,
//	                   a new value each time (a database skips a write that
//	                   changes nothing: rewriting one value measures no write)
//	<name>/delete      Delete of a key that exists (a fresh key per op, from
//	                   a pool written again after each measurement)
//	<name>/mixed-3     8 goroutines, 50% Get, 40% Set, 10% Delete over 3 keys
//	<name>/mixed-1000  the same over 1,000 keys
//	<name>/stampede    Opts.ColdKeys rounds; in each, Opts.Callers goroutines
//	                   over two instances (two Redis clients) Get one cold key
//	                   at once; db_loads_per_key counts the DB reads per key
//
// Stores whose Set caches the value need Subject.Evict for the miss and
// stampede rows; stores that finish writes in the background need
// Subject.Settle, run after every write before a key counts as cold.
func SubjectRows(env *Env, s Subject) []Row {
	o := env.Opts
	val := env.Value()
	hot := keys("hot-", o.HotKeys)
	set := keys("set-", o.HotKeys)
	// Each measurement of the stampede row needs keys nobody has read:
	// Settle seeds the next generation.
	coldGen := 0
	cold := keys("cold-0-", o.ColdKeys)
	miss := keys("miss-", o.MissKeys)
	var missNext atomic.Int64
	del := keys("del-", o.MissKeys)
	var delNext atomic.Int64
	var written atomic.Uint64
	fresh := func() string { return nth(val, written.Add(1)) }

	var (
		once  sync.Once
		inst  [2]strategies.KV
		oerr  error
		open2 = func(ctx context.Context) error {
			once.Do(func() {
				for i := range inst {
					kv, err := s.Open(ctx, env.Client())
					if err != nil {
						oerr = fmt.Errorf("open %s: %w", s.Name, err)
						return
					}
					if c, ok := kv.(interface{ Close() error }); ok {
						env.OnClose(c.Close)
					}
					inst[i] = kv
				}
			})
			return oerr
		}
	)
	settle := func(ctx context.Context) error {
		if s.Settle != nil {
			return s.Settle(ctx)
		}
		return nil
	}
	// seed writes keys, and makes them cold: written, settled, evicted.
	seed := func(ctx context.Context, keys []string, v string) error {
		err := parallel(ctx, keys, func(ctx context.Context, k string) error { return inst[0].Set(ctx, k, v) })
		if err == nil {
			err = settle(ctx)
		}
		if err == nil && s.Evict != nil {
			err = parallel(ctx, keys, func(ctx context.Context, k string) error { return s.Evict(ctx, inst[0], k) })
		}
		return err
	}
	want := func(v string, err error) error {
		if err == nil && v != val {
			err = fmt.Errorf("read %d bytes, want the %d-byte value", len(v), len(val))
		}
		return err
	}
	mixed := func(n int) Row {
		ks := keys(fmt.Sprintf("mixed%d-", n), n)
		return Row{
			Name: fmt.Sprintf("%s/mixed-%d", s.Name, n), Kind: s.Kind, DB: env.Dialect(), DBLoads: s.DBLoads, Concurrency: 8,
			Setup: func(ctx context.Context) error {
				if err := open2(ctx); err != nil {
					return err
				}
				return seed(ctx, ks, val)
			},
			Op: func(ctx context.Context, worker, i int) error {
				// A multiplicative hash spreads kinds and keys over ops.
				h := uint64(i) * 0x9E3779B97F4A7C15
				k := ks[(h>>32)%uint64(n)]
				kv := inst[worker%2]
				switch op := (h >> 8) % 10; {
				case op < 5:
					_, err := kv.Get(ctx, k)
					if errors.Is(err, memstore.ErrNotFound) {
						err = nil
					}
					return err
				case op < 9:
					return kv.Set(ctx, k, fresh())
				default:
					return kv.Delete(ctx, k)
				}
			},
			Settle: settle,
		}
	}
	return []Row{
		{
			Name: s.Name + "/get-hit", Kind: s.Kind, DB: env.Dialect(), Baseline: "raw/get", DBLoads: s.DBLoads,
			Setup: func(ctx context.Context) error {
				if err := open2(ctx); err != nil {
					return err
				}
				if err := seed(ctx, hot, val); err != nil {
					return err
				}
				return parallel(ctx, hot, func(ctx context.Context, k string) error {
					return want(inst[0].Get(ctx, k))
				})
			},
			Op: func(ctx context.Context, _, i int) error {
				return want(inst[0].Get(ctx, hot[i%len(hot)]))
			},
		},
		{
			Name: s.Name + "/get-miss", Kind: s.Kind, DB: env.Dialect(), Baseline: "raw/get", DBLoads: s.DBLoads,
			Setup: func(ctx context.Context) error {
				if err := open2(ctx); err != nil {
					return err
				}
				return seed(ctx, miss, val)
			},
			Op: func(ctx context.Context, _, _ int) error {
				n := missNext.Add(1) - 1
				if n >= int64(len(miss)) {
					return ErrExhausted
				}
				return want(inst[0].Get(ctx, miss[n]))
			},
			// Make the keys read so far cold again, so every measurement
			// has the whole pool.
			Settle: func(ctx context.Context) error {
				n := min(missNext.Swap(0), int64(len(miss)))
				if s.Evict == nil {
					return nil
				}
				return parallel(ctx, miss[:n], func(ctx context.Context, k string) error { return s.Evict(ctx, inst[0], k) })
			},
		},
		{
			Name: s.Name + "/set", Kind: s.Kind, DB: env.Dialect(), Baseline: "raw/set", DBLoads: s.DBLoads, Settle: settle,
			Setup: open2,
			Op: func(ctx context.Context, _, i int) error {
				return inst[0].Set(ctx, set[i%len(set)], fresh())
			},
		},
		{
			Name: s.Name + "/delete", Kind: s.Kind, DB: env.Dialect(), Baseline: "raw/set", DBLoads: s.DBLoads,
			Setup: func(ctx context.Context) error {
				if err := open2(ctx); err != nil {
					return err
				}
				return seed(ctx, del, val)
			},
			Op: func(ctx context.Context, _, _ int) error {
				n := delNext.Add(1) - 1
				if n >= int64(len(del)) {
					return ErrExhausted
				}
				return inst[0].Delete(ctx, del[n])
			},
			// Write the deleted keys again, so every delete deletes a row.
			Settle: func(ctx context.Context) error {
				n := min(delNext.Swap(0), int64(len(del)))
				return seed(ctx, del[:n], val)
			},
		},
		mixed(3),
		mixed(1000),
		{
			Name: s.Name + "/stampede", Kind: s.Kind, DB: env.Dialect(), DBLoads: s.DBLoads,
			Concurrency: o.Callers, Rounds: len(cold),
			Setup: func(ctx context.Context) error {
				if err := open2(ctx); err != nil {
					return err
				}
				return seed(ctx, cold, val)
			},
			Op: func(ctx context.Context, worker, round int) error {
				return want(inst[worker%2].Get(ctx, cold[round]))
			},
			Settle: func(ctx context.Context) error {
				coldGen++
				cold = keys("cold-"+strconv.Itoa(coldGen)+"-", o.ColdKeys)
				return seed(ctx, cold, val)
			},
		},
	}
}

// nth returns v with its end replaced by the number n, so that every write
// stores a value of the same length that no earlier write stored.
func nth(v string, n uint64) string {
	num := strconv.FormatUint(n, 10)
	if len(num) >= len(v) {
		return num[len(num)-len(v):]
	}
	return v[:len(v)-len(num)] + num
}

// StandardRows returns every row of a run but the peers': raw go-redis,
// memstore, and the classic strategies.
//
// The raw rows are the floor the others are divided by:
//
//	raw/get   GET of a value as long as memstore's cache entry (header + value)
//	raw/set   SET of such a value, with a TTL
//	raw/mget  MGET of 100 such keys; on a cluster, where keys of many
//	          slots cannot share an MGET, 100 GETs in one pipeline, which
//	          the cluster client sends as one pipeline per master (what
//	          memstore's GetMany does)
//
// memstore gets the SubjectRows and memstore/getmany-100, GetMany of 100
// cached keys.
//
// Each known-bad strategy of package strategies gets the SubjectRows.
// memstore's stores run without hooks (Stats counts their DB loads) and
// without the background reconciler, which would only add noise.
func StandardRows(env *Env) []Row {
	rows := RawRows(env)
	rows = append(rows, SubjectRows(env, MemstoreSubject(env))...)
	rows = append(rows, memstoreRows(env)...)
	for _, f := range strategies.All() {
		if f.ExpectPass {
			continue
		}
		rows = append(rows, SubjectRows(env, StrategySubject(env, f))...)
	}
	return rows
}

// RawRows returns raw/get, raw/set and raw/mget.
func RawRows(env *Env) []Row {
	rdb := env.Client()
	ns := env.Namespace("raw")
	val := env.RawValue()
	// Named as memstore names its key hashes, so the baseline's keys hash
	// and spread as the subject's do.
	hot := keys("hot-", env.Opts.HotKeys)
	set := keys("set-", env.Opts.HotKeys)
	for i := range hot {
		hot[i] = inspect.Key(ns, hot[i])
		set[i] = inspect.Key(ns, set[i])
	}
	batches := batches(hot, 100)
	const ttl = 10 * time.Minute // memstore's default TTL
	// Every row that reads the hot keys sets them first: a row may run
	// without the others (--run), and an MGET of missing keys would make a
	// flattering baseline.
	setHot := func(ctx context.Context) error {
		_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, k := range hot {
				p.Set(ctx, k, val, ttl)
			}
			return nil
		})
		return err
	}
	return []Row{
		{
			Name: "raw/get", Kind: KindRaw, Baseline: "raw/get", Setup: setHot,
			Op: func(ctx context.Context, _, i int) error {
				v, err := rdb.Get(ctx, hot[i%len(hot)]).Result()
				if err == nil && len(v) != len(val) {
					err = errors.New("raw/get: wrong value")
				}
				return err
			},
		},
		{
			Name: "raw/set", Kind: KindRaw, Baseline: "raw/set",
			Op: func(ctx context.Context, _, i int) error {
				return rdb.Set(ctx, set[i%len(set)], nth(val, uint64(i)), ttl).Err()
			},
		},
		{
			Name: "raw/mget", Kind: KindRaw, Baseline: "raw/mget", Setup: setHot,
			Op: func(ctx context.Context, _, i int) error {
				if env.Cluster() {
					cmds, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
						for _, k := range batches[i%len(batches)] {
							p.Get(ctx, k)
						}
						return nil
					})
					if err == nil && len(cmds) != 100 {
						err = errors.New("raw/mget: wrong length")
					}
					return err
				}
				vs, err := rdb.MGet(ctx, batches[i%len(batches)]...).Result()
				if err == nil && len(vs) != 100 {
					err = errors.New("raw/mget: wrong length")
				}
				for _, v := range vs {
					if err == nil && v == nil {
						err = errors.New("raw/mget: a hot key is missing")
					}
				}
				return err
			},
		},
	}
}

// MemstoreSubject is the memstore store over Store[string] with the String
// codec (so the numbers are the store's, not a codec's).
func MemstoreSubject(env *Env) Subject {
	var mu sync.Mutex
	var stores []*memstore.Store[string]
	var evictClient redis.UniversalClient
	return Subject{
		Name: "memstore", Kind: KindMemstore,
		Open: func(ctx context.Context, rdb redis.UniversalClient) (strategies.KV, error) {
			s, err := newStore(env, rdb, "memstore")
			if err != nil {
				return nil, err
			}
			env.OnClose(s.Close)
			mu.Lock()
			stores = append(stores, s)
			mu.Unlock()
			return strategies.MemstoreKV(s), nil
		},
		DBLoads: func() int64 {
			mu.Lock()
			defer mu.Unlock()
			var n uint64
			for _, s := range stores {
				n += s.Stats().DBLoads
			}
			return int64(n)
		},
		Evict: func(ctx context.Context, _ strategies.KV, key string) error {
			mu.Lock()
			s := stores[0]
			if evictClient == nil {
				evictClient = env.Client()
			}
			c := evictClient
			mu.Unlock()
			return inspect.Evict(ctx, c, s.Namespace(), key)
		},
		// A write's end follows its return: Sync waits for the ends of
		// the writes measured, so the next measurement starts settled.
		Settle: func(ctx context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			for _, s := range stores {
				if err := s.Sync(ctx); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

func newStore(env *Env, rdb redis.UniversalClient, ns string) (*memstore.Store[string], error) {
	return memstore.New(rdb, env.DB, &memstore.Options[string]{
		Namespace:         env.Namespace(ns),
		Codec:             codec.String(),
		DisableReconciler: true,
		AutoMigrate:       true,
	})
}

// StrategySubject is one strategy of package strategies. Its DB loads are
// counted by a hook, which costs a few nanoseconds per step.
func StrategySubject(env *Env, f strategies.Factory) Subject {
	var loads atomic.Int64
	var migrate sync.Once
	s := Subject{
		Name: f.Name, Kind: KindStrategy,
		Open: func(ctx context.Context, rdb redis.UniversalClient) (strategies.KV, error) {
			first := false
			migrate.Do(func() { first = true })
			return f.New(ctx, strategies.Config{
				Redis: rdb, DB: env.DB, Namespace: env.Namespace(f.Name), Migrate: first,
				Hook: func(_ context.Context, ev memstore.HookEvent) error {
					if ev.Step == memstore.StepDBLoad && ev.Phase == memstore.After && ev.Err == nil {
						loads.Add(1)
					}
					return nil
				},
			})
		},
		Evict: func(ctx context.Context, kv strategies.KV, key string) error {
			return kv.(strategies.Store).Evict(ctx, key)
		},
		DBLoads: loads.Load,
	}
	if f.Name == strategies.DoubleDelete().Name {
		// Let the delayed deletes of the set row land before the next row.
		s.Settle = func(ctx context.Context) error {
			return sleep(ctx, 3*strategies.DoubleDeleteDelay)
		}
	}
	return s
}

// memstoreRows are the rows only memstore has: batches.
func memstoreRows(env *Env) []Row {
	val := env.Value()
	var (
		once sync.Once
		s    *memstore.Store[string]
		oerr error
	)
	open := func(ctx context.Context) error {
		once.Do(func() {
			s, oerr = newStore(env, env.Client(), "memstore-only")
			if oerr == nil {
				env.OnClose(s.Close)
			}
		})
		return oerr
	}
	hot := keys("hot-", env.Opts.HotKeys)
	batches := batches(hot, 100)
	loads := func() int64 { return int64(s.Stats().DBLoads) }
	return []Row{
		{
			Name: "memstore/getmany-100", Kind: KindMemstore, DB: env.Dialect(), Baseline: "raw/mget", DBLoads: loads,
			Setup: func(ctx context.Context) error {
				if err := open(ctx); err != nil {
					return err
				}
				if err := setMany(ctx, s, hot, val); err != nil {
					return err
				}
				if err := s.Sync(ctx); err != nil {
					return err
				}
				_, err := s.GetMany(ctx, hot) // fills them all
				return err
			},
			Op: func(ctx context.Context, _, i int) error {
				m, err := s.GetMany(ctx, batches[i%len(batches)])
				if err == nil && len(m) != 100 {
					err = fmt.Errorf("memstore/getmany-100: %d values", len(m))
				}
				return err
			},
		},
	}
}

// setMany writes keys in batches: one transaction each.
func setMany(ctx context.Context, s *memstore.Store[string], keys []string, val string) error {
	const chunk = 2000
	for start := 0; start < len(keys); start += chunk {
		m := make(map[string]string, chunk)
		for _, k := range keys[start:min(start+chunk, len(keys))] {
			m[k] = val
		}
		if err := s.SetMany(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

func keys(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strconv.Itoa(i)
	}
	return out
}

// batches returns len(keys) windows of size keys each, starting at every
// key and wrapping around.
func batches(keys []string, size int) [][]string {
	out := make([][]string, len(keys))
	for b := range out {
		out[b] = make([]string, size)
		for j := range size {
			out[b][j] = keys[(b+j)%len(keys)]
		}
	}
	return out
}

// parallel runs f for every key, four at a time.
func parallel(ctx context.Context, keys []string, f func(context.Context, string) error) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, k := range keys {
		g.Go(func() error { return f(ctx, k) })
	}
	return g.Wait()
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
