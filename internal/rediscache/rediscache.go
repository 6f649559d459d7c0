// Package rediscache is the Redis side of memstore: the key layout, the Lua
// scripts of the protocol and the mapping of Redis errors. It guarantees
// that no two (namespace, key) pairs share a Redis key, that a key's slot
// is its own in every namespace, and that every script touches one slot.
//
// Every logical key's cached entry is one plain Redis string, its fill
// lease a hash beside it, and the write intents of a stripe of keys live in
// one marker hash that shares the key's slot (see layout.go and
// scripts.go). Every script touches one slot, so each step is atomic and
// single-slot on Redis Cluster. Scripts run with
// EVALSHA and fall back to EVAL on NOSCRIPT (go-redis Script.Run), so a
// restarted or failed-over server needs no warm-up.
package rediscache

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"time"
	"unsafe"

	"github.com/redis/go-redis/v9"
)

// Kind is the answer of Get.
type Kind uint8

const (
	Lease   Kind = iota // lease granted: load the DB, then Fill
	Hit                 // Value holds the sealed entry
	Intent              // a write is in flight: load the DB, do not fill
	Busy                // another reader holds the lease: wait
	Pending             // the stripe's marker is pending: Fence it, then retry
)

// Result is the answer of Get.
type Result struct {
	Kind  Kind
	Value []byte
	// Incarnation names the pending marker (Kind Pending): the token to
	// fence the stripe with.
	Incarnation string
}

// Mark is what begin saw of the key's stripe: the generation the write must
// commit under, or 0 while the marker is pending (then the writer fences
// the stripe with Incarnation before it commits).
type Mark struct {
	Gen         int64
	Incarnation string
}

// ErrReply marks an unexpected reply shape (a foreign script or a server
// that is not Redis). It is a bug or a misconfiguration, not an outage.
var ErrReply = errors.New("rediscache: unexpected reply")

// Cache runs the protocol's scripts for one namespace.
type Cache struct {
	rdb      redis.UniversalClient
	ns       string
	cluster  bool // a stripe per hash slot; otherwise one for the namespace
	leaseArg any  // ms(lease), boxed once: the hit path allocates nothing for it
}

// New returns the cache side of namespace ns (see CheckNamespace), whose
// fill leases live for lease.
func New(rdb redis.UniversalClient, ns string, lease time.Duration) *Cache {
	_, cluster := rdb.(*redis.ClusterClient)
	return &Cache{rdb: rdb, ns: ns, cluster: cluster, leaseArg: ms(lease)}
}

// Key returns the Redis key of a logical key's cached entry.
func (c *Cache) Key(key string) string { return KeyOf(c.ns, key) }

// Stripe returns the stripe of a logical key: its hash slot on a cluster, 0
// elsewhere.
func (c *Cache) Stripe(key string) int {
	if !c.cluster {
		return 0
	}
	return Slot(c.Key(key))
}

// Marker returns the Redis key of a stripe's marker.
func (c *Cache) Marker(stripe int) string { return MarkerOf(c.ns, stripe) }

// keys are the KEYS of a key's scripts: its entry, its lease and its
// stripe's marker.
func (c *Cache) keys(key string) []string {
	h := c.Key(key)
	stripe := 0
	if c.cluster {
		stripe = Slot(h)
	}
	return []string{h, h + ":l", c.Marker(stripe)}
}

func ms(d time.Duration) int64 {
	m := d.Milliseconds()
	if m < 1 {
		m = 1
	}
	return m
}

// Hit reads the cached entry with one plain GET: the hit path. An entry
// present is always current (see the rules in scripts.go), so a hit needs
// neither Lua nor a token; only a miss runs the get script. found is false
// on a miss.
func (c *Cache) Hit(ctx context.Context, key string) (entry []byte, found bool, err error) {
	cmd := redis.NewStringCmd(ctx, "get", c.Key(key))
	_ = c.rdb.Process(ctx, cmd)
	v, err := cmd.Result()
	if err != nil {
		if errors.Is(err, redis.Nil) {
			return nil, false, nil
		}
		return nil, false, err
	}
	// The entry views the reply string's bytes, without a copy. Nobody
	// writes to them: the store only reads entries, and the codec contract
	// forbids Decode to modify its input (codec.Codec).
	return unsafe.Slice(unsafe.StringData(v), len(v)), true, nil
}

