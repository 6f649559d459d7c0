// Package rediscache is the Redis side of memstore: the key layout, the Lua
// scripts of the protocol and the mapping of Redis errors.
//
// Every logical key lives in one Redis hash named "<namespace>:{<key>}". The
// braces make the logical key the Cluster hash tag, and every script touches
// that one hash, so each step is atomic and single-slot on Redis Cluster.
// Scripts run with EVALSHA and fall back to EVAL on NOSCRIPT (go-redis
// Script.Run), so a restarted or failed-over server needs no warm-up.
package rediscache

import (
	"context"
	"errors"
	"time"
	"unsafe"

	"github.com/redis/go-redis/v9"
)

// Kind is the answer of Get.
type Kind uint8

const (
	Lease  Kind = iota // lease granted: load the DB, then Fill
	Hit                // Value holds the sealed entry
	Intent             // a write is in flight: load the DB, do not fill
	Busy               // another reader holds the lease: wait
)

// Result is the answer of Get.
type Result struct {
	Kind  Kind
	Value []byte
}

// ErrReply marks an unexpected reply shape (a foreign script or a server
// that is not Redis). It is a bug or a misconfiguration, not an outage.
var ErrReply = errors.New("rediscache: unexpected reply")

// Cache runs the protocol's scripts for one namespace.
type Cache struct {
	rdb      redis.UniversalClient
	ns       string
	lease    time.Duration
	leaseArg any // ms(lease), boxed once: the hit path allocates nothing for it
}

// New returns the cache side of namespace ns, whose fill leases live for
// lease.
func New(rdb redis.UniversalClient, ns string, lease time.Duration) *Cache {
	return &Cache{rdb: rdb, ns: ns, lease: lease, leaseArg: ms(lease)}
}

// Client returns the underlying client.
func (c *Cache) Client() redis.UniversalClient { return c.rdb }

// Key returns the Redis key of a logical key.
func (c *Cache) Key(key string) string {
	b := make([]byte, 0, len(c.ns)+len(key)+3)
	b = append(b, c.ns...)
	b = append(b, ':', '{')
	b = append(b, key...)
	b = append(b, '}')
	return string(b)
}

func ms(d time.Duration) int64 {
	m := d.Milliseconds()
	if m < 1 {
		m = 1
	}
	return m
}

// Hit reads the cached entry with one plain HGET: the hit path. A value
// present in the hash is always current, because every script keeps the
// invariant "v present => no intent": begin drops v, a fill is refused while
// an intent lives (and purges expired ones before it installs), end and
// repair only drop. So a hit needs neither Lua nor a token; only a miss runs
// the get script. found is false on a miss.
func (c *Cache) Hit(ctx context.Context, key string) (entry []byte, found bool, err error) {
	cmd := redis.NewStringCmd(ctx, "hget", c.Key(key), "v")
	_ = c.rdb.Process(ctx, cmd)
	v, err := cmd.Result()
	if err != nil {
		if errors.Is(err, redis.Nil) {
			return nil, false, nil
		}
		return nil, false, err
	}
	// The reply string is never touched again, so the entry can view its
	// bytes without a copy.
	return unsafe.Slice(unsafe.StringData(v), len(v)), true, nil
}

// Get runs the get script: a hit, or a lease for token, or the reason there
// is neither. The NOSCRIPT fallback is the same as Script.Run's.
func (c *Cache) Get(ctx context.Context, key, token string, force bool) (Result, error) {
	f := argNo
	if force {
		f = argYes
	}
	k := c.Key(key)
	cmd := redis.NewCmd(ctx, "evalsha", getSHA, argOne, k, token, c.leaseArg, f)
	_ = c.rdb.Process(ctx, cmd)
	if isNoScript(cmd.Err()) {
		cmd = redis.NewCmd(ctx, "eval", getSrc, argOne, k, token, c.leaseArg, f)
		_ = c.rdb.Process(ctx, cmd)
	}
	v, err := cmd.Result()
	if err != nil {
		return Result{}, err
	}
	return parseGet(v)
}

