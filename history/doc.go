// Package history records what concurrent clients did to a cache+DB store,
// as plain data that package check can verify, now or offline.
//
// A History is a header, the operations (Op) and the marked intervals (Event,
// such as fault windows). Every Op names its client, key, kind, input,
// output, call and return times (monotonic nanoseconds since the history's
// start) and its Outcome:
//
//   - OK: the call returned normally; a write took effect between Call and
//     Return, a read saw Out (or nothing, when Found is false).
//   - Failed: the call certainly had no effect. A failed read says nothing.
//   - Unknown: the call may have had an effect, at any time after Call, or
//     never. An unknown read says nothing.
//
// The workload writes values that are unique within a history, so a read
// names the one write it came from. "Not found" is Found false, never a
// special string. A GetMany is recorded as one Op per key sharing a Group id
// and its call and return times: each key is checked on its own, which is
// exactly what per-key linearizability asks. A CompareAndSet is recorded with
// the value its expected version held (Expect, ExpectFound), so that a
// register of values can model it.
//
// A Recorder builds a History while clients run and is safe for concurrent
// use. Write and Read store a history as JSON lines, described in FORMAT.md
// beside this file; any program can produce that format and have it checked.
// Merge joins the histories of several worker processes.
//
// The package does no I/O beyond encoding to the writer or reader it is
// given.
package history
