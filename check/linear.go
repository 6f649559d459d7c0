package check

import (
	"cmp"
	"fmt"
	"math/bits"
	"slices"
	"time"
)

// The search decides whether one key's history is linearizable for a
// register (states: absent, or a value) with set, delete, get, cas.
//
// It is the "just in time" linearization search (Lowe, "Testing for
// linearizability", 2017), run as a sweep over call and return events. At
// every moment it holds the set of configurations the history so far can be
// in: the register's state and the set of operations that have been called
// but not yet linearized. A call adds the operation to every configuration's
// pending set. A return forces the operation: each configuration that has not
// yet linearized it is replaced by every configuration reachable by
// linearizing pending operations, in some order, up to and including it.
// The history is linearizable iff the set never becomes empty. Unlike a
// depth-first search over whole linearizations (porcupine's), the state kept
// is only the current configuration set, so it is bounded by counting it.
//
// Reductions keep the set small. Each keeps the answer exact: it only drops
// configurations that another kept configuration can imitate, or that can
// never complete.
//
//   - Eager reads: a pending read (or CAS conflict) that is legal in the
//     current state is linearized at once. Reads do not change the state,
//     so linearizing one as early as possible never rules out anything.
//   - Dead reads: a configuration is dropped as soon as a pending read can no
//     longer be satisfied: the write of its value (values are unique) has
//     been linearized and the state has moved on.
//   - Needed values: the state may not move away from a value that an
//     operation not yet called must still see; that operation could never
//     be satisfied.
//   - Absorbed sets: a set whose value nobody must see (its state is
//     "bottom", see prepare) only matters by hiding the state before it. It
//     is never linearized on its own: once any set or delete is linearized
//     while it is pending, it is marked absorbable (it can be placed just
//     before that write, where it is invisible), and at its return an
//     absorbable set is dropped without changing the state. An unabsorbable
//     one is linearized at its return, leaving the state bottom. Sets of
//     bottom are linearized on their own only to serve a pending CAS
//     conflict (which bottom satisfies).
//   - Pools: unknown deletes, and unknown sets of bottom, are
//     interchangeable once called, so a configuration only counts how many
//     of each it may still apply; of two configurations that differ only
//     in those counts, the one with at least as many of both is kept.
//   - Floating writes: other unknown writes that nobody observed (kept only
//     because a CAS conflict might need the state moved) are applied only
//     while a conflict is pending; until then, waiting is as good.
//
// At a quiescent point (nothing pending) the set is exactly the set of
// states the register can be in, which is what carries one segment of the
// history into the next; no explicit splitting is needed.
//
// Memory is bounded by construction: the search stops with Unknown when the
// configurations it holds at once (the current set, the next one and the
// per-return visited set) would exceed limits.maxConfigs. Work is bounded by
// limits.maxSteps and by a deadline.

// cfgKey is a configuration without its pools: the register state, the
// pending operations and the absorbable sets among them, as bits of the
// slots the operations hold.
type cfgKey struct {
	pend  uint64
	abs   uint64 // subset of pend
	state int32
}

// pools counts the pooled unknown ops still available in a configuration:
// deletes, and sets of bottom.
type pools struct {
	del, bot int32
}

// covers reports whether a can do everything b can: more pooled ops never
// hurt, since unused ones never have to apply.
func (a pools) covers(b pools) bool { return a.del >= b.del && a.bot >= b.bot }

// frontier is the set of pools, none covering another, that reach one
// cfgKey. It almost always holds one.
type frontier struct {
	first pools
	rest  []pools
}

func (f *frontier) covers(p pools) bool {
	if f.first.covers(p) {
		return true
	}
	for _, q := range f.rest {
		if q.covers(p) {
			return true
		}
	}
	return false
}

func (f *frontier) each(fn func(p pools) bool) bool {
	if !fn(f.first) {
		return false
	}
	for _, q := range f.rest {
		if !fn(q) {
			return false
		}
	}
	return true
}

// cfgSet is a set of configurations; n counts them (keys times pools).
type cfgSet struct {
	m map[cfgKey]frontier
	n int
}

// each calls fn for every configuration, until fn returns false.
func (c *cfgSet) each(fn func(k cfgKey, p pools) bool) bool {
	for k, f := range c.m {
		if !f.each(func(p pools) bool { return fn(k, p) }) {
			return false
		}
	}
	return true
}

