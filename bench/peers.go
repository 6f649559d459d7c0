package main

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/dtm-labs/rockscache"
	"github.com/go-redis/cache/v9"
	"github.com/redis/go-redis/v9"

	"github.com/memstore/memstore"
	"github.com/memstore/memstore/benchkit"
	"github.com/memstore/memstore/strategies"
)

// ttl is the cache TTL of every peer, memstore's default.
const ttl = 10 * time.Minute

// Each peer is used the way its documentation shows: reads go through the
// library's load-through call with a loader that reads the run's database
// (a benchkit.Table, which counts the loads); writes update the database,
// then invalidate the key the library's way. None of them has a write
// intent, so all of them can serve a stale value after a write (see the
// strategies package for the interleavings); these rows measure speed and
// stampede protection only.

// goRedisCache is github.com/go-redis/cache/v9: Once (an in-process
// singleflight over GET, then the loader and SET), writes DEL. It runs
// without its optional in-process LocalCache, so a hit is a Redis round
// trip as with every other row.
func goRedisCache(ctx context.Context, env *benchkit.Env) (benchkit.Subject, error) {
	t, err := env.Table(ctx, "go-redis-cache")
	if err != nil {
		return benchkit.Subject{}, err
	}
	ns := env.Namespace("go-redis-cache") + ":"
	return benchkit.Subject{
		Name: "go-redis-cache", Kind: benchkit.KindPeer,
		Open: func(_ context.Context, rdb redis.UniversalClient) (strategies.KV, error) {
			return &goRedisCacheKV{c: cache.New(&cache.Options{Redis: rdb}), t: t, ns: ns}, nil
		},
		DBLoads: t.Loads,
	}, nil
}

type goRedisCacheKV struct {
	c  *cache.Cache
	t  *benchkit.Table
	ns string
}

func (k *goRedisCacheKV) Get(ctx context.Context, key string) (string, error) {
	var v string
	err := k.c.Once(&cache.Item{
		Ctx: ctx, Key: k.ns + key, Value: &v, TTL: ttl,
		Do: func(*cache.Item) (any, error) { return k.t.Load(ctx, key) },
	})
	return v, notFound(err)
}

func (k *goRedisCacheKV) Set(ctx context.Context, key, v string) error {
	if err := k.t.Put(ctx, key, v); err != nil {
		return err
	}
	return k.c.Delete(ctx, k.ns+key)
}

func (k *goRedisCacheKV) Delete(context.Context, string) error {
	return errors.ErrUnsupported // the rows never delete
}

// rocksCache is github.com/dtm-labs/rockscache with its default options:
// Fetch (a Lua get that takes a lock on a miss, the loader, a Lua set under
// the lock; callers that find the lock taken poll every LockSleep), writes
// TagAsDeleted (mark the value stale; the next Fetch reloads it).
func rocksCache(ctx context.Context, env *benchkit.Env) (benchkit.Subject, error) {
	return rocks(ctx, env, "rockscache", false)
}

// rocksCacheStrong is rockscache with StrongConsistency, the mode its
// README recommends when reads must see the latest write.
func rocksCacheStrong(ctx context.Context, env *benchkit.Env) (benchkit.Subject, error) {
	return rocks(ctx, env, "rockscache-strong", true)
}

func rocks(ctx context.Context, env *benchkit.Env, name string, strong bool) (benchkit.Subject, error) {
	t, err := env.Table(ctx, name)
	if err != nil {
		return benchkit.Subject{}, err
	}
	ns := env.Namespace(name) + ":"
	return benchkit.Subject{
		Name: name, Kind: benchkit.KindPeer,
		Open: func(_ context.Context, rdb redis.UniversalClient) (strategies.KV, error) {
			o := rockscache.NewDefaultOptions()
			o.StrongConsistency = strong
			return &rocksKV{c: rockscache.NewClient(rdb, o), t: t, ns: ns}, nil
		},
		DBLoads: t.Loads,
	}, nil
}

type rocksKV struct {
	c  *rockscache.Client
	t  *benchkit.Table
	ns string
}

func (k *rocksKV) Get(ctx context.Context, key string) (string, error) {
	v, err := k.c.Fetch2(ctx, k.ns+key, ttl, func() (string, error) { return k.t.Load(ctx, key) })
	return v, notFound(err)
}

func (k *rocksKV) Set(ctx context.Context, key, v string) error {
	if err := k.t.Put(ctx, key, v); err != nil {
		return err
	}
	return k.c.TagAsDeleted2(ctx, k.ns+key)
}

func (k *rocksKV) Delete(context.Context, string) error {
	return errors.ErrUnsupported // the rows never delete
}

// notFound maps a missing row to memstore's sentinel, as a KV must.
func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return memstore.ErrNotFound
	}
	return err
}

var (
	_ strategies.KV = (*goRedisCacheKV)(nil)
	_ strategies.KV = (*rocksKV)(nil)
)
