package fault

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/memstore/memstore/memtest"
)

// RedisKill kills the server with SIGKILL on Inject, losing every key, intent
// and lease it held, and starts a new, empty one on the same port on Heal.
// Clients reconnect by themselves. This is the fault that breaks stores
// which trust Redis to remember a write in progress.
//
// rs must be a private server: on a shared one (MEMSTORE_REDIS_URL) Inject
// returns an error wrapping memtest.ErrShared and does nothing.
func RedisKill(rs *memtest.RedisServer) Nemesis {
	return &toggle{
		name: "redis-kill",
		inject: func(context.Context) error {
			if rs.Shared() {
				return memtest.ErrShared
			}
			return rs.Kill()
		},
		heal: func(context.Context) error {
			if rs.Shared() {
				return nil // Inject did nothing
			}
			return rs.Restart()
		},
	}
}

// RedisPause stops the server with SIGSTOP on Inject and continues it with
// SIGCONT on Heal. The server keeps its data and connections but answers
// nothing, so commands time out: their outcome is unknown to the client, and
// they take effect when the server continues, possibly long after the
// client gave up. The same rule on shared servers as RedisKill.
func RedisPause(rs *memtest.RedisServer) Nemesis {
	return &toggle{
		name: "redis-pause",
		inject: func(context.Context) error {
			if rs.Shared() {
				return memtest.ErrShared
			}
			return rs.Pause()
		},
		heal: func(context.Context) error {
			if rs.Shared() {
				return nil
			}
			return rs.Resume()
		},
	}
}

// RedisOOM makes the server refuse writes with "OOM command not allowed":
// Inject sets maxmemory to 1 byte with maxmemory-policy noeviction, Heal
// restores the values Inject read with CONFIG GET. Reads and deletes still
// work, so a store sees Redis up but unwritable: a write's begin or a fill
// fails while GET succeeds.
//
// It changes server-wide settings (on every node of a cluster client,
// replicas too, so that a replica promoted meanwhile is as full and Heal
// finds every node it changed), so it belongs on a private server.
func RedisOOM(c redis.UniversalClient) Nemesis {
	m := &memoryLimit{c: c}
	return &toggle{
		name:   "redis-oom",
		inject: func(ctx context.Context) error { return m.set(ctx, func(int64) int64 { return 1 }, "noeviction") },
		heal:   m.restore,
	}
}

// RedisEvictLRU puts the server under memory pressure: Inject sets
// maxmemory to the memory it uses now plus headroom bytes (a negative
// headroom counts as 0) with maxmemory-policy allkeys-lru, so every write
// past that evicts the least recently used keys, whatever they are: cached
// values, but also write intents and fill leases. Heal restores the previous
// settings; evicted keys stay gone. The same caveat as RedisOOM.
func RedisEvictLRU(c redis.UniversalClient, headroom int64) Nemesis {
	m := &memoryLimit{c: c}
	headroom = max(headroom, 0)
	return &toggle{
		name: "redis-evict-lru",
		inject: func(ctx context.Context) error {
			return m.set(ctx, func(used int64) int64 { return max(used+headroom, 1) }, "allkeys-lru")
		},
		heal: m.restore,
	}
}

// memoryLimit sets and restores maxmemory and maxmemory-policy on every
// server of a client.
type memoryLimit struct {
	c     redis.UniversalClient
	mu    sync.Mutex
	saved map[string][2]string // node address → maxmemory, maxmemory-policy before set
}

func (m *memoryLimit) set(ctx context.Context, limit func(used int64) int64, policy string) error {
	m.mu.Lock()
	m.saved = make(map[string][2]string)
	m.mu.Unlock()
	return eachServer(ctx, m.c, func(ctx context.Context, n *redis.Client) error {
		maxmemory, err := configGet(ctx, n, "maxmemory")
		if err != nil {
			return err
		}
		oldPolicy, err := configGet(ctx, n, "maxmemory-policy")
		if err != nil {
			return err
		}
		used, err := usedMemory(ctx, n)
		if err != nil {
			return err
		}
		m.mu.Lock()
		m.saved[n.Options().Addr] = [2]string{maxmemory, oldPolicy}
		m.mu.Unlock()
		return setMemoryConfig(ctx, n, strconv.FormatInt(limit(used), 10), policy)
	})
}

func (m *memoryLimit) restore(ctx context.Context) error {
	return eachServer(ctx, m.c, func(ctx context.Context, n *redis.Client) error {
		addr := n.Options().Addr
		m.mu.Lock()
		old, ok := m.saved[addr]
		m.mu.Unlock()
		if !ok {
			return nil // set failed before it changed this node
		}
		if err := setMemoryConfig(ctx, n, old[0], old[1]); err != nil {
			return err
		}
		m.mu.Lock()
		delete(m.saved, addr)
		m.mu.Unlock()
		return nil
	})
}

func configGet(ctx context.Context, n *redis.Client, param string) (string, error) {
	kv, err := n.ConfigGet(ctx, param).Result()
	if err != nil {
		return "", err
	}
	v, ok := kv[param]
	if !ok {
		return "", fmt.Errorf("CONFIG GET %s: no value", param)
	}
	return v, nil
}