// limits bound one key's search.
type limits struct {
	maxConfigs  int
	maxSteps    int64
	maxPending  int // at most 64: pending sets are bit sets
	deadline    time.Time
	now         func() time.Time
	wantCutInfo bool // keep the states at the last quiescent point (for visualization)
	// noLookahead turns off the needed-values reduction, which finds a
	// violation earlier but at a less telling operation (the write that
	// would hide a value, rather than the read that misses it).
	noLookahead bool
}

// linResult is the outcome of one key's search.
type linResult struct {
	verdict Verdict
	cause   Cause
	reason  string
	// failed is the index (in keyModel.ops) of the operation that no
	// configuration could linearize, -1 unless Illegal; failTime is the time
	// of the event at which that was found.
	failed   int
	failTime int64
	// lookahead: the failure was found with the needed-values reduction
	// on, so the failed op may be a write that would hide a value a later
	// op must see.
	lookahead bool
	// cuts are the last quiescent points before the end (or the failure),
	// oldest first, with the states possible at each; only kept with
	// limits.wantCutInfo. The start (time -1, absent) is the first until
	// more than maxCuts points have passed.
	cuts     []cut
	maxPend  int
	segments int
	peak     int
	steps    int64
}

// cut is a quiescent point: no op pending (except ops that never return).
type cut struct {
	time   int64
	states []int32
}

// maxCuts is how many quiescent points a search remembers for pictures.
const maxCuts = 64

type event struct {
	t   int64
	ret bool
	i   int32
}

type search struct {
	ops      []mop
	bottom   int32
	lim      limits
	slotOp   [64]int32 // the op holding each slot, -1 if free
	opSlot   []int8    // the slot of each called, not yet done op
	called   []bool
	done     []bool // linearized in every configuration
	inUse    uint64 // slots held
	floating uint64 // slots held by ops that never return
	unseen   uint64 // slots held by sets of bottom (absorbable sets)
	conflict uint64 // slots held by CAS conflicts
	// futureConflicts counts the CAS conflicts not yet called;
	// futureCompared[v] those among them that compare with state v. While
	// none can come and none is pending, making the state bottom helps
	// nothing.
	futureConflicts int
	futureCompared  []int32
	// future[s] counts the ops not yet called that must see state s.
	future  []int32
	cfgs    *cfgSet
	next    *cfgSet
	visited *cfgSet
	res     linResult
}

func linearize(km *keyModel, lim limits) linResult {
	n := len(km.ops)
	s := &search{
		ops:            km.ops,
		bottom:         km.bottom,
		futureCompared: make([]int32, len(km.values)),
		lim:            lim,
		opSlot:         make([]int8, n),
		called:         make([]bool, n),
		done:           make([]bool, n),
		future:         append([]int32(nil), km.observers...),
		cfgs:           &cfgSet{m: map[cfgKey]frontier{{}: {}}, n: 1},
		next:           &cfgSet{m: make(map[cfgKey]frontier)},
		visited:        &cfgSet{m: make(map[cfgKey]frontier)},
		res:            linResult{verdict: Ok, failed: -1, cuts: []cut{{time: -1, states: []int32{0}}}, peak: 1},
	}
	for i := range s.slotOp {
		s.slotOp[i] = -1
	}
	for _, m := range km.ops {
		if m.kind == mConflict {
			s.futureConflicts++
			s.futureCompared[m.expect]++
		}
	}
	events := make([]event, 0, 2*n)
	for i, op := range km.ops {
		events = append(events, event{t: op.call, i: int32(i)})
		if op.ret != never {
			events = append(events, event{t: op.ret, ret: true, i: int32(i)})
		}
	}
	// Calls before returns at equal times: intervals are closed, so an op
	// that returns at t is concurrent with one called at t.
	slices.SortFunc(events, func(a, b event) int {
		if a.t != b.t {
			return cmp.Compare(a.t, b.t)
		}
		if a.ret != b.ret {
			if a.ret {
				return 1
			}
			return -1
		}
		return cmp.Compare(a.i, b.i)
	})
	for _, ev := range events {
		var ok bool
		if ev.ret {
			ok = s.onReturn(int(ev.i))
		} else {
			ok = s.onCall(int(ev.i))
		}
		if !ok {
			return s.res
		}
		if s.cfgs.n == 0 {
			s.res.verdict = Illegal
			s.res.lookahead = !s.lim.noLookahead
			s.res.failed = int(ev.i)
			s.res.failTime = ev.t
			return s.res
		}
		if ev.ret && s.inUse&^s.floating == 0 {
			s.res.segments++
			if s.lim.wantCutInfo {
				c := cut{time: ev.t}
				seen := make(map[int32]bool)
				for k := range s.cfgs.m {
					if !seen[k.state] {
						seen[k.state] = true
						c.states = append(c.states, k.state)
					}
				}
				slices.Sort(c.states)
				if len(s.res.cuts) == maxCuts {
					s.res.cuts = append(s.res.cuts[:0], s.res.cuts[1:]...)
				}
				s.res.cuts = append(s.res.cuts, c)
			}
		}
	}
	return s.res
}