// Get runs the get script: a hit, or a lease for token, or the reason there
// is neither.
func (c *Cache) Get(ctx context.Context, key, token string, force bool) (Result, error) {
	f := argNo
	if force {
		f = argYes
	}
	v, err := getScript.Run(ctx, c.rdb, c.keys(key), token, c.leaseArg, f, incarnation()).Result()
	if err != nil {
		return Result{}, err
	}
	return parseGet(v)
}

var argNo, argYes any = "0", "1"

// incarnation names the marker a script creates if its stripe has none. It
// is new in every call, never a caller's token: a token outlives a marker
// (a write begins again under the same token), and a marker re-created
// under a name already fenced would skip its fence (scripts.go, marker).
func incarnation() string { return Token() }

// Token returns a new random token: 128 bits, unique, not secret.
func Token() string {
	var b [27]byte
	out := strconv.AppendUint(b[:0], rand.Uint64(), 36)
	out = append(out, '.')
	out = strconv.AppendUint(out, rand.Uint64(), 36)
	return string(out)
}

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
	case []any:
		if len(v) == 2 && v[0] == int64(4) {
			if pt, ok := v[1].(string); ok {
				return Result{Kind: Pending, Incarnation: pt}, nil
			}
		}
	}
	return Result{}, ErrReply
}

func parseMark(v any) (Mark, error) {
	r, ok := v.([]any)
	if !ok || len(r) != 2 {
		return Mark{}, ErrReply
	}
	pt, ok := r[1].(string)
	if !ok {
		return Mark{}, ErrReply
	}
	m := Mark{Incarnation: pt}
	switch g := r[0].(type) {
	case nil:
	case string:
		n, err := strconv.ParseInt(g, 10, 64)
		if err != nil || n <= 0 {
			return Mark{}, ErrReply
		}
		m.Gen = n
	default:
		return Mark{}, ErrReply
	}
	return m, nil
}

// Fill installs a sealed entry under the lease token. It reports whether the
// entry was installed.
func (c *Cache) Fill(ctx context.Context, key, token string, sealed []byte, ttl time.Duration) (bool, error) {
	n, err := fillScript.Run(ctx, c.rdb, c.keys(key), token, sealed, ms(ttl)).Int64()
	return n == 1, err
}

// Begin records a write intent with the given lifetime and drops the value
// and any lease. The Mark says which generation the write must commit under.
func (c *Cache) Begin(ctx context.Context, key, token string, life time.Duration) (Mark, error) {
	v, err := beginScript.Run(ctx, c.rdb, c.keys(key), token, ms(life), incarnation()).Result()
	if err != nil {
		return Mark{}, err
	}
	return parseMark(v)
}

// End clears the intent.
func (c *Cache) End(ctx context.Context, key, token string) error {
	return endScript.Run(ctx, c.rdb, c.keys(key), token).Err()
}

// Repair is the reconciler's end for a committed write of version.
// It reports whether a stale value was dropped.
func (c *Cache) Repair(ctx context.Context, key, token string, version uint64) (bool, error) {
	n, err := repairScript.Run(ctx, c.rdb, c.keys(key), token, version).Int64()
	return n == 1, err
}

// Confirm records gen, the generation the database fenced a stripe at, in
// the stripe's marker if it is still the incarnation that asked. It reports
// whether it was.
func (c *Cache) Confirm(ctx context.Context, stripe int, incarnation string, gen int64) (bool, error) {
	n, err := confirmScript.Run(ctx, c.rdb, []string{c.Marker(stripe)}, incarnation, gen).Int64()
	return n == 1, err
}

// Unlease gives up a lease held by token.
func (c *Cache) Unlease(ctx context.Context, key, token string) error {
	return unleaseScript.Run(ctx, c.rdb, []string{LeaseOf(c.ns, key)}, token).Err()
}

// UnleaseMany pipelines Unlease.
func (c *Cache) UnleaseMany(ctx context.Context, ops []Op) []error {
	cmds := c.runMany(ctx, unleaseScript, len(ops), func(i int) []string { return []string{LeaseOf(c.ns, ops[i].Key)} }, func(i int) []any { return []any{ops[i].Token} })
	errs := make([]error, len(ops))
	for i, cmd := range cmds {
		errs[i] = cmd.Err()
	}
	return errs
}

