// Package memstore is a Redis + SQL "memory store" that cannot misremember,
// and the home of the verifier that proves it.
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
// Each key's cache state is one Redis hash (the value, its version, at most
// one fill lease, the pending write intents), changed only by Lua scripts
// that touch that one hash, so every step is atomic and single-slot on Redis
// Cluster.
//
//   - Get runs one script: a hit returns the value (one round trip). A miss
//     takes a fill lease with a fresh random token, reads the row and fills
//     under the lease; the fill lands only if the same lease is still held
//     and no write intent appeared. A concurrent miss in another process
//     waits for the lease holder (bounded by Options.LeaseWait, then it
//     takes the lease over before reading). Within one process, concurrent
//     misses share one load, but a caller takes a shared result only when
//     it is provably fresh for it (see flight in read.go).
//   - Set and Delete record a write intent and drop the value and lease
//     (begin), commit the row, its new version and an outbox row in one
//     transaction, then clear the intent and drop value and lease again
//     (end). A write whose end cannot reach Redis returns an error wrapping
//     ErrOutcomeUnknown: the row is committed and the outbox reconciler
//     finishes the repair within Options.ReconcileAge.
//   - Values are stored byte for byte the same in both tiers; the Redis
//     entry adds a header (format, version, not-found flag, CRC-32C). A
//     corrupt or foreign entry is dropped and reloaded, never decoded.
//
// # Faults and limits
//
// Redis unreachable: Get reads the DB and fills nothing; writes fail with
// ErrUnavailable and change nothing (Options.WritePolicy can let them
// proceed and leave the repair to the reconciler). DB unreachable: cached
// hits are still served; misses and writes fail with ErrUnavailable; nothing
// negative is cached and nothing is half-written. Use a go-redis client with
// ContextTimeoutEnabled so a call's context bounds a hung Redis.
//
// Redis eviction or data loss (restart without persistence, FLUSHDB) drops
// intents and leases with the values, and that is the store's known gap. A
// write that loses its intent still ends by dropping value and lease, which
// voids any fill that read the old row during the write. But while it is in
// flight nothing marks the key: another write can begin and end, a reader
// can then fill that write's row, and the first write's commit (a newer
// version) is seen by readers that reach the DB while the filled entry is
// still served from Redis, until the first write's end drops it. The
// verifier found this interleaving (about 1 run in 40 with flush faults;
// verify/testdata/memstore-flush-k2.jsonl keeps one). If the writer also
// dies before its end, the stale entry lives until the reconciler drops it,
// at most ReconcileAge after the commit. The planned fix is a generation
// marker that fills require and that only the reconciler restores after
// data loss. Until then: configure maxmemory-policy noeviction (or
// volatile-*), run Redis with persistence where data loss is possible, and
// keep ReconcileAge short if that window matters.
//
// Failover to a Redis replica with asynchronous replication is data loss of
// the writes the replica missed: the same bound applies. A lagging DB replica
// must not be given to the store: the *sql.DB must reach the primary, since a
// fill from a replica that has not seen a committed write would cache the old
// row. Clocks do not matter: every deadline is taken from the Redis server's
// clock.
//
// The packages check, verify, fault, schedule and storetest, and the
// memstore command, run real workloads with faults against a real
// redis-server and a real database, record a history and check it for
// linearizability.
package memstore