func (s *search) stop(c Cause, reason string) bool {
	s.res.verdict, s.res.cause, s.res.reason = Unknown, c, reason
	return false
}

// tick counts one step of work and enforces the step and time bounds.
func (s *search) tick() bool {
	s.res.steps++
	if s.res.steps > s.lim.maxSteps {
		return s.stop(CauseSteps, fmt.Sprintf("the search took more than %d steps (MaxSteps)", s.lim.maxSteps))
	}
	if s.res.steps&1023 == 1 && !s.lim.deadline.IsZero() && s.lim.now().After(s.lim.deadline) {
		return s.stop(CauseTimeout, "the search ran out of time (Timeout)")
	}
	return true
}

// add puts configuration (k, p) into set unless set already holds one that
// covers it, dropping those it covers, and counts it against the memory
// bound.
func (s *search) add(set *cfgSet, k cfgKey, p pools) bool {
	f, ok := set.m[k]
	if ok {
		if f.covers(p) {
			return true
		}
		var keep []pools
		f.each(func(q pools) bool {
			if !p.covers(q) {
				keep = append(keep, q)
			}
			return true
		})
		set.n -= 1 + len(f.rest) - len(keep)
		f = frontier{first: p}
		if len(keep) > 0 {
			f.rest = keep
		}
	} else {
		f = frontier{first: p}
	}
	live := s.cfgs.n + s.next.n + s.visited.n + 1
	if live > s.lim.maxConfigs {
		return s.stop(CauseConfigs, fmt.Sprintf("the search needed more than %d configurations at once (MaxConfigs)", s.lim.maxConfigs))
	}
	s.res.peak = max(s.res.peak, live)
	set.m[k] = f
	set.n++
	return true
}

// fresh empties c, reusing its map unless it grew large (clearing a large
// map costs its capacity, on every event).
func fresh(c *cfgSet) {
	if len(c.m) > 1024 {
		c.m = make(map[cfgKey]frontier)
	} else {
		clear(c.m)
	}
	c.n = 0
}

// hopeless reports whether the pending read or CAS op can never become
// legal in configuration k: the value it needs was written by an op that k
// has already linearized, and the state has moved on. Values are unique, so
// the state cannot become that value again.
func (s *search) hopeless(k cfgKey, op *mop) bool {
	var need int32
	switch op.kind {
	case mRead:
		need = op.val
	case mCAS:
		need = op.expect
	default:
		return false
	}
	if need == 0 || k.state == need {
		return false
	}
	w := op.writer
	if w < 0 {
		return true // nothing writes that value
	}
	return s.called[w] && (s.done[w] || k.pend&(1<<uint(s.opSlot[w])) == 0)
}

// settle linearizes every pending read and CAS conflict that is legal in
// k's state, and reports false if k is dead (a pending op is hopeless).
func (s *search) settle(k *cfgKey) bool {
	for p := k.pend; p != 0; p &= p - 1 {
		slot := bits.TrailingZeros64(p)
		op := &s.ops[s.slotOp[slot]]
		switch op.kind {
		case mRead:
			if op.val == k.state {
				k.pend &^= 1 << slot
				continue
			}
		case mConflict:
			if op.expect != k.state {
				k.pend &^= 1 << slot
				continue
			}
		}
		if s.hopeless(*k, op) {
			if op.ret == never {
				// An op that may never apply is not forced: it just
				// will not apply in this configuration.
				k.pend &^= 1 << slot
				continue
			}
			return false
		}
	}
	return true
}

