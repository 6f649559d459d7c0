// Package memstore is a Redis + SQL "memory store" that cannot misremember,
// and the verifier that proves it.
//
// The store keeps hot values in Redis and the full dataset in a SQL database
// (SQLite by default, PostgreSQL in production). The database is the source of
// truth; Redis is a cache whose loss never produces a wrong read. Reads and
// writes are linearizable per key, even when Redis or the database fails,
// because every fill of the cache is guarded by a lease and every write by an
// intent (see the package documentation of Store for the protocol and its
// limits). The verifier (packages check, verify, fault and storetest, and the
// memstore command) runs real workloads with faults against a real
// redis-server and a real database, records a history and checks it for
// linearizability.
package memstore
