package storetest

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/memstore/memstore/memtest"
	"github.com/memstore/memstore/strategies"
)

// mapTTL is a store over cache-aside (write-db-delete-cache) that passes
// its TTL through wrong, as real libraries do.
func mapTTL(name string, wrong func(time.Duration) (time.Duration, bool)) Harness {
	base, dbOnly := strategies.WriteDBDeleteCache(), strategies.DBOnly()
	return Harness{Name: name, New: func(ctx context.Context, env Env) (Store, error) {
		c := strategies.Config{Redis: env.Redis, DB: env.DB, Namespace: env.Namespace, Hook: env.Hook, TTL: env.TTL, Migrate: env.Migrate}
		ttl, cache := wrong(env.TTL)
		c.TTL = ttl
		if !cache {
			return dbOnly.New(ctx, c)
		}
		return base.New(ctx, c)
	}}
}

// kvOnly hides a store's Inspect and Evict: the subtest must then see the
// cache through the DB loads or the Redis keys.
type kvOnly struct{ strategies.KV }

func hideInspect(h Harness) Harness {
	inner := h.New
	h.New = func(ctx context.Context, env Env) (Store, error) {
		st, err := inner(ctx, env)
		return kvOnly{st}, err
	}
	return h
}

// The ttl-honoured subtest catches both TTL mistakes of real libraries,
// seen through Inspect and without it, and passes stores that honour
// their TTL or cache nothing.
func TestTTLHonoured(t *testing.T) {
	t.Parallel()
	asIs := func(d time.Duration) (time.Duration, bool) { return d, true }
	// go-redis/cache: a TTL under a second becomes an hour.
	hour := func(d time.Duration) (time.Duration, bool) {
		if d > 0 && d < time.Second {
			return time.Hour, true
		}
		return d, true
	}
	// rockscache: a TTL of 10s or less is never cached.
	never := func(d time.Duration) (time.Duration, bool) { return d, !(d > 0 && d <= 10*time.Second) }
	for _, tc := range []struct {
		h    Harness
		want string // "" for a pass
	}{
		{mapTTL("honours-ttl", asIs), ""},
		{hideInspect(mapTTL("honours-ttl-no-inspect", asIs)), ""},
		{FromFactory(strategies.Memstore()), ""},
		{FromFactory(strategies.DBOnly()), ""},
		{mapTTL("short-ttl-becomes-an-hour", hour), "the TTL was not honoured"},
		{hideInspect(mapTTL("short-ttl-becomes-an-hour-no-inspect", hour)), "the TTL was not honoured"},
		{mapTTL("seconds-ttl-never-cached", never), "was not cached"},
		{hideInspect(mapTTL("seconds-ttl-never-cached-no-inspect", never)), "was not cached"},
	} {
		t.Run(tc.h.Name, func(t *testing.T) {
			t.Parallel()
			s := &suite{h: tc.h.withDefaults(), rs: memtest.RedisWith(t, &memtest.RedisOptions{Private: true}),
				dialect: dialectSQLite, dbArg: filepath.Join(t.TempDir(), "ttl.db")}
			err := ttlHonoured(t.Context(), s, t.Logf)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("ttl-honoured: %v; want a pass", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("ttl-honoured: %v; want an error saying %q", err, tc.want)
			default:
				t.Logf("ttl-honoured: %v", err)
			}
		})
	}
}