// write moves configuration k to state to by linearizing the op in slot
// (or, with slot -1, a pooled op). It reports false when that is not
// allowed: the current state is a value that an op not yet called must see.
func (s *search) write(k cfgKey, slot int, to int32, cas bool) (cfgKey, bool) {
	if k.state != 0 && s.future[k.state] > 0 && !s.lim.noLookahead {
		return k, false
	}
	if slot >= 0 {
		k.pend &^= 1 << slot
		k.abs &^= 1 << slot
	}
	if !cas {
		// Every pending set of bottom can now be placed just before this
		// write, where nobody sees it. (Not before a CAS: it would change
		// the state the CAS compares.)
		k.abs |= k.pend & s.unseen
	}
	k.state = to
	return k, true
}

func (s *search) onCall(i int) bool {
	if !s.tick() {
		return false
	}
	op := &s.ops[i]
	s.called[i] = true
	switch {
	case op.kind == mRead && op.val != 0:
		s.future[op.val]--
	case op.kind == mCAS && op.expect != 0 && op.ret != never:
		s.future[op.expect]--
	}
	if op.kind == mPool || op.kind == mPoolBottom {
		// One more pooled op everywhere: the frontiers stay frontiers.
		inc := func(p *pools) {
			if op.kind == mPool {
				p.del++
			} else {
				p.bot++
			}
		}
		for k, f := range s.cfgs.m {
			inc(&f.first)
			if len(f.rest) > 0 {
				f.rest = append([]pools(nil), f.rest...)
				for i := range f.rest {
					inc(&f.rest[i])
				}
			}
			s.cfgs.m[k] = f
		}
		return true
	}
	slot := bits.TrailingZeros64(^s.inUse)
	if slot >= s.lim.maxPending {
		return s.stop(CauseConcurrency, fmt.Sprintf("more than %d operations on the key were pending at once (MaxConcurrency)", s.lim.maxPending))
	}
	bit := uint64(1) << slot
	s.inUse |= bit
	if op.ret == never {
		s.floating |= bit
	}
	if op.kind == mWrite && op.val == s.bottom && s.bottom != 0 {
		s.unseen |= bit
	}
	if op.kind == mConflict {
		s.conflict |= bit
		s.futureConflicts--
		s.futureCompared[op.expect]--
	}
	s.slotOp[slot] = int32(i)
	s.opSlot[i] = int8(slot)
	s.res.maxPend = max(s.res.maxPend, bits.OnesCount64(s.inUse))

	fresh(s.next)
	ok := s.cfgs.each(func(k cfgKey, p pools) bool {
		if !s.tick() {
			return false
		}
		k.pend |= bit
		switch {
		case op.kind == mRead && op.val == k.state, op.kind == mConflict && op.expect != k.state:
			k.pend &^= bit
		case s.hopeless(k, op):
			if op.ret != never {
				return true
			}
			k.pend &^= bit
		}
		return s.add(s.next, k, p)
	})
	if !ok {
		return false
	}
	s.cfgs, s.next = s.next, s.cfgs
	return true
}

func (s *search) onReturn(i int) bool {
	slot := s.opSlot[i]
	bit := uint64(1) << uint(slot)
	fresh(s.next)
	ok := s.cfgs.each(func(k cfgKey, pool pools) bool {
		switch {
		case k.pend&bit == 0:
		case k.abs&bit != 0 && !s.conflictsAhead(k):
			// Absorbed: placed just before a write already
			// linearized. Unless a CAS conflict is pending or still
			// to come, this dominates every other choice: the other
			// pending ops can still be linearized later, and making
			// the state bottom helps no read.
			return s.absorb(k, pool, int(slot))
		default:
			if k.abs&bit != 0 && !s.absorb(k, pool, int(slot)) {
				return false
			}
			return s.dfs(k, pool, int(slot))
		}
		return s.add(s.next, k, pool)
	})
	if !ok {
		return false
	}
	s.done[i] = true
	s.inUse &^= bit
	s.unseen &^= bit
	s.conflict &^= bit
	s.slotOp[slot] = -1
	s.cfgs, s.next = s.next, s.cfgs
	fresh(s.visited)
	if s.floating != 0 {
		s.freeFloating()
	}
	return true
}

