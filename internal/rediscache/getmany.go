package rediscache

import (
	"context"
	"unsafe"

	"github.com/redis/go-redis/v9"
)

// getManyScript: KEYS the entries of n keys of one stripe, then their
// leases, then the stripe's marker; ARGV token, lease ms, incarnation. One get
// (getScript) per key, in one call, for the keys a GetMany's MGET missed.
// Replies one element per key, as getScript would.
var getManyScript = redis.NewScript(luaLib + `
local n = (#KEYS - 1) / 2
local m, tok, ms = KEYS[#KEYS], ARGV[1], tonumber(ARGV[2])
local out = {}
local g, pt, t
for i = 1, n do
  local h = KEYS[i]
  local v = redis.call('GET', h)
  if v then
    out[i] = v
  else
    if not t then g, pt = marker(m, ARGV[3]); t = now() end
    if g then out[i] = grant(h, KEYS[n + i], m, t, tok, ms, false) else out[i] = {4, pt} end
  end
end
return out
`)

// maxGetMany bounds the keys of one MGET or getManyScript call: Redis
// serves one command at a time, so a huge batch is split into calls that
// each keep the server's other clients waiting briefly.
const maxGetMany = 256

// GetMany reads keys as Get would: one MGET per stripe group (a cluster's
// stripe is a slot, so each MGET is single-slot) answers the hits, then
// one getManyScript call per group answers the misses, leasing every one it
// may to token (one token serves the batch: a lease is per key, and a fill
// names its key). Each phase is one pipeline: one round trip per Redis
// node, and none for the misses when every key hit. Errors are per key.
func (c *Cache) GetMany(ctx context.Context, keys []string, token string) ([]Result, []error) {
	res, errs := make([]Result, len(keys)), make([]error, len(keys))
	entries, all := c.entryKeys(keys), make([]int, len(keys))
	for i := range all {
		all[i] = i
	}
	groups := c.group(entries, all)
	cmds := make([]*redis.SliceCmd, len(groups))
	mget := func(c redis.Cmdable) {
		for g, gr := range groups {
			ks := make([]string, len(gr.at))
			for j, i := range gr.at {
				ks[j] = entries[i]
			}
			cmds[g] = c.MGet(ctx, ks...)
		}
	}
	if len(groups) == 1 {
		mget(c.rdb) // one command needs no pipeline, which costs more
	} else {
		_, _ = c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error { mget(p); return nil })
	}
	var missed []int
	for g, gr := range groups {
		vs, err := cmds[g].Result()
		if err == nil && len(vs) != len(gr.at) {
			err = ErrReply
		}
		for j, i := range gr.at {
			switch {
			case err != nil:
				errs[i] = err
			case vs[j] == nil:
				missed = append(missed, i)
			default:
				v, ok := vs[j].(string)
				if !ok {
					errs[i] = ErrReply
					continue
				}
				// The reply string is never touched again: view its bytes.
				res[i] = Result{Kind: Hit, Value: unsafe.Slice(unsafe.StringData(v), len(v))}
			}
		}
	}
	if len(missed) == 0 {
		return res, errs
	}
	groups = c.group(entries, missed)
	args := []any{token, c.leaseArg, incarnation()}
	scmds := c.runMany(ctx, getManyScript, len(groups), func(g int) []string {
		gr := groups[g]
		ks := make([]string, 0, 2*len(gr.at)+1)
		for _, i := range gr.at {
			ks = append(ks, entries[i])
		}
		for _, i := range gr.at {
			ks = append(ks, entries[i]+":l")
		}
		return append(ks, c.Marker(gr.stripe))
	}, func(int) []any { return args })
	for g, gr := range groups {
		v, err := scmds[g].Result()
		vs, ok := v.([]any)
		if err == nil && (!ok || len(vs) != len(gr.at)) {
			err = ErrReply
		}
		for j, i := range gr.at {
			if err != nil {
				errs[i] = err
				continue
			}
			res[i], errs[i] = parseGet(vs[j])
		}
	}
	return res, errs
}

// entryKeys returns the entry keys of keys, built in one buffer: one
// allocation for the batch rather than one per key. Each string views
// bytes of the buffer that are never written again (appends write past
// them, or into a new array).
func (c *Cache) entryKeys(keys []string) []string {
	n := 0
	for _, k := range keys {
		n += len(c.ns) + len(k) + 3
	}
	buf := make([]byte, 0, n)
	out := make([]string, len(keys))
	for i, k := range keys {
		start := len(buf)
		buf = AppendKey(buf, c.ns, k)
		out[i] = unsafe.String(&buf[start], len(buf)-start)
	}
	return out
}

// stripeGroup is the indexes of keys of one stripe, at most maxGetMany.
type stripeGroup struct {
	stripe int
	at     []int
}

// group splits the keys whose entries are entries[i], i in at, into
// stripe groups.
func (c *Cache) group(entries []string, at []int) []stripeGroup {
	var groups []stripeGroup
	if !c.cluster { // one stripe
		for len(at) > 0 {
			n := min(len(at), maxGetMany)
			groups = append(groups, stripeGroup{at: at[:n:n]})
			at = at[n:]
		}
		return groups
	}
	open := map[int]int{} // stripe → its open group
	for _, i := range at {
		st := 0
		if c.cluster {
			st = Slot(entries[i])
		}
		g, ok := open[st]
		if !ok || len(groups[g].at) == maxGetMany {
			g = len(groups)
			open[st] = g
			groups = append(groups, stripeGroup{stripe: st})
		}
		groups[g].at = append(groups[g].at, i)
	}
	return groups
}