// setMemoryConfig sets both settings at once (Redis 7 takes several
// parameters in one CONFIG SET and applies them atomically). The order
// matters otherwise: lowering maxmemory while the old policy is
// allkeys-lru would evict every key, and setting allkeys-lru before raising
// maxmemory would too. Older servers take one parameter per call; they pass
// through noeviction, so no intermediate state evicts a key.
func setMemoryConfig(ctx context.Context, n *redis.Client, maxmemory, policy string) error {
	err := n.Do(ctx, "CONFIG", "SET", "maxmemory-policy", policy, "maxmemory", maxmemory).Err()
	if err == nil || !strings.Contains(err.Error(), "wrong number of arguments") {
		return err
	}
	for _, kv := range [][2]string{
		{"maxmemory-policy", "noeviction"},
		{"maxmemory", maxmemory},
		{"maxmemory-policy", policy},
	} {
		if err := n.ConfigSet(ctx, kv[0], kv[1]).Err(); err != nil {
			return err
		}
	}
	return nil
}

func usedMemory(ctx context.Context, n *redis.Client) (int64, error) {
	info, err := n.Info(ctx, "memory").Result()
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, errors.New("INFO memory: no used_memory")
}

// eachNode runs fn on every server that holds keys: each master of a
// cluster (concurrently), or the server of a plain or failover client.
func eachNode(ctx context.Context, c redis.UniversalClient, fn func(context.Context, *redis.Client) error) error {
	switch c := c.(type) {
	case *redis.ClusterClient:
		return c.ForEachMaster(ctx, fn)
	case *redis.Client:
		return fn(ctx, c)
	default:
		return fmt.Errorf("unsupported Redis client %T", c)
	}
}

// eachServer runs fn on every server of the client: each node of a
// cluster, masters and replicas (concurrently), or the server of a plain or
// failover client. Replicas copy their master's data, not its settings.
func eachServer(ctx context.Context, c redis.UniversalClient, fn func(context.Context, *redis.Client) error) error {
	if cc, ok := c.(*redis.ClusterClient); ok {
		return cc.ForEachShard(ctx, fn)
	}
	return eachNode(ctx, c, fn)
}

// Bounds of one EvictKeys: keys looked at, and SCAN calls per node.
const (
	maxEvictKeys = 1 << 20
	maxScanCalls = 1 << 16
	scanBatch    = 1000
	deleteBatch  = 1000
)

// EvictKeys deletes a random share of the keys matching pattern (a SCAN
// MATCH glob, e.g. "ns:*") on Inject, as Redis eviction or an operator would:
// round(fraction × matching keys) of them, chosen with rng from the keys in
// sorted order, so a fixed seed deletes the same keys of the same key set.
// Heal does nothing. Whole keys go, whatever their type, because a store's
// entry may be a hash (memstore) or a plain string (the classic strategies).
//
// fraction must be in [0, 1]. A nil rng means a randomly seeded one. rng is
// used under the nemesis's lock only, but must not be shared with code that
// runs concurrently. The scan stops after about a million keys; the fraction
// then applies to those.
func EvictKeys(c redis.UniversalClient, pattern string, fraction float64, rng *rand.Rand) Nemesis {
	if rng == nil {
		rng = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	return &instant{name: "evict-keys", do: func(ctx context.Context) error {
		if math.IsNaN(fraction) || fraction < 0 || fraction > 1 {
			return fmt.Errorf("fraction %v outside [0, 1]", fraction)
		}
		if pattern == "" {
			return errors.New("empty pattern")
		}
		keys, err := scanKeys(ctx, c, pattern)
		if err != nil {
			return err
		}
		slices.Sort(keys)
		n := int(math.Round(fraction * float64(len(keys))))
		perm := rng.Perm(len(keys))
		victims := make([]string, n)
		for i := range n {
			victims[i] = keys[perm[i]]
		}
		return deleteKeys(ctx, c, victims)
	}}
}

// scanKeys lists the distinct keys matching pattern on every node, up to
// maxEvictKeys.
func scanKeys(ctx context.Context, c redis.UniversalClient, pattern string) ([]string, error) {
	var (
		mu   sync.Mutex
		seen = make(map[string]struct{})
	)
	err := eachNode(ctx, c, func(ctx context.Context, n *redis.Client) error {
		var cursor uint64
		for range maxScanCalls {
			keys, next, err := n.Scan(ctx, cursor, pattern, scanBatch).Result()
			if err != nil {
				return err
			}
			mu.Lock()
			for _, k := range keys {
				seen[k] = struct{}{}
			}
			full := len(seen) >= maxEvictKeys
			mu.Unlock()
			if next == 0 || full {
				return nil
			}
			cursor = next
		}
		return nil
	})
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	return keys, err
}

// deleteKeys deletes keys one DEL each, pipelined: a cluster client routes
// each to its slot, where a multi-key DEL would fail with CROSSSLOT.
func deleteKeys(ctx context.Context, c redis.UniversalClient, keys []string) error {
	for batch := range slices.Chunk(keys, deleteBatch) {
		_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, k := range batch {
				p.Del(ctx, k)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Flush empties the client's database with FLUSHDB (on every master of a
// cluster) on Inject; Heal does nothing. It is the cache lost at once, as
// after an operator's flush or a failover to an empty replica, without the
// connection errors of RedisKill.
//
// On a shared server isolated by key prefix (memtest's RedisServer.Prefix
// is not empty) FLUSHDB would delete other tests' keys: use
// EvictKeys(c, prefix+"*", 1, nil) there instead.
func Flush(c redis.UniversalClient) Nemesis {
	return &instant{name: "flush", do: func(ctx context.Context) error {
		return eachNode(ctx, c, func(ctx context.Context, n *redis.Client) error {
			return n.FlushDB(ctx).Err()
		})
	}}
}