// dfs extends k by linearizing pending writes (and pooled ops) until the op
// in slot target is linearized, adding each such configuration to s.next.
func (s *search) dfs(k cfgKey, pool pools, target int) bool {
	bit := uint64(1) << target
	if !s.tick() {
		return false
	}
	// Pending conflicts all compare with the current state (else they
	// would have been linearized); only they can want the state bottom,
	// or any other state that nobody reads.
	conflicts := k.pend&s.conflict != 0
	wantBottom := conflicts && k.state != s.bottom
	for p := k.pend; p != 0; p &= p - 1 {
		slot := bits.TrailingZeros64(p)
		b := uint64(1) << slot
		op := &s.ops[s.slotOp[slot]]
		switch {
		case op.kind == mWrite && s.unseen&b != 0 && b != bit && !wantBottom:
			continue // absorbed by a later write, or linearized at its return
		case s.floating&b != 0 && !conflicts:
			// An unknown write that nobody saw only ever helps a CAS
			// conflict; until one is pending, applying it can wait.
			continue
		case op.kind == mWrite:
		case op.kind == mCAS && k.state == op.expect:
		default: // pending reads and conflicts are not legal in this state
			continue
		}
		n, ok := s.write(k, slot, op.val, op.kind == mCAS)
		if !ok {
			continue
		}
		if !s.step(n, pool, target) {
			return false
		}
	}
	// A pooled delete changes the state, or absorbs pending sets of bottom.
	if pool.del > 0 && (k.state != 0 || k.pend&s.unseen&^k.abs != 0) {
		if n, ok := s.write(k, -1, 0, false); ok && !s.step(n, pools{pool.del - 1, pool.bot}, target) {
			return false
		}
	}
	if pool.bot > 0 && wantBottom {
		if n, ok := s.write(k, -1, s.bottom, false); ok && !s.step(n, pools{pool.del, pool.bot - 1}, target) {
			return false
		}
	}
	return true
}

func (s *search) step(n cfgKey, pool pools, target int) bool {
	bit := uint64(1) << target
	if !s.settle(&n) {
		return true // dead end
	}
	if n.pend&bit == 0 {
		return s.add(s.next, n, pool)
	}
	if n.abs&bit != 0 {
		if !s.absorb(n, pool, target) {
			return false
		}
		if !s.conflictsAhead(n) {
			return true
		}
		// The set may also become visible after more writes, for a
		// conflict: keep searching.
	}
	if f, seen := s.visited.m[n]; seen && f.covers(pool) {
		return true
	}
	if !s.add(s.visited, n, pool) {
		return false
	}
	return s.dfs(n, pool, target)
}

// conflictsAhead reports whether a CAS conflict is pending in k or still to
// be called.
func (s *search) conflictsAhead(k cfgKey) bool {
	return k.pend&s.conflict != 0 || s.futureConflicts > 0
}

// absorb finishes the absorbable set of bottom in slot: it was placed just
// before a write already linearized, where nobody saw it. When a CAS
// conflict that compares with the current state is pending or still to
// come, linearizing the set now instead, visibly, is kept as well: bottom
// satisfies that conflict and the current state does not.
func (s *search) absorb(k cfgKey, pool pools, slot int) bool {
	if k.pend&s.conflict != 0 || s.futureCompared[k.state] > 0 {
		if n, ok := s.write(k, slot, s.bottom, false); ok && s.settle(&n) {
			if !s.add(s.next, n, pool) {
				return false
			}
		}
	}
	k.pend &^= 1 << slot
	k.abs &^= 1 << slot
	return s.add(s.next, k, pool)
}

// freeFloating releases the slots of never-returning ops that every
// configuration has linearized.
func (s *search) freeFloating() {
	var union uint64
	for k := range s.cfgs.m {
		union |= k.pend
	}
	for f := s.floating &^ union; f != 0; f &= f - 1 {
		slot := bits.TrailingZeros64(f)
		s.done[s.slotOp[slot]] = true
		s.slotOp[slot] = -1
		s.inUse &^= 1 << slot
		s.floating &^= 1 << slot
	}
}
