package rediscache

import "github.com/redis/go-redis/v9"

// The scripts of a key take KEYS entry, lease, marker (Cache.keys): the
// key's cached entry, its lease hash and its stripe's marker, all in one
// slot (layout.go).
//
// The entry is a plain string, the sealed entry (codec header, which holds
// the row version, then the payload), so a hit is a plain GET and a batch
// of hits a plain MGET.
//
// Lease hash fields, while a fill lease lives:
//
//	l, ld    the lease's token and deadline (ms, Redis clock)
//
// Marker fields:
//
//	pt       the marker's incarnation token, set when it is created
//	g        the generation the database confirmed for this incarnation;
//	         absent while the marker is pending
//	i:<hash> the live write intents of one key: "<deadline> <tok> <tok>..."
//
// Rules, and why they make Redis data loss harmless:
//
//   - An entry is present only while no intent of its key lives: begin
//     records the intent and drops the entry and the lease in one script,
//     and a lease is never granted while an intent lives. So a hit is one
//     plain GET.
//   - Intents live in the marker, not beside the key, so evicting a key's
//     entry or lease loses only a cached value or a fill: never the fact
//     that a write is in flight.
//   - Losing a marker (flush, restart, eviction) loses intents. A new marker
//     is pending: no lease is granted in it until the database has fenced
//     the stripe (bumped its generation, which makes every write that began
//     under the old marker fail its commit) and the marker holds the new
//     generation. A marker's name (its incarnation) is new every time it
//     is created, so each re-creation needs its own fence.
//     Writers commit only if the stripe's generation in the database is
//     still the one they began under.

// luaLib is shared by the scripts that read intents or the marker.
const luaLib = `
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- intent returns the live intent record of hash h in marker m, deleting it
-- once its deadline (the latest of its writers') has passed: those writers
-- crashed or gave up, since a writer aborts well before its deadline.
local function intent(m, h, t)
  local f = 'i:' .. h
  local s = redis.call('HGET', m, f)
  if not s then return nil end
  if t < tonumber(string.match(s, '^%d+')) then return s end
  redis.call('HDEL', m, f)
  return nil
end
-- marker returns the marker's confirmed generation (false while pending)
-- and its incarnation token, creating a pending marker named pt if there is
-- none. pt must be new in every call (Cache.incarnation): a caller that
-- fenced a marker and finds it lost again creates another incarnation,
-- which needs a fence of its own, since the database fences an
-- incarnation once (sqlstore's Fence is idempotent per name).
local function marker(m, pt)
  local r = redis.call('HMGET', m, 'pt', 'g')
  if r[1] then return r[2], r[1] end
  redis.call('HSET', m, 'pt', pt)
  return false, pt
end
-- grant is a miss's answer for entry h (lease hash l) in a confirmed
-- marker m at time t: 2 if a write is in flight, 3 if another reader's
-- lease is live (and force is unset), else 0, having granted the lease to
-- tok for ms.
local function grant(h, l, m, t, tok, ms, force)
  if intent(m, h, t) then return 2 end
  local r = redis.call('HMGET', l, 'l', 'ld')
  if r[1] and t < tonumber(r[2]) and not force then return 3 end
  redis.call('HSET', l, 'l', tok, 'ld', t + ms)
  redis.call('PEXPIRE', l, ms + 1000)
  return 0
end
-- version returns the row version in sealed entry v's header (big-endian,
-- bytes 6 to 13), or -1 for bytes too short to be an entry.
local function version(v)
  if #v < 13 then return -1 end
  local n = 0
  for i = 6, 13 do n = n * 256 + string.byte(v, i) end
  return n
end
-- unintent removes token tok from hash h's intents in marker m.
local function unintent(m, h, tok)
  local f = 'i:' .. h
  local s = redis.call('HGET', m, f)
  if not s then return end
  local d, toks = string.match(s, '^(%d+)(.*)$')
  local rest = {}
  for t in string.gmatch(toks, '%S+') do
    if t ~= tok then rest[#rest + 1] = t end
  end
  if #rest == 0 then
    redis.call('HDEL', m, f)
  else
    redis.call('HSET', m, f, d .. ' ' .. table.concat(rest, ' '))
  end
end
`

