package rediscache

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// getManyScript: KEYS the hashes of keys of one stripe, then the stripe's
// marker; ARGV token, lease ms. One get (getScript) per key, in one call:
// a hit costs one HGET inside it, and a miss is answered (lease, intent,
// busy, pending) in the same round trip, so a batch of cached or cold keys
// is one round trip per stripe group. Replies one element per key, as
// getScript would.
var getManyScript = redis.NewScript(luaLib + `
local n = #KEYS - 1
local m, tok, ms = KEYS[n + 1], ARGV[1], tonumber(ARGV[2])
local out = {}
local g, pt, t
for i = 1, n do
  local h = KEYS[i]
  local v = redis.call('HGET', h, 'v')
  if v then
    out[i] = v
  else
    if not t then g, pt = marker(m, tok); t = now() end
    if g then out[i] = grant(h, m, g, t, tok, ms, false) else out[i] = {4, pt} end
  end
end
return out
`)

// maxGetMany bounds the keys of one getManyScript call: Redis runs a script
// to its end before serving anyone else, so a huge batch is split into
// calls that each keep the server's other clients waiting briefly.
const maxGetMany = 256

// GetMany reads keys as Get would, leasing every miss it may to token (one
// token serves the whole batch: a lease is per key, and a fill names its
// key). Keys are grouped by stripe, each group one script call of at most
// maxGetMany keys, all in one pipeline: one round trip per Redis node.
// Errors are per key.
func (c *Cache) GetMany(ctx context.Context, keys []string, token string) ([]Result, []error) {
	res, errs := make([]Result, len(keys)), make([]error, len(keys))
	type call struct {
		stripe int
		at     []int
		ks     []string
	}
	var calls []*call
	open := map[int]*call{}
	for i, k := range keys {
		st := c.Stripe(k)
		cl := open[st]
		if cl == nil || len(cl.at) == maxGetMany {
			cl = &call{stripe: st}
			open[st] = cl
			calls = append(calls, cl)
		}
		cl.at = append(cl.at, i)
		cl.ks = append(cl.ks, c.Key(k))
	}
	for _, cl := range calls {
		cl.ks = append(cl.ks, c.Marker(cl.stripe))
	}
	args := []any{token, c.leaseArg}
	cmds := c.runMany(ctx, getManyScript, len(calls), func(i int) []string { return calls[i].ks }, func(int) []any { return args })
	for n, cl := range calls {
		v, err := cmds[n].Result()
		vs, ok := v.([]any)
		if err == nil && (!ok || len(vs) != len(cl.at)) {
			err = ErrReply
		}
		for j, i := range cl.at {
			if err != nil {
				errs[i] = err
				continue
			}
			res[i], errs[i] = parseGet(vs[j])
		}
	}
	return res, errs
}
