package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/memstore/memstore"
)

// The TTLs the ttl-honoured subtest asks for: one under a second (which
// go-redis/cache turns into an hour), one of seconds (which rockscache
// never caches: it takes 10s or less to mean "do not cache").
const (
	shortTTL   = 300 * time.Millisecond
	shortWait  = 3 * shortTTL // room for a store's jitter (memstore adds up to TTL/10)
	secondsTTL = 3 * time.Second
)

// ttlHonoured: a cache entry outlives its TTL by no more than a store's
// jitter, and a TTL of seconds is still cached. Either mistake is
// invisible to the reads of ttlBoundsMemoryOnly (values stay correct);
// it shows only in what the cache holds, seen through Inspector, the
// DB loads reported to Env.Hook, or a raw look at the run's Redis keys.
//
// A store that caches nothing even with its default TTL (a DB-only store)
// passes: there is no TTL to honour.
func ttlHonoured(ctx context.Context, s *suite, logf func(string, ...any)) error {
	var loads atomic.Int64
	hook := func(_ context.Context, ev memstore.HookEvent) error {
		if ev.Step == memstore.StepDBLoad && ev.Phase == memstore.Before {
			loads.Add(1)
		}
		return nil
	}
	var rawSeen bool
	// 1. With the store's default TTL: does it cache at all?
	ns := fmt.Sprintf("storetest-%d", s.seq.Add(1))
	sts, closeAll, err := s.instancesIn(ctx, ns, 1, hook, 0)
	if err != nil {
		return err
	}
	defer closeAll()
	seen := s.cacheView(ns, sts[0], &loads, &rawSeen)
	cached, how, err := seen.afterFill(ctx, "default", "v-default")
	if err != nil {
		return err
	}
	switch {
	case how == "":
		return fmt.Errorf("%w: the cache cannot be seen: no Inspector, no DB loads reported to Env.Hook, no Redis key naming the key", errSkip)
	case !cached:
		logf("ttl-honoured: with its default TTL the store caches nothing (seen through %s): no TTL to honour", how)
		return nil
	}

	var errs []error
	// 2. A TTL of seconds is cached.
	ns = fmt.Sprintf("storetest-%d", s.seq.Add(1))
	sts2, close2, err := s.instancesIn(ctx, ns, 1, hook, secondsTTL)
	if err != nil {
		return err
	}
	defer close2()
	seen = s.cacheView(ns, sts2[0], &loads, &rawSeen)
	if cached, how, err := seen.afterFill(ctx, "seconds", "v-seconds"); err != nil {
		errs = append(errs, err)
	} else if !cached {
		errs = append(errs, fmt.Errorf("with a TTL of %v, a value read back at once was not cached (seen through %s), though the default TTL caches it: every read goes to the DB", secondsTTL, how))
	}

	// 3. A TTL under a second is gone once it has passed.
	ns = fmt.Sprintf("storetest-%d", s.seq.Add(1))
	sts3, close3, err := s.instancesIn(ctx, ns, 1, hook, shortTTL)
	if err != nil {
		return err
	}
	defer close3()
	seen = s.cacheView(ns, sts3[0], &loads, &rawSeen)
	if _, _, err := seen.afterFill(ctx, "short", "v-short"); err != nil {
		errs = append(errs, err)
	} else {
		time.Sleep(shortWait)
		if still, how, err := seen.stillCached(ctx, "short", "v-short"); err != nil {
			errs = append(errs, err)
		} else if still {
			errs = append(errs, fmt.Errorf("with a TTL of %v, the cache still served the value %v after it was filled (seen through %s): the TTL was not honoured", shortTTL, shortWait, how))
		}
	}
	return errors.Join(errs...)
}

// cacheView looks at one instance's cache for a key: through Inspector,
// through the DB loads a Get reports, or through the run's Redis keys.
type cacheView struct {
	s     *suite
	ns    string
	st    Store
	loads *atomic.Int64
	// rawSeen: the store's keys have been seen in Redis, so their absence
	// means something.
	rawSeen *bool
}

func (s *suite) cacheView(ns string, st Store, loads *atomic.Int64, rawSeen *bool) *cacheView {
	return &cacheView{s: s, ns: ns, st: st, loads: loads, rawSeen: rawSeen}
}

// afterFill sets key to v, reads it back (which fills the cache) and
// reports whether it is cached now, and how that was seen ("" if it could
// not be).
func (c *cacheView) afterFill(ctx context.Context, key, v string) (cached bool, how string, err error) {
	if err := c.st.Set(ctx, key, v); err != nil {
		return false, "", fmt.Errorf("calling Set: %w", err)
	}
	// Until the write's background work is done (memstore: its end), a
	// read need not fill: the read below would then find nothing cached
	// by chance, and the TTL would go untested or fail.
	if err := settle(ctx, c.st); err != nil {
		return false, "", err
	}
	if got, err := c.st.Get(ctx, key); err != nil || got != v {
		return false, "", fmt.Errorf("after Set, Get = %s, %v; want %s", show(got), err, show(v))
	}
	return c.stillCached(ctx, key, v)
}

// stillCached reports whether a reader would be served v from the cache
// now, and how that was seen ("" if it could not be). With an Inspector it
// asks that; otherwise it looks for a Redis key of the run that names key
// (before any read, which could refill it), then, if the store reports its
// DB loads, reads twice and counts them: no load is a hit.
func (c *cacheView) stillCached(ctx context.Context, key, v string) (bool, string, error) {
	if in, ok := c.st.(Inspector); ok {
		snap, err := in.Inspect(ctx, key)
		if err != nil {
			return false, "", fmt.Errorf("calling Inspect: %w", err)
		}
		return snap.Cached && snap.CacheFound && snap.CacheValue == v, "Inspect", nil
	}
	raw, err := c.rawKey(ctx, key)
	if err != nil {
		return false, "", err
	}
	if c.loads.Load() > 0 {
		before := c.loads.Load()
		for range 2 {
			if got, err := c.st.Get(ctx, key); err != nil || got != v {
				return false, "", fmt.Errorf("a read back: Get = %s, %v; want %s", show(got), err, show(v))
			}
		}
		return c.loads.Load() == before, "the DB loads reported to Env.Hook", nil
	}
	if raw != "" {
		*c.rawSeen = true
		return true, "the Redis key " + raw, nil
	}
	if *c.rawSeen {
		return false, "a look at the run's Redis keys", nil
	}
	return false, "", nil
}

// rawKey returns a Redis key of the run's namespace that names key, or "".
func (c *cacheView) rawKey(ctx context.Context, key string) (string, error) {
	keys, err := c.s.rs.Client().Keys(ctx, "*"+c.ns+"*").Result()
	if err != nil {
		return "", err
	}
	for _, k := range keys {
		if strings.Contains(k, key) {
			return k, nil
		}
	}
	return "", nil
}
