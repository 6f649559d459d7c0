package rediscache

import "github.com/redis/go-redis/v9"

// Each script touches exactly one key: the hash that holds a logical key's
// whole cache state. Its fields:
//
//	v        the sealed entry (codec header + payload), or absent
//	ver      the row version of v (kept apart so scripts compare it cheaply)
//	l, ld    the fill lease: its token and deadline (ms since the epoch, Redis clock)
//	i:<tok>  one field per write intent, value = its deadline
//	in, idl  the number of intent fields and the latest intent deadline
//
// Invariant: v is present only while no live intent is. begin drops v, a fill
// is refused while an intent lives, and end only drops. So a hit needs no
// other check, and the hit path is one HMGET inside one EVALSHA.

// now returns the Redis server's clock in ms; every deadline uses it, so
// client clocks never matter.
const luaNow = `
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function purge_intents(h)
  local f = redis.call('HKEYS', h)
  for _, k in ipairs(f) do
    if string.sub(k, 1, 2) == 'i:' then redis.call('HDEL', h, k) end
  end
  redis.call('HDEL', h, 'in', 'idl')
end
-- live_intent reports whether any intent is live, purging them all once the
-- latest deadline has passed (their writers crashed or stalled).
local function live_intent(h, n, idl, t)
  if not n or tonumber(n) <= 0 then return false end
  if t < tonumber(idl or '0') then return true end
  purge_intents(h)
  return false
end
local function at_least(h, ms)
  local p = redis.call('PTTL', h)
  if p < ms then redis.call('PEXPIRE', h, ms) end
end
`

// getScript: KEYS[1] hash; ARGV token, lease ms, force ("1": take the lease
// over from another holder). Replies:
//
//	bulk v   hit: the sealed entry (a bulk reply, so a hit costs the client
//	         no more parsing than a GET)
//	0        lease granted to token: read the DB, then fill
//	2        a write is in flight: read the DB, do not fill
//	3        another reader holds the lease: wait and retry
var getScript = redis.NewScript(getSource)

const getSource = luaNow + `
local h = KEYS[1]
local r = redis.call('HMGET', h, 'v', 'in')
if r[1] and not r[2] then return r[1] end
local t = now()
if r[2] and live_intent(h, r[2], redis.call('HGET', h, 'idl'), t) then return 2 end
if r[1] then return r[1] end
local l = redis.call('HMGET', h, 'l', 'ld')
if l[1] and t < tonumber(l[2]) and ARGV[3] ~= '1' then return 3 end
local ms = tonumber(ARGV[2])
redis.call('HSET', h, 'l', ARGV[1], 'ld', t + ms)
at_least(h, ms + 1000)
return 0
`

// fillScript: KEYS[1] hash; ARGV token, sealed entry, version, ttl ms.
// Installs the entry only if the same lease is still held and unexpired and
// no intent is live. Replies 1 if installed, 0 if refused.
var fillScript = redis.NewScript(luaNow + `
local h = KEYS[1]
local r = redis.call('HMGET', h, 'l', 'ld', 'in', 'idl')
if r[1] ~= ARGV[1] then return 0 end
local t = now()
redis.call('HDEL', h, 'l', 'ld')
if t >= tonumber(r[2]) then return 0 end
if live_intent(h, r[3], r[4], t) then return 0 end
redis.call('HSET', h, 'v', ARGV[2], 'ver', ARGV[3])
redis.call('PEXPIRE', h, tonumber(ARGV[4]))
return 1
`)

// beginScript: KEYS[1] hash; ARGV token, intent ms. Records the write
// intent and drops the value and any fill lease, so no fill that started
// before the write can land.
var beginScript = redis.NewScript(luaNow + `
local h = KEYS[1]
local t = now()
local d = t + tonumber(ARGV[2])
if redis.call('HSETNX', h, 'i:' .. ARGV[1], d) == 1 then
  redis.call('HINCRBY', h, 'in', 1)
end
local idl = tonumber(redis.call('HGET', h, 'idl') or '0')
if d > idl then redis.call('HSET', h, 'idl', d) end
redis.call('HDEL', h, 'v', 'ver', 'l', 'ld')
at_least(h, tonumber(ARGV[2]) + 1000)
return 1
`)

// endScript: KEYS[1] hash; ARGV token. Clears this write's intent and drops
// the value and any lease again: if the intent was lost (eviction, restart),
// a reader may have taken a lease and read the old row during the write, and
// dropping the lease voids that fill. It never installs a value: after data
// loss no script can prove a version is the newest.
var endScript = redis.NewScript(`
local h = KEYS[1]
if redis.call('HDEL', h, 'i:' .. ARGV[1]) == 1 then
  if redis.call('HINCRBY', h, 'in', -1) <= 0 then redis.call('HDEL', h, 'in', 'idl') end
end
redis.call('HDEL', h, 'v', 'ver', 'l', 'ld')
return 1
`)

// repairScript: KEYS[1] hash; ARGV token, version. The reconciler's end for
// an outbox row: clears the intent if it is still there and drops a cached
// value older than the committed version (a fill that slipped in while the
// intent was lost). A value at or past that version is current and stays.
var repairScript = redis.NewScript(`
local h = KEYS[1]
if redis.call('HDEL', h, 'i:' .. ARGV[1]) == 1 then
  if redis.call('HINCRBY', h, 'in', -1) <= 0 then redis.call('HDEL', h, 'in', 'idl') end
end
local ver = redis.call('HGET', h, 'ver')
if ver and tonumber(ver) < tonumber(ARGV[2]) then
  redis.call('HDEL', h, 'v', 'ver')
  return 1
end
if not ver and redis.call('HEXISTS', h, 'v') == 1 then
  redis.call('HDEL', h, 'v')
  return 1
end
return 0
`)

// unleaseScript: KEYS[1] hash; ARGV token. Gives up a lease this reader
// holds (its DB read failed), so waiters need not wait out the deadline.
var unleaseScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'l') == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'l', 'ld')
  return 1
end
return 0
`)

// dropScript: KEYS[1] hash; ARGV bytes. Drops the value if it still equals
// the bytes given (a corrupt or foreign entry seen by a reader), so a fresh
// entry installed meanwhile survives. An empty ARGV drops any value.
var dropScript = redis.NewScript(`
local v = redis.call('HGET', KEYS[1], 'v')
if v and (ARGV[1] == '' or v == ARGV[1]) then
  redis.call('HDEL', KEYS[1], 'v', 'ver')
  return 1
end
return 0
`)
