package memstore

import "context"

// Step names one I/O step of a store's protocol. Hooks see every step twice,
// once before it runs and once after it.
type Step string

// The steps of the memstore protocol, every one fired by the store. Other
// stores (the reference strategies) use the same names where the step means
// the same thing, and names of their own for the rest.
const (
	StepRedisGet     Step = "redis.get"     // Lua get: hit, or take a fill lease
	StepRedisFill    Step = "redis.fill"    // Lua fill: install a loaded value under the lease
	StepRedisBegin   Step = "redis.begin"   // Lua begin: record a write intent, drop value and lease
	StepRedisEnd     Step = "redis.end"     // Lua end: clear the intent (in the background, after the call returned)
	StepRedisDel     Step = "redis.del"     // drop a cached value (Refresh, a corrupt entry; the strategies' plain delete)
	StepDBLoad       Step = "db.load"       // read one row
	StepDBWrite      Step = "db.write"      // the write statement (or transaction): rows, versions, under the fence
	StepDBFence      Step = "db.fence"      // move a stripe to a new generation after Redis lost its marker
	StepRedisConfirm Step = "redis.confirm" // record the new generation in the stripe's marker
)

// Phase says whether a hook runs before or after its step.
type Phase uint8

const (
	Before Phase = iota
	After
)

func (p Phase) String() string {
	if p == Before {
		return "before"
	}
	return "after"
}

// HookEvent describes one hook point.
type HookEvent struct {
	Step  Step
	Phase Phase
	Key   string
	Err   error // After only: the step's error, if any
	// Background marks a step that runs after its call returned: a write's
	// end, or the cleanup of a call that gave up. Its context carries the
	// call's values, not its deadline or cancellation.
	Background bool
}

// Hook is called at every hook point of a store. Returning a non-nil error
// aborts the call at that point with that error (as if the step had failed
// there), which lets a verifier simulate a crash at an exact step. A hook may
// block to force an interleaving; it must honour ctx. Hooks are nil in
// production: one nil check per step.
type Hook func(ctx context.Context, ev HookEvent) error
