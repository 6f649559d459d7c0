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
	Open func(ctx context.Context, rdb redis.UniversalClient) (memstore.KV, error)
	// Evict, if set, drops key's cache entry. The rows make a key cold by
	// writing it with Set, then evicting it: needed only for stores whose
	// Set fills the cache.
	Evict func(ctx context.Context, kv memstore.KV, key string) error
	// DBLoads returns how many rows all instances have read from the DB.
	DBLoads func() int64
	// Settle, if set, runs after each measurement of the set row (for
	// stores that finish writes in the background).
	Settle func(ctx context.Context) error
}

// SubjectRows returns the rows every store gets:
//
//	<name>/get-hit   Get of a cached key, cycling through Opts.HotKeys keys
//	<name>/set       Set of a key, cycling through Opts.HotKeys other keys
//	<name>/stampede  Opts.ColdKeys rounds; in each, Opts.Callers goroutines
//	                 over two instances (two Redis clients) Get one cold key
//	                 at once; db_loads_per_key counts the DB reads per key
func SubjectRows(env *Env, s Subject) []Row {
	o := env.Opts
	val := env.Value()
	hot := keys("hot-", o.HotKeys)
	set := keys("set-", o.HotKeys)
	// Each measurement of the stampede row needs keys nobody has read:
	// Settle seeds the next generation.
	coldGen := 0
	cold := keys("cold-0-", o.ColdKeys)

	var (
		once  sync.Once
		inst  [2]memstore.KV
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
	seedCold := func(ctx context.Context, keys []string) error {
		return parallel(ctx, keys, func(ctx context.Context, k string) error {
			if err := inst[0].Set(ctx, k, val); err != nil {
				return err
			}
			if s.Evict != nil {
				return s.Evict(ctx, inst[0], k)
			}
			return nil
		})
	}
	want := func(v string, err error) error {
		if err == nil && v != val {
			err = fmt.Errorf("read %d bytes, want the %d-byte value", len(v), len(val))
		}
		return err
	}
	return []Row{
		{
			Name: s.Name + "/get-hit", Kind: s.Kind, Baseline: "raw/get", DBLoads: s.DBLoads,
			Setup: func(ctx context.Context) error {
				if err := open2(ctx); err != nil {
					return err
				}
				if err := seedCold(ctx, hot); err != nil {
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
			Name: s.Name + "/set", Kind: s.Kind, Baseline: "raw/set", DBLoads: s.DBLoads, Settle: s.Settle,
			Setup: open2,
			Op: func(ctx context.Context, _, i int) error {
				return inst[0].Set(ctx, set[i%len(set)], val)
			},
		},
		{
			Name: s.Name + "/stampede", Kind: s.Kind, DBLoads: s.DBLoads,
			Concurrency: o.Callers, Rounds: len(cold),
			Setup: func(ctx context.Context) error {
				if err := open2(ctx); err != nil {
					return err
				}
				return seedCold(ctx, cold)
			},
			Op: func(ctx context.Context, worker, round int) error {
				return want(inst[worker%2].Get(ctx, cold[round]))
			},
			Settle: func(ctx context.Context) error {
				coldGen++
				cold = keys("cold-"+strconv.Itoa(coldGen)+"-", o.ColdKeys)
				return seedCold(ctx, cold)
			},
		},
	}
}

// StandardRows returns every row of a run but the peers': raw go-redis,
// memstore, and the classic strategies.
//
// The raw rows are the floor the others are divided by:
//
//	raw/get   GET of a value as long as memstore's cache entry (header + value)
//	raw/set   SET of such a value, with a TTL
//	raw/mget  MGET of 100 such keys
//
// memstore gets the SubjectRows and:
//
//	memstore/get-miss     Get of a key whose row exists but was never cached
//	                      (a fresh key per op, from a pool of Opts.MissKeys
//	                      made cold again after each measurement): the Lua
//	                      get takes the lease, the DB read, the Lua fill
//	memstore/delete       Delete (a tombstone write) cycling through keys
//	memstore/getmany-100  GetMany of 100 cached keys
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
	hot := keys(ns+":{hot-", env.Opts.HotKeys)
	set := keys(ns+":{set-", env.Opts.HotKeys)
	for i := range hot {
		hot[i] += "}"
		set[i] += "}"
	}
	batches := batches(hot, 100)
	const ttl = 10 * time.Minute // memstore's default TTL
	return []Row{
		{
			Name: "raw/get", Kind: KindRaw, Baseline: "raw/get",
			Setup: func(ctx context.Context) error {
				_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
					for _, k := range hot {
						p.Set(ctx, k, val, ttl)
					}
					return nil
				})
				return err
			},
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
				return rdb.Set(ctx, set[i%len(set)], val, ttl).Err()
			},
		},
		{
			Name: "raw/mget", Kind: KindRaw, Baseline: "raw/mget",
			Op: func(ctx context.Context, _, i int) error {
				vs, err := rdb.MGet(ctx, batches[i%len(batches)]...).Result()
				if err == nil && len(vs) != 100 {
					err = errors.New("raw/mget: wrong length")
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
	return Subject{
		Name: "memstore", Kind: KindMemstore,
		Open: func(ctx context.Context, rdb redis.UniversalClient) (memstore.KV, error) {
			s, err := newStore(env, rdb, "memstore")
			if err != nil {
				return nil, err
			}
			env.OnClose(s.Close)
			mu.Lock()
			stores = append(stores, s)
			mu.Unlock()
			return memstore.NewKV(s), nil
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
		Open: func(ctx context.Context, rdb redis.UniversalClient) (memstore.KV, error) {
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
		Evict: func(ctx context.Context, kv memstore.KV, key string) error {
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

// memstoreRows are the rows only memstore has: misses, deletes, batches.
func memstoreRows(env *Env) []Row {
	o := env.Opts
	val := env.Value()
	var (
		once sync.Once
		s    *memstore.Store[string]
		rdb  redis.UniversalClient
		oerr error
	)
	open := func(ctx context.Context) error {
		once.Do(func() {
			rdb = env.Client()
			s, oerr = newStore(env, rdb, "memstore-only")
			if oerr == nil {
				env.OnClose(s.Close)
			}
		})
		return oerr
	}
	miss := keys("miss-", o.MissKeys)
	var missNext atomic.Int64
	del := keys("del-", o.HotKeys)
	hot := keys("hot-", o.HotKeys)
	batches := batches(hot, 100)
	loads := func() int64 { return int64(s.Stats().DBLoads) }
	return []Row{
		{
			Name: "memstore/get-miss", Kind: KindMemstore, Baseline: "raw/get", DBLoads: loads,
			Setup: func(ctx context.Context) error {
				if err := open(ctx); err != nil {
					return err
				}
				return setMany(ctx, s, miss, val)
			},
			Op: func(ctx context.Context, _, _ int) error {
				n := missNext.Add(1) - 1
				if n >= int64(len(miss)) {
					return ErrExhausted
				}
				v, err := s.Get(ctx, miss[n])
				if err == nil && v != val {
					err = errors.New("memstore/get-miss: wrong value")
				}
				return err
			},
			// Make the keys read so far cold again, so every measurement
			// has the whole pool.
			Settle: func(ctx context.Context) error {
				n := min(missNext.Swap(0), int64(len(miss)))
				_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
					for _, k := range miss[:n] {
						p.Del(ctx, s.RedisKey(k))
					}
					return nil
				})
				return err
			},
		},
		{
			Name: "memstore/delete", Kind: KindMemstore, Baseline: "raw/set", DBLoads: loads,
			Setup: open,
			Op: func(ctx context.Context, _, i int) error {
				return s.Delete(ctx, del[i%len(del)])
			},
		},
		{
			Name: "memstore/getmany-100", Kind: KindMemstore, Baseline: "raw/mget", DBLoads: loads,
			Setup: func(ctx context.Context) error {
				if err := open(ctx); err != nil {
					return err
				}
				if err := setMany(ctx, s, hot, val); err != nil {
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
