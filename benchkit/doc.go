// Package benchkit is the engine behind `memstore bench`: it measures the
// store beside raw go-redis commands, the classic strategies of package
// strategies and, from the nested bench module, the peer libraries users
// would pick instead.
//
// Every row of a run executes in one process, one after another, against
// the same private redis-server and the same database, so a row's ratio to
// the raw command it builds on (ratio_to_raw) is measured under the same
// conditions. On a shared machine the absolute numbers drift with the
// neighbours; the ratios drift less, and with Options.Count > 1 a ratio is
// the median of per-pass ratios, which cancels most of what is left. Read
// the ratios, not the ops/s.
//
// A row reports ops/s, p50 and p99 latency (a log-linear histogram per
// goroutine, ±1.6 %), allocations per op (runtime.MemStats over the
// measurement, process-wide: nothing else runs meanwhile) and DB loads.
// Stampede rows run in rounds: many callers over two store instances read
// one cold key at once, and the DB loads per key are counted.
//
// Main is the `memstore bench` command line; Command adds rows (the peers)
// to the same run; Run, WriteTable, WriteJSON, WriteSVG and Checks are the
// pieces, for tests and other front ends.
package benchkit
