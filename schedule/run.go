package schedule

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/memstore/memstore"
	"github.com/memstore/memstore/history"
	"github.com/memstore/memstore/strategies"
)

// stuckAfter bounds how long the scheduler waits when no actor can be
// released (every unfinished actor is blocked outside the hooks).
const stuckAfter = 10 * time.Second

// stepQuiet is the least time an actor released before a step has to reach
// the point after it.
const stepQuiet = time.Second

type actorState uint8

const (
	running   actorState = iota // released: expected at its next point within Quiet
	parked                      // waiting at a point for the scheduler
	elsewhere                   // did not reach a point within Quiet: blocked outside the hooks
	finished                    // returned from its last call
)

// actor is one Actor of a schedule run.
type actor struct {
	idx   int
	spec  Actor
	store strategies.Store
	deps  []*actor

	// guarded by run.mu
	state    actorState
	deadline time.Time     // running: when it counts as blocked elsewhere
	at       Step          // parked: the point it waits at
	release  chan struct{} // parked: closed to let it go on
	op       int           // the history op of its current call
	points   int           // decision points released so far
	// pendingCall is a call whose start is not yet on the trace: with
	// reduce, a call starts, as far as anyone can tell, at its first step.
	pendingCall *Step
}

// callCtx tags the context of one call, so the hook knows whose event it
// sees. Events of a call that has returned (a background goroutine the call
// left behind, such as double-delete's delayed delete) carry a done tag and
// pass through unscheduled.
type callCtx struct {
	r    *run
	a    *actor
	done atomic.Bool
}

type callKey struct{}

// chooser picks which enabled actor goes next. enabled is sorted by actor
// index and has at least two entries.
type chooser interface {
	choose(enabled []int) int
}

// run is one schedule: the actors, the controller that releases them one
// point at a time, and what it recorded.
type run struct {
	key   string
	quiet time.Duration
	// budget is how many points are released under the chooser's control;
	// past it the run goes on round-robin with no decisions, so a retry
	// loop cannot grow the tree of schedules without bound.
	budget int
	// reduce releases call and after points without a decision: with one
	// store instance per actor, the code an actor runs from such a point
	// to its next step touches nothing another actor sees, so only the
	// order of the steps matters.
	reduce bool
	// snapshot, if set, describes the cache and DB after every released
	// point (annotated replays only).
	snapshot func(ctx context.Context) string
	initial  string // the snapshot before the first point

	initialValue string // the scenario's initial value ("": absent)
	evictedRead  int    // the op of the observer's read after the eviction

	mu        sync.Mutex
	actors    []*actor
	changed   chan struct{}
	trace     []Step
	ops       []history.Op
	clock     int64
	released  int
	last      int // index of the actor released last
	quietHits int

	choices   []int   // the chooser's decisions
	decisions [][]int // the enabled set at each decision
}

func newRun(key string, quiet time.Duration, budget int, actors []Actor) *run {
	r := &run{key: key, quiet: quiet, budget: budget, changed: make(chan struct{}, 1), last: -1}
	byName := make(map[string]*actor)
	for i, a := range actors {
		ac := &actor{idx: i, spec: a, state: running}
		r.actors = append(r.actors, ac)
		byName[a.Name] = ac
	}
	for _, ac := range r.actors {
		for _, d := range ac.spec.After {
			ac.deps = append(ac.deps, byName[d])
		}
	}
	return r
}

func (r *run) notify() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// hook is the memstore.Hook every actor's store instance fires.
func (r *run) hook(ctx context.Context, ev memstore.HookEvent) error {
	c, _ := ctx.Value(callKey{}).(*callCtx)
	if ev.Background || c == nil || c.r != r || c.done.Load() || ev.Key != r.key {
		// Not an actor's call: a background task (a write's end, which
		// runs after the call returned), or another run.
		return nil
	}
	return r.park(ctx, c.a, Step{Actor: c.a.spec.Name, Kind: StepHook, Hook: ev})
}