var (
	getSHA, getSrc        any = getScript.Hash(), getSource
	argOne, argNo, argYes any = 1, "0", "1"
)

func parseGet(v any) (Result, error) {
	switch v := v.(type) {
	case string:
		// The reply string is never touched again, so the entry can view
		// its bytes without a copy.
		return Result{Kind: Hit, Value: unsafe.Slice(unsafe.StringData(v), len(v))}, nil
	case int64:
		switch v {
		case 0:
			return Result{Kind: Lease}, nil
		case 2:
			return Result{Kind: Intent}, nil
		case 3:
			return Result{Kind: Busy}, nil
		}
	}
	return Result{}, ErrReply
}

// Fill installs a sealed entry under the lease token. It reports whether the
// entry was installed.
func (c *Cache) Fill(ctx context.Context, key, token string, sealed []byte, version uint64, ttl time.Duration) (bool, error) {
	n, err := fillScript.Run(ctx, c.rdb, []string{c.Key(key)}, token, sealed, version, ms(ttl)).Int64()
	return n == 1, err
}

// Begin records a write intent with the given lifetime and drops the value
// and any lease.
func (c *Cache) Begin(ctx context.Context, key, token string, life time.Duration) error {
	return beginScript.Run(ctx, c.rdb, []string{c.Key(key)}, token, ms(life)).Err()
}

// End clears the intent and drops the value and any lease.
func (c *Cache) End(ctx context.Context, key, token string) error {
	return endScript.Run(ctx, c.rdb, []string{c.Key(key)}, token).Err()
}

// Repair is the reconciler's end for a committed write of version.
// It reports whether a stale value was dropped.
func (c *Cache) Repair(ctx context.Context, key, token string, version uint64) (bool, error) {
	n, err := repairScript.Run(ctx, c.rdb, []string{c.Key(key)}, token, version).Int64()
	return n == 1, err
}

// Unlease gives up a lease held by token.
func (c *Cache) Unlease(ctx context.Context, key, token string) error {
	return unleaseScript.Run(ctx, c.rdb, []string{c.Key(key)}, token).Err()
}

// Drop removes the cached value if it still equals seen (nil: any value).
func (c *Cache) Drop(ctx context.Context, key string, seen []byte) error {
	if seen == nil {
		seen = []byte{}
	}
	return dropScript.Run(ctx, c.rdb, []string{c.Key(key)}, seen).Err()
}

// Peek returns the cached entry's bytes without touching leases or intents
// (for convergence checks and tests).
func (c *Cache) Peek(ctx context.Context, key string) ([]byte, bool, error) {
	s, err := c.rdb.HGet(ctx, c.Key(key), "v").Result()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return []byte(s), true, nil
}

// Poke overwrites the cached entry's bytes (tests and fault injection use it
// to plant corrupt or foreign entries).
func (c *Cache) Poke(ctx context.Context, key string, raw []byte) error {
	return c.rdb.HSet(ctx, c.Key(key), "v", raw).Err()
}

// Op is one key's request in a pipelined batch.
type Op struct {
	Key, Token string
	Sealed     []byte
	Version    uint64
	TTL        time.Duration
}

