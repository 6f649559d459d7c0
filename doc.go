// Package memstore is a Redis + SQL "memory store" that cannot misremember.
//
// A Store keeps hot values in Redis and every value in a SQL database
// (SQLite by default, PostgreSQL in production). The database is the source
// of truth; Redis is a cache whose loss never produces a wrong read.
//
// # Guarantee
//
// Reads and writes are linearizable per key: once a Set or Delete returns
// nil, or once any Get has returned a value, no later Get anywhere, in this
// process or another, returns an older value. Under faults a call may fail
// with an error, but a Get never returns a stale value.
//
// # Protocol
//
// Each key's cached entry is one plain Redis string, and its fill lease a
// small hash beside it in the same slot; the write intents of a stripe of
// keys (the namespace, or one hash slot on Redis Cluster) live in one
// marker hash in that slot too. Every step is one Lua script on one slot,
// so it is atomic on Redis Cluster too.
//
//   - Get on a hit is one plain GET, and GetMany of cached keys one MGET
//     per slot (one in all on a single server): a value is present only
//     while no write intent of its key lives. A miss runs the get script,
//     which takes a fill lease with a fresh random token; the reader reads the
//     row and fills under the lease, and the fill lands only if the same
//     lease is still held: every write's begin drops it. A concurrent miss
//     in another process waits for the lease holder (bounded by
//     Options.LeaseWait, then it takes the lease over before reading).
//     Within one process, concurrent misses share one load, but a caller
//     takes a shared result only when it is provably fresh for it (see
//     flight in read.go).
//   - Set and Delete record a write intent in the marker and drop the value
//     and lease (begin), then commit the row and its new version in one
//     statement, and return. The row is its own outbox: it keeps the
//     write's token and time, which is all the reconciler needs. The
//     commit happens only if the stripe's generation in the database is
//     still the one begin saw. The intent is cleared (end) in the
//     background right after: until then it sends readers to the database,
//     which holds the committed row. An end that never runs (the process
//     died) is replayed from the rows by the reconciler within
//     Options.ReconcileAge. Store.Sync waits for the ends of the writes
//     that returned.
//   - Redis losing data loses intents. Evicting a key's entry or lease
//     loses only a cached value or a fill. Losing a marker (FLUSHALL, a
//     restart without persistence, its eviction under any
//     maxmemory-policy) leaves the stripe pending: the next reader or
//     writer creates a new marker, under a name never used before, and
//     fences it: one database write that moves the stripe to a new
//     generation, so that every write that began under the lost marker
//     either committed before the fence or cannot commit at all (it then
//     begins again). Fills resume as soon as the fence is recorded: no
//     timeout is waited out. See fence.go.
//   - Values are stored byte for byte the same in both tiers; the Redis
//     entry adds a header (format, version, not-found flag, CRC-32C). A
//     corrupt or foreign entry is dropped and reloaded, never decoded.
//
// # Faults and limits
//
// Redis unreachable or hung: every Redis round trip runs under the Redis
// budget (Options.RedisBudget, 50ms, never more than half of what the
// call's context has left). A Get whose round trip fails or overruns it
// reads the DB and fills nothing; a write gets four budgets to record its
// intent, then fails with ErrUnavailable and changes nothing. A breaker
// shared by the store's calls opens once failures persist, and while it is
// open no call waits on Redis: Gets read the DB at once, writes fail at
// once. A probe every Options.ProbeInterval closes it when Redis answers
// (see breaker.go). Options.WritePolicy can let writes proceed without an
// intent: a weaker mode, see WriteProceed. DB unreachable: cached hits are
// still served; misses and writes fail with ErrUnavailable; nothing
// negative is cached and nothing is half-written.
//
// Deadlines: no store call waits past its context's deadline. Work that
// must outlive a call (a write's end, the cleanup of a call that gave up)
// runs in the background, from a bounded queue that Close drains. The
// go-redis client must have ContextTimeoutEnabled (New checks), or
// go-redis would wait for its own ReadTimeout instead. What a call takes
// past its deadline is the time to notice it and return: microseconds on
// an idle host, more only when the host itself is starved for CPU. One
// exception, outside the store's hands: with several processes on one
// SQLite file, a statement waiting for another process's write lock waits
// in SQLite's busy handler, which may not notice the context until the
// DSN's busy_timeout has passed (keep it short: writes within one process
// never contend, they commit in groups).
//
// Redis data loss of any kind, flush, restart, eviction of any key under
// any maxmemory-policy, is covered by the fence above. Its cost: after a
// loss, the first miss or write of each stripe pays one extra database
// write and one extra Redis script, and writes that were in flight begin
// again once.
//
// Failover to a Redis replica with asynchronous replication rolls Redis
// back to an older state, which is more than losing data: a value a write
// had already dropped can reappear with the write's intent gone. So on a
// *redis.ClusterClient or a Sentinel failover client a write waits, after
// its begin, until a replica of the key's master has it (Redis WAIT,
// Options.ReplicaAcks), and fails with ErrUnavailable, nothing written, if
// none does within two Redis budgets: a shard without a live replica takes
// no writes. WAIT is not consensus: a failover that promotes a replica
// other than the one that acknowledged (a shard with several), or a
// replica that lost the write again (restarted without persistence), still
// rolls the intent back. The outbox reconciler drops such a value within
// ReconcileAge (it compares the cached version with the committed one), but
// until then it may be served. On a plain client with replicas behind it,
// set ReplicaAcks. A lagging DB replica must not be given to the store: the
// *sql.DB must reach the primary, since a fill from a replica that has not
// seen a committed write would cache the old row.
//
// Intent deadlines are taken from the Redis server's clock; a writer
// measures its own deadline (three quarters of IntentTTL) on its monotonic
// clock, so only clock rates matter, not offsets. A row records the time
// of its last write by the database's clock, and the reconciler measures
// ReconcileAge on that clock too, so no host's clock is compared with
// another's. A write whose commit takes longer than ReconcileAge after its
// statement ran may be missed by the reconciler; its intent then expires
// after IntentTTL, and until then the key is read from the database.
//
// # Metrics and traces
//
// A store reports to OpenTelemetry (Options.MeterProvider and
// Options.TracerProvider; by default the global providers, no-ops until
// the application sets them). Its counters (memstore.hits,
// memstore.misses, memstore.db.loads, memstore.fills, memstore.errors, ...)
// are asynchronous instruments read from the counters Stats returns, so a
// hit does no metric work; each call records memstore.operation.duration
// by operation and outcome. Each call is a span, memstore.get,
// memstore.set and so on, whose events are the protocol's steps
// ("redis.get", "db.load", "redis.fill", each followed by its "... done"),
// so a slow call shows which step was slow; no span is started while no
// tracer can record one. The store passes each call's context to go-redis
// and database/sql, so the spans of go-redis's redisotel
// (redisotel.InstrumentTracing) and of a pgx tracer (otelpgx, through
// pgx/v5/stdlib) are children of the store's. The memstore monitor command
// (package monitor) watches a live namespace for cache entries that
// disagree with their rows.
//
// The packages check, verify, fault, schedule and storetest, and the
// memstore command, run real workloads with faults against a real
// redis-server and a real database, record a history and check it for
// linearizability.
package memstore