// getScript: KEYS entry, lease, marker; ARGV token, lease ms, force ("1":
// take the lease over from another holder), incarnation (a new marker's
// name). Replies:
//
//	bulk v     hit: the sealed entry
//	0          lease granted to token: read the DB, then fill
//	2          a write is in flight: read the DB, do not fill
//	3          another reader holds the lease: wait and retry
//	{4, pt}    the marker is pending: fence the stripe, then retry
var getScript = redis.NewScript(getSource)

const getSource = luaLib + `
local h, l, m = KEYS[1], KEYS[2], KEYS[3]
local v = redis.call('GET', h)
if v then return v end
local g, pt = marker(m, ARGV[4])
if not g then return {4, pt} end
return grant(h, l, m, now(), ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1')
`

// fillScript: KEYS entry, lease (the marker too, unread); ARGV token, sealed
// entry, ttl ms. Installs the entry only if the same lease is still held.
// Replies 1 if installed, 0 if refused. The lease is all a fill needs:
// every begin drops it (the intent and the drop are one script), no lease
// is granted while an intent lives, and none in a marker that has not been
// fenced since it was created, so a lease still held means no write began
// since the reader's DB read could have missed it. Its deadline only tells
// other readers when to take over: a late fill under a lease nobody took
// is still current.
var fillScript = redis.NewScript(`
local h, l = KEYS[1], KEYS[2]
if redis.call('HGET', l, 'l') ~= ARGV[1] then return 0 end
redis.call('DEL', l)
redis.call('SET', h, ARGV[2], 'PX', ARGV[3])
return 1
`)

// beginScript: KEYS entry, lease, marker; ARGV token, intent ms, incarnation
// (a new marker's name). Records the write intent in the marker (creating a
// pending one if it was lost) and drops the key's value and lease, so no fill that started before the write can land.
// Replies {generation or nil while pending, incarnation token}. Running it
// twice for one token records one intent.
var beginScript = redis.NewScript(luaLib + `
local h, m = KEYS[1], KEYS[3]
local g, pt = marker(m, ARGV[3])
local t = now()
local d = t + tonumber(ARGV[2])
local s = intent(m, h, t)
if not s then
  s = string.format('%.0f', d) .. ' ' .. ARGV[1]
else
  local old, toks = string.match(s, '^(%d+)(.*)$')
  if not string.find(toks .. ' ', ' ' .. ARGV[1] .. ' ', 1, true) then toks = toks .. ' ' .. ARGV[1] end
  s = string.format('%.0f', math.max(tonumber(old), d)) .. toks
end
redis.call('HSET', m, 'i:' .. h, s)
redis.call('DEL', h, KEYS[2])
return {g, pt}
`)

// endScript: KEYS entry, lease, marker; ARGV token. Clears this write's
// intent. It leaves the entry alone: nothing can have been filled while the
// intent lived, and a fill under a newer generation read the committed row.
var endScript = redis.NewScript(luaLib + `
unintent(KEYS[3], KEYS[1], ARGV[1])
return 1
`)

// repairScript: KEYS entry, lease, marker; ARGV token, version. The
// reconciler's end for a committed write: clears the intent if it is still
// there and drops a cached entry older than the committed version. Replies
// 1 if it dropped one.
var repairScript = redis.NewScript(luaLib + `
local h = KEYS[1]
unintent(KEYS[3], h, ARGV[1])
local v = redis.call('GET', h)
if v and version(v) < tonumber(ARGV[2]) then
  redis.call('DEL', h)
  return 1
end
return 0
`)

// confirmScript: KEYS marker; ARGV incarnation token, generation. Records
// the generation the database fenced the stripe at, if the marker is still
// the incarnation that asked for it. Replies 1 if so, 0 if the marker was
// lost (or replaced) meanwhile.
var confirmScript = redis.NewScript(`
local r = redis.call('HMGET', KEYS[1], 'pt', 'g')
if r[1] ~= ARGV[1] then return 0 end
if not r[2] or tonumber(r[2]) < tonumber(ARGV[2]) then redis.call('HSET', KEYS[1], 'g', ARGV[2]) end
return 1
`)

// unleaseScript: KEYS lease; ARGV token. Gives up a lease this reader holds
// (its DB read failed), so waiters need not wait out the deadline.
var unleaseScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'l') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`)

// dropScript: KEYS entry; ARGV bytes. Drops the entry if it still equals
// the bytes given (a corrupt or foreign entry seen by a reader), so a fresh
// entry installed meanwhile survives. An empty ARGV drops any entry.
var dropScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v and (ARGV[1] == '' or v == ARGV[1]) then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`)
