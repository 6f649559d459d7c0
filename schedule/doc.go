// Package schedule forces the interleavings of a store's calls at its hook
// points, so that a narrow race is hit on purpose rather than by luck, and
// prints the schedule that broke the store.
//
// # What it does
//
// A Scenario is a few actors on one key: a reader (Get), one or two writers
// (Set, Delete), perhaps a reader that starts only after a writer returned.
// Each actor runs on its own goroutine, on its own store instance (as
// separate processes would) or on one instance they share (Config.Shared,
// which exercises in-process sharing such as memstore's flights). The
// instances' memstore.Hook is the scheduler: every actor's call start and
// every hook event (before and after each Redis script and DB statement)
// parks the actor there, only one actor runs between two points, and at
// each point the scheduler decides which parked actor goes on.
//
// Explore runs the scenario once serially, counts each actor's points, and
// either enumerates every interleaving (depth-first over the tree of
// decisions, by re-execution, when there are at most Config.Max) or samples
// Config.Max of them uniformly with Config.Seed. Every schedule starts from
// fresh state: its own namespace, the key set to Scenario.Initial and not
// cached.
//
// With separate instances the code an actor runs from the end of one step
// to the start of its next touches nothing another actor sees, so only the
// order in which steps start is decided, and the other points are passed at
// once (Config.AllPoints turns this off). A reader and a writer of memstore
// then have 20 schedules rather than 3432, and lose nothing: the schedules
// left out differ only in when invisible code ran.
//
// # The judge
//
// After the actors return, an observer reads the key from a fresh instance,
// evicts it and reads again (the second read comes from the DB). The
// schedule fails when:
//
//   - the calls and the observer's reads are not linearizable, as a register
//     starting at the initial value: package check decides, an exhaustive
//     search over the handful of calls confirms (a disagreement fails the
//     schedule too), and rules name the culprit ("stale read: the
//     observer's Get returned "v0", but writer's Set("w1") had returned
//     before that read began");
//   - the cache, as the actors left it, holds something other than the DB's
//     value (a stale entry that every reader gets until its TTL ends);
//   - a call failed, though nothing was faulted.
//
// The first failing schedule is run again with a snapshot of both tiers
// after every step, and Failure.String prints it step by step.
//
// # Non-determinism
//
// An actor may block outside the hooks: a Get that joined another caller's
// in-process load waits for that caller, not for the scheduler. The
// scheduler cannot see that, so when a released actor has not reached its
// next point within Config.Quiet (50 ms by default) it is taken as blocked
// elsewhere and another actor goes; it is expected back when any call
// returns. This wall-clock bound is the one source of non-determinism, and
// it is rare: an actor released before a step runs one Redis script or DB
// statement, which never waits for another actor, so it gets a second, not
// Quiet. Result.QuietTimeouts counts the timeouts and Result.Diverged the
// schedules that could not follow their decisions because of them (the
// enumeration may then repeat or skip a schedule). A replay (Config.Replay)
// of a schedule with no timeouts is exact.
//
// Background work that a call leaves behind (double-delete's delayed
// delete) carries the call's context, but runs after the call returned: its
// hook events pass unscheduled. Its timing is the store's, as in production.
//
// # Using it on another store
//
// Any store whose instances take a memstore.Hook can be explored: wrap it in
// a strategies.Factory whose New passes strategies.Config.Hook (and
// Namespace) to the store, with the Inspect and Evict the judge needs. The
// hook must be called with the context of the call that runs the step,
// before and after every step, and a step must not wait for another call
// (hold no lock or transaction across hook points).
package schedule
