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
// # Stores in other programs, and calls that never return
//
// Config.Exec drives a store written in any language through an adapter
// process per instance that speaks the exec protocol, JSON lines on its
// stdin and stdout (docs/exec-protocol.md); every check and every fault
// that can be applied from outside the process applies to it. It has no
// hooks, so its Redis round trips go through a proxy that delays each
// request by a random 0 to 4 ms instead (fault.Jitter).
//
// Every call the engine makes has a watchdog, so a run never hangs. An
// adapter or worker process that leaves a request unanswered past
// OpTimeout (a worker: plus HangSlack) is killed and restarted, the request
// recorded as unknown. An in-process call that outlives its context by
// HangSlack is abandoned; since a goroutine cannot be stopped, the run
// ends there, what was recorded is checked, and Result.Hangs names the
// call, with a dump of every goroutine (Result.GoroutineDump). Either way
// the check "hang" fires and the store does not pass.
//
// # Seeing races
//
// A race between a reader's fill and a writer's invalidation is a window of
// a few hundred microseconds. The engine widens it, and makes sure a wrong
// value that lands in the cache is read where the checker can see it:
//
//   - delays: small random sleeps injected through the store's Hook after
//     DB reads and writes and before cache fills, sets and deletes;
//   - eviction: a key's cache entry dropped every few milliseconds, so
//     reads keep missing and refilling;
//   - read windows: every few hundred milliseconds the writes pause and
//     every key is evicted mid-pause, so a cache that disagrees with the DB
//     is read before and after with no write in between;
//   - the final phase: a convergence snapshot, then read, evict, read again
//     on every key. Some strategies (write-DB-then-set) leave every reader
//     agreeing on a wrong cached value; only a read that reaches the DB
//     shows it.
//
// # Judging
//
// A Result judges the run: a store expected to pass must be linearizable
// (Ok; Unknown is inconclusive and not a pass), have no anomaly and
// converge; a known-bad store must be caught by some check, and Fired names
// which. Outcomes follow DefaultOutcome: a write is "failed" only when the
// store says unambiguously that nothing was written, and "unknown"
// otherwise, which keeps the check sound.
//
// The sweep that measures detection (every known-bad strategy, 20 seeds)
// runs with
//
//	go test ./verify -run Sweep -sweep -v
package verify
