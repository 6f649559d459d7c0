// Package check verifies a recorded history (package history) of a cache+DB
// store: pure functions over data, no I/O beyond the writers they are given.
//
// # Linearizability per key
//
// Each key is checked against a register whose state is "absent" or a value:
// set writes a value, delete makes the key absent, get, refresh and getmany
// read, and cas writes its value only if the state equals the value its
// expected version held (see history.Op.Expect). A cas that reported a
// version conflict requires a different state, except when it expected an
// absent row: a deleted row keeps its version, so such a conflict allows any
// state. Failed writes are dropped (they certainly had no effect); failed and
// unknown reads are dropped (they carry no information); an unknown write may
// take effect at any time after its call, or never.
//
// The verdict is exact when it is Ok or Illegal: Ok means an order of the
// operations exists that respects real time and the register's rules;
// Illegal means none does, and names the operation at which the search ran
// out of orders. The search (see linear.go) holds only the set of
// configurations the key's history can be in, swept over call and return
// events, so a quiescent point carries exactly the set of possible states
// into the rest of the history. It stops with Unknown, naming the Cause,
// when that set outgrows Options.MaxConfigs (the memory bound: at most about
// 200 bytes per configuration per worker), when its work passes
// Options.MaxSteps, when more than Options.MaxConcurrency operations are
// pending at once, or when Options.Timeout runs out. Unknown is inconclusive
// and never a pass. Keys are checked in parallel, Options.Workers at a time.
//
// The search relies on the workload's guarantee that written values are
// unique per key (history.History.Validate checks it). Its verdicts are
// tested against porcupine on random small histories, legal and corrupted.
//
// # Explainers
//
// Cheap rules name the operations behind a violation in words: stale reads,
// reads of values never written, reads of failed writes, reads from the
// future, lost acknowledged writes and non-monotonic reads within a client.
// They are sound (no linearizable history triggers them), so an anomaly makes
// its key Illegal even when the search was inconclusive; they are not
// complete, which is what the search is for.
//
// # Other checks
//
// Polaris gives the share of acknowledged writes that every later read saw
// within Δt, and the worst staleness. Convergence checks a snapshot taken
// after heal: every key's cache entry is absent or equal to the DB's value.
// Stampede counts DB loads per cold key.
//
// All runs everything and returns a Report with stable JSON field names.
// Visualize draws porcupine's HTML timeline of one key, annotated with the
// history's fault windows.
package check