// Ping reports whether Redis answers.
func (c *Cache) Ping(ctx context.Context) error { return c.rdb.Ping(ctx).Err() }

// Drop removes the cached value if it still equals seen (nil: any value).
func (c *Cache) Drop(ctx context.Context, key string, seen []byte) error {
	if seen == nil {
		seen = []byte{}
	}
	return dropScript.Run(ctx, c.rdb, []string{c.Key(key)}, seen).Err()
}

// Op is one key's request in a pipelined batch.
type Op struct {
	Key, Token string
	Sealed     []byte
	Version    uint64
	TTL        time.Duration
}

// FillMany pipelines Fill. It reports which entries were installed.
func (c *Cache) FillMany(ctx context.Context, ops []Op) ([]bool, []error) {
	return c.manyInts(ctx, ops, fillScript, func(o Op) []any { return []any{o.Token, o.Sealed, ms(o.TTL)} })
}

// BeginMany pipelines Begin.
func (c *Cache) BeginMany(ctx context.Context, ops []Op, life time.Duration) ([]Mark, []error) {
	vals, errs := c.many(ctx, ops, beginScript, func(o Op) []any { return []any{o.Token, ms(life), incarnation()} })
	marks := make([]Mark, len(ops))
	for i := range ops {
		if errs[i] == nil {
			marks[i], errs[i] = parseMark(vals[i])
		}
	}
	return marks, errs
}

// EndMany pipelines End.
func (c *Cache) EndMany(ctx context.Context, ops []Op) []error {
	_, errs := c.many(ctx, ops, endScript, func(o Op) []any { return []any{o.Token} })
	return errs
}

// RepairMany pipelines Repair.
func (c *Cache) RepairMany(ctx context.Context, ops []Op) ([]bool, []error) {
	return c.manyInts(ctx, ops, repairScript, func(o Op) []any { return []any{o.Token, o.Version} })
}

func (c *Cache) manyInts(ctx context.Context, ops []Op, s *redis.Script, args func(Op) []any) ([]bool, []error) {
	vals, errs := c.many(ctx, ops, s, args)
	oks := make([]bool, len(ops))
	for i, v := range vals {
		if errs[i] == nil {
			n, ok := v.(int64)
			oks[i] = ok && n == 1
			if !ok {
				errs[i] = ErrReply
			}
		}
	}
	return oks, errs
}

// many pipelines script s over ops.
func (c *Cache) many(ctx context.Context, ops []Op, s *redis.Script, args func(Op) []any) ([]any, []error) {
	cmds := c.runMany(ctx, s, len(ops), func(i int) []string { return c.keys(ops[i].Key) }, func(i int) []any { return args(ops[i]) })
	vals, errs := make([]any, len(ops)), make([]error, len(ops))
	for i, cmd := range cmds {
		vals[i], errs[i] = cmd.Result()
	}
	return vals, errs
}

// runMany pipelines n calls of script s (call i with keys(i) and args(i))
// with EVALSHA. The calls whose server answered NOSCRIPT (its first use
// there, or after a restart or failover) run again in one more pipeline
// with EVAL, which also loads the script for the next time.
func (c *Cache) runMany(ctx context.Context, s *redis.Script, n int, keys func(int) []string, args func(int) []any) []*redis.Cmd {
	cmds := make([]*redis.Cmd, n)
	_, _ = c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range cmds {
			cmds[i] = s.EvalSha(ctx, p, keys(i), args(i)...)
		}
		return nil
	})
	var again []int
	for i, cmd := range cmds {
		if isNoScript(cmd.Err()) {
			again = append(again, i)
		}
	}
	if len(again) > 0 {
		_, _ = c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, i := range again {
				cmds[i] = s.Eval(ctx, p, keys(i), args(i)...)
			}
			return nil
		})
	}
	return cmds
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
		// UNBLOCKED: a WAIT (AwaitReplicas) cut short by a failover.
		for _, p := range []string{"LOADING", "MASTERDOWN", "READONLY", "CLUSTERDOWN", "TRYAGAIN", "BUSY", "OOM", "MOVED", "ASK", "UNBLOCKED"} {
			if len(msg) >= len(p) && msg[:len(p)] == p {
				return true
			}
		}
		return false
	}
	return true
}