// GetMany reads many keys: one pipeline of plain HGETs (the hits), then one
// pipeline of get scripts for the misses only. Errors are per key.
func (c *Cache) GetMany(ctx context.Context, ops []Op) ([]Result, []error) {
	res, errs := make([]Result, len(ops)), make([]error, len(ops))
	hits := make([]*redis.StringCmd, len(ops))
	_, _ = c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, o := range ops {
			hits[i] = p.HGet(ctx, c.Key(o.Key), "v")
		}
		return nil
	})
	var miss []int
	for i, cmd := range hits {
		v, err := cmd.Result()
		switch {
		case err == nil:
			res[i] = Result{Kind: Hit, Value: []byte(v)}
		case errors.Is(err, redis.Nil):
			miss = append(miss, i)
		default:
			errs[i] = err
		}
	}
	if len(miss) == 0 {
		return res, errs
	}
	cmds := make([]*redis.Cmd, len(miss))
	_, _ = c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for j, i := range miss {
			cmds[j] = getScript.EvalSha(ctx, p, []string{c.Key(ops[i].Key)}, ops[i].Token, c.leaseArg, "0")
		}
		return nil
	})
	for j, cmd := range cmds {
		i := miss[j]
		v, err := cmd.Result()
		if err != nil && isNoScript(err) {
			// A server that lost its script cache (restart, failover)
			// answers NOSCRIPT; run the key again with the EVAL fallback.
			res[i], errs[i] = c.Get(ctx, ops[i].Key, ops[i].Token, false)
			continue
		}
		if err != nil {
			errs[i] = err
			continue
		}
		res[i], errs[i] = parseGet(v)
	}
	return res, errs
}

// FillMany pipelines Fill. It reports which entries were installed.
func (c *Cache) FillMany(ctx context.Context, ops []Op) ([]bool, []error) {
	return c.many(ctx, ops, fillScript, func(o Op) []any { return []any{o.Token, o.Sealed, o.Version, ms(o.TTL)} })
}

// BeginMany pipelines Begin.
func (c *Cache) BeginMany(ctx context.Context, ops []Op, life time.Duration) []error {
	_, errs := c.many(ctx, ops, beginScript, func(o Op) []any { return []any{o.Token, ms(life)} })
	return errs
}

// EndMany pipelines End.
func (c *Cache) EndMany(ctx context.Context, ops []Op) []error {
	_, errs := c.many(ctx, ops, endScript, func(o Op) []any { return []any{o.Token} })
	return errs
}

// RepairMany pipelines Repair.
func (c *Cache) RepairMany(ctx context.Context, ops []Op) ([]bool, []error) {
	return c.many(ctx, ops, repairScript, func(o Op) []any { return []any{o.Token, o.Version} })
}

func (c *Cache) many(ctx context.Context, ops []Op, s *redis.Script, args func(Op) []any) ([]bool, []error) {
	run := func(cmdr redis.Cmdable, i int, sha bool) *redis.Cmd {
		if sha {
			return s.EvalSha(ctx, cmdr, []string{c.Key(ops[i].Key)}, args(ops[i])...)
		}
		return s.Eval(ctx, cmdr, []string{c.Key(ops[i].Key)}, args(ops[i])...)
	}
	cmds := make([]*redis.Cmd, len(ops))
	_, _ = c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range ops {
			cmds[i] = run(p, i, true)
		}
		return nil
	})
	oks, errs := make([]bool, len(ops)), make([]error, len(ops))
	for i, cmd := range cmds {
		n, err := cmd.Int64()
		if err != nil && isNoScript(err) {
			n, err = run(c.rdb, i, false).Int64()
		}
		oks[i], errs[i] = n == 1, err
	}
	return oks, errs
}

func isNoScript(err error) bool {
	if err == nil {
		return false
	}
	var re redis.Error
	return errors.As(err, &re) && len(re.Error()) >= 8 && re.Error()[:8] == "NOSCRIPT"
}

// IsUnavailable reports whether err means Redis could not serve the call
// (network, timeout, server loading or down), as opposed to a reply that
// reveals a bug. Context errors are not outages: the caller gave up.
func IsUnavailable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, ErrReply) {
		return false
	}
	var re redis.Error
	if errors.As(err, &re) {
		msg := re.Error()
		for _, p := range []string{"LOADING", "MASTERDOWN", "READONLY", "CLUSTERDOWN", "TRYAGAIN", "BUSY", "OOM", "MOVED", "ASK"} {
			if len(msg) >= len(p) && msg[:len(p)] == p {
				return true
			}
		}
		return false
	}
	return true
}
