// Package verify is the engine behind `memstore check`: it runs a cache+DB
// store under a concurrent workload with faults, records a history
// (package history) and checks it (package check).
//
// A run follows Jepsen's phases: a warm-up, the workload with fault cycles
// (each window recorded in the history), heal, a quiet period, a
// convergence snapshot, final reads (read, evict, read again through a
// fresh instance) and a stampede probe. Clients run as goroutines over
// several store instances, each with its own Redis client and DB handle,
// and optionally in separate worker processes (see WorkerMain). Every write
// writes a unique value, so a read names the write it came from.
//
// Two things decide whether a run can see a race. The engine injects small
// random delays through the store's Hook (after DB reads and writes, before
// cache fills, sets and deletes), which widens every race window of a
// cache+DB protocol; and it evicts cache entries all through the workload
// and before the final reads, because some strategies (write-DB-then-set)
// leave every reader agreeing on a wrong cached value that only a read that
// reaches the DB exposes.
//
// A Result judges the run: a store expected to pass must be linearizable
// (Ok; Unknown is inconclusive and not a pass), have no anomaly and
// converge; a known-bad store must be caught by some check, and Fired names
// which.
package verify