// park blocks actor a at point st until the controller releases it.
func (r *run) park(ctx context.Context, a *actor, st Step) error {
	ch := make(chan struct{})
	r.mu.Lock()
	if a.state == parked {
		// Another goroutine of the same call is already waiting: the
		// scheduler controls one point per actor, so this one passes.
		r.mu.Unlock()
		return nil
	}
	a.state, a.at, a.release = parked, st, ch
	r.mu.Unlock()
	r.notify()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// play runs actor a's calls, each preceded by a scheduling point.
func (r *run) play(ctx context.Context, a *actor) {
	defer func() {
		r.mu.Lock()
		a.state = finished
		r.mu.Unlock()
		r.notify()
	}()
	for _, call := range a.spec.Calls {
		if err := r.park(ctx, a, Step{Actor: a.spec.Name, Kind: StepCall, Call: call}); err != nil {
			return
		}
		c := &callCtx{r: r, a: a}
		res, err := do(context.WithValue(ctx, callKey{}, c), a.store, r.key, call)
		c.done.Store(true)
		r.returned(a, call, res, err)
	}
}

// result is what one call returned.
type result struct {
	value string
	found bool
}

func do(ctx context.Context, s strategies.Store, key string, c Call) (result, error) {
	switch c.Kind {
	case history.Get:
		v, err := s.Get(ctx, key)
		if errors.Is(err, memstore.ErrNotFound) {
			return result{}, nil
		}
		return result{value: v, found: err == nil}, err
	case history.Set:
		return result{}, s.Set(ctx, key, c.Value)
	case history.Delete:
		return result{}, s.Delete(ctx, key)
	}
	return result{}, fmt.Errorf("schedule: unsupported call %q", c.Kind)
}

// returned records the end of a call. An actor blocked outside the hooks
// was most likely waiting for this call (an in-process flight ends when its
// leader returns), so such actors are expected at a point again.
func (r *run) returned(a *actor, c Call, res result, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if a.pendingCall != nil {
		r.startLocked(a, *a.pendingCall) // a call that passed no hook point
	}
	r.clock++
	op := &r.ops[a.op]
	op.Return = r.clock
	st := Step{Actor: a.spec.Name, Kind: StepReturn, Call: c}
	switch {
	case err != nil:
		op.Outcome, op.Err = history.Unknown, err.Error()
		st.Result = "error: " + err.Error()
	case c.Kind == history.Get:
		op.Outcome, op.Out, op.Found = history.OK, res.value, res.found
		st.Result = showValue(res.found, res.value)
	default:
		op.Outcome = history.OK
		st.Result = "ok"
	}
	r.trace = append(r.trace, st)
	now := time.Now()
	for _, b := range r.actors {
		if b.state == elsewhere {
			b.state, b.deadline = running, now.Add(r.quiet)
		}
	}
}

// drive runs the actors to the end, releasing one point at a time in the
// order ch picks.
func (r *run) drive(ctx context.Context, ch chooser) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	start := time.Now().Add(stuckAfter) // every actor reaches its first point, however slow the start
	for _, a := range r.actors {
		a.deadline = start
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.play(ctx, a)
		}()
	}
	for {
		if err := r.settle(ctx); err != nil {
			return err
		}
		if r.snapshot != nil {
			r.annotate(ctx)
		}
		r.mu.Lock()
		enabled, done := r.enabledLocked()
		r.mu.Unlock()
		if done {
			return nil
		}
		if len(enabled) == 0 {
			select {
			case <-r.changed:
				continue
			case <-time.After(stuckAfter):
				return fmt.Errorf("schedule: stuck: no actor reached a hook point for %v", stuckAfter)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		r.mu.Lock()
		if free, ok := r.freeLocked(enabled); ok {
			r.releaseLocked(r.actors[free])
			r.mu.Unlock()
			continue
		}
		pick := enabled[0]
		switch {
		case len(enabled) == 1:
		case r.released < r.budget:
			pick = ch.choose(enabled)
			r.choices = append(r.choices, pick)
			r.decisions = append(r.decisions, enabled)
		default:
			pick = roundRobin(enabled, r.last)
		}
		r.releaseLocked(r.actors[pick])
		r.mu.Unlock()
	}
}

// roundRobin picks the first enabled actor after last, cyclically.
func roundRobin(enabled []int, last int) int {
	for _, i := range enabled {
		if i > last {
			return i
		}
	}
	return enabled[0]
}

// freeLocked returns an enabled actor whose point needs no decision.
func (r *run) freeLocked(enabled []int) (int, bool) {
	if !r.reduce {
		return 0, false
	}
	for _, i := range enabled {
		if !r.actors[i].at.decides() {
			return i, true
		}
	}
	return 0, false
}

// decides reports whether releasing the point is a decision under reduce:
// only the start of a step is.
func (s Step) decides() bool {
	return s.Kind == StepHook && s.Hook.Phase == memstore.Before
}

// enabledLocked returns the actors the scheduler may release, and whether
// every actor has finished.
func (r *run) enabledLocked() (enabled []int, done bool) {
	done = true
	for _, a := range r.actors {
		if a.state != finished {
			done = false
		}
		if a.state != parked {
			continue
		}
		ready := true
		if a.at.Kind == StepCall {
			for _, d := range a.deps {
				ready = ready && d.state == finished
			}
		}
		if ready {
			enabled = append(enabled, a.idx)
		}
	}
	return enabled, done
}

func (r *run) releaseLocked(a *actor) {
	st := a.at
	if st.Kind == StepCall {
		a.op = len(r.ops)
		r.ops = append(r.ops, history.Op{ID: len(r.ops), Client: a.idx, Key: r.key, Kind: st.Call.Kind, Value: st.Call.Value})
		if r.reduce {
			a.pendingCall = &st
		} else {
			r.startLocked(a, st)
		}
	} else {
		if a.pendingCall != nil {
			r.startLocked(a, *a.pendingCall)
		}
		r.trace = append(r.trace, st)
	}
	r.released++
	if !r.reduce || st.decides() {
		a.points++
	}
	r.last = a.idx
	// Released before a step, the actor runs that step's one Redis script
	// or DB statement, which never waits for another actor: it is slow at
	// worst, not blocked, so it gets far longer than Quiet to come back.
	// Released anywhere else it runs the store's own code, which may wait
	// in-process for another actor (a flight), and gets Quiet.
	wait := r.quiet
	if st.Kind == StepHook && st.Hook.Phase == memstore.Before {
		wait = max(stepQuiet, 20*r.quiet)
	}
	a.state, a.deadline = running, time.Now().Add(wait)
	close(a.release)
}

// startLocked puts the start of a's current call on the trace and in its
// history op.
func (r *run) startLocked(a *actor, st Step) {
	a.pendingCall = nil
	r.clock++
	r.ops[a.op].Call = r.clock
	r.trace = append(r.trace, st)
}

// settle waits until no actor is running: each has reached a point,
// finished, or spent Quiet without reaching one (it is then blocked outside
// the hooks, and may come back at any time: the one source of
// non-determinism).
func (r *run) settle(ctx context.Context) error {
	for {
		r.mu.Lock()
		now := time.Now()
		var next time.Time
		for _, a := range r.actors {
			if a.state != running {
				continue
			}
			if !now.Before(a.deadline) {
				a.state = elsewhere
				r.quietHits++
				r.trace = append(r.trace, Step{Actor: a.spec.Name, Kind: StepBlocked})
				continue
			}
			if next.IsZero() || a.deadline.Before(next) {
				next = a.deadline
			}
		}
		r.mu.Unlock()
		if next.IsZero() {
			return nil
		}
		t := time.NewTimer(time.Until(next))
		select {
		case <-r.changed:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		t.Stop()
	}
}

// annotate records the state of both tiers on the last step, if it changed.
func (r *run) annotate(ctx context.Context) {
	s := r.snapshot(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	prev := r.initial
	for i := len(r.trace) - 1; i >= 0; i-- {
		if r.trace[i].State != "" {
			prev = r.trace[i].State
			break
		}
	}
	if s != prev && len(r.trace) > 0 {
		r.trace[len(r.trace)-1].State = s
	}
}
