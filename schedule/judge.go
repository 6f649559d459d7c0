package schedule

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/memstore/memstore"
	"github.com/memstore/memstore/check"
	"github.com/memstore/memstore/history"
	"github.com/memstore/memstore/strategies"
)

// observer is the judge's name for its own reads.
const observer = "observer"

// judge decides whether a finished schedule kept the contract. It reads the
// key as a client that starts after every actor returned: from a fresh
// instance, then again after evicting the key (so the second read comes from
// the DB). Then:
//
//   - the calls and the observer's reads must be linearizable (a register
//     that starts at the scenario's initial value): package check decides,
//     an exhaustive search over the few calls confirms, and cheap rules
//     explain in the actors' names;
//   - the cache, as the actors left it, must hold nothing or the DB's value
//     (a stale entry is served to every reader until its TTL ends);
//   - no call may fail: nothing is faulted here.
//
// It returns "" when the schedule passes, else what broke.
func judge(ctx context.Context, r *run, obs strategies.Store) (string, error) {
	var problems []string
	for _, op := range r.ops {
		if op.Outcome != history.OK {
			problems = append(problems, fmt.Sprintf("%s failed: %s", r.describeOp(op), op.Err))
		}
	}
	snap, err := obs.Inspect(ctx, r.key)
	if err != nil {
		return "", err
	}
	var stale string
	if snap.Cached && (snap.CacheFound != snap.DBFound || snap.CacheFound && snap.CacheValue != snap.DBValue) {
		stale = fmt.Sprintf("stale cache entry: after every call returned, the cache holds %s and the DB %s",
			showValue(snap.CacheFound, snap.CacheValue), showValue(snap.DBFound, snap.DBValue))
	}
	if err := r.observe(ctx, obs, false); err != nil {
		return "", err
	}
	if err := obs.Evict(ctx, r.key); err != nil {
		return "", err
	}
	r.addStep(ctx, obs, Step{Actor: observer, Kind: StepEvict})
	if err := r.observe(ctx, obs, true); err != nil {
		return "", err
	}
	problems = append(problems, r.linearizability()...)
	if stale != "" {
		problems = append(problems, stale)
	}
	return strings.Join(problems, "; "), nil
}

// observe records one read of the observer, after everything else.
func (r *run) observe(ctx context.Context, obs strategies.Store, evicted bool) error {
	r.clock++
	op := history.Op{ID: len(r.ops), Client: len(r.actors), Key: r.key, Kind: history.Get, Call: r.clock, Outcome: history.OK}
	r.addStep(ctx, nil, Step{Actor: observer, Kind: StepCall, Call: Get()})
	v, err := obs.Get(ctx, r.key)
	switch {
	case errors.Is(err, memstore.ErrNotFound):
	case err != nil:
		return fmt.Errorf("observer Get: %w", err)
	default:
		op.Out, op.Found = v, true
	}
	r.clock++
	op.Return = r.clock
	if evicted {
		r.evictedRead = op.ID
	}
	r.ops = append(r.ops, op)
	r.addStep(ctx, obs, Step{Actor: observer, Kind: StepReturn, Call: Get(), Result: showValue(op.Found, op.Out)})
	return nil
}

// addStep appends a judge's step, with the state of both tiers when the
// schedule is annotated and obs is given.
func (r *run) addStep(ctx context.Context, obs strategies.Store, st Step) {
	r.trace = append(r.trace, st)
	if r.snapshot != nil && obs != nil {
		r.annotate(ctx)
	}
}

func (r *run) name(client int) string {
	if client < len(r.actors) {
		return r.actors[client].spec.Name
	}
	return observer
}

func (r *run) describeOp(op history.Op) string {
	c := Call{Kind: op.Kind, Value: op.Value}
	switch {
	case op.Client == len(r.actors) && op.ID == r.evictedRead:
		return "the observer's Get after the eviction"
	case op.Client == len(r.actors):
		return "the observer's Get"
	}
	return r.name(op.Client) + "'s " + c.String()
}

// state is a register's state: absent, or a value.
type state struct {
	found bool
	v     string
}

func (s state) String() string { return showValue(s.found, s.v) }

func written(op *history.Op) state {
	if op.Kind == history.Delete {
		return state{}
	}
	return state{found: true, v: op.Value}
}

func read(op *history.Op) state { return state{found: op.Found, v: op.Out} }

// linearizability returns what is wrong with the schedule's history, or
// nothing when some order of the calls, consistent with real time, explains
// every read. Package check decides; an exhaustive search over the few calls
// gives a second opinion, and a disagreement is reported as a failure of its
// own. The explanation names the actors.
func (r *run) linearizability() []string {
	init := state{found: r.initialValue != "", v: r.initialValue}
	var ops []*history.Op
	for i := range r.ops {
		op := &r.ops[i]
		if op.Kind.IsRead() && op.Outcome != history.OK {
			continue // a failed read says nothing
		}
		ops = append(ops, op)
	}
	searchOK := linearizable(ops, init)

	h := r.history()
	if err := h.Validate(); err != nil {
		return []string{"schedule: the recorded history is invalid: " + err.Error()}
	}
	opts := &check.Options{Workers: 1}
	lin := check.Linearizability(h, opts)
	anomalies, _ := check.Explain(h, opts)
	checkOK := lin.Verdict == check.Ok && len(anomalies) == 0
	switch {
	case lin.Verdict == check.Unknown && len(anomalies) == 0:
		return []string{fmt.Sprintf("linearizability inconclusive (%s): %s", lin.Keys[0].Cause, lin.Keys[0].Reason)}
	case checkOK != searchOK:
		return []string{fmt.Sprintf("the checkers disagree: package check says %s (%d anomalies), the exhaustive search says linearizable=%v",
			lin.Verdict, len(anomalies), searchOK)}
	case checkOK:
		return nil
	}
	if why := r.explain(ops, init); len(why) > 0 {
		return why
	}
	var why []string
	for _, a := range anomalies {
		why = append(why, string(a.Kind)+": "+a.Explanation)
	}
	if len(why) == 0 {
		why = append(why, "not linearizable: "+lin.Keys[0].Reason)
	}
	return why
}

// history returns the schedule's calls and the observer's reads as a
// history for package check, with the initial value as a Set that returned
// before anything else began (clock 0).
func (r *run) history() *history.History {
	h := &history.History{Header: history.Header{Version: history.FormatVersion}}
	if r.initialValue != "" {
		h.Ops = append(h.Ops, history.Op{Client: len(r.actors) + 1, Key: r.key, Kind: history.Set, Value: r.initialValue, Outcome: history.OK})
	}
	for _, op := range r.ops {
		op.ID = len(h.Ops)
		h.Ops = append(h.Ops, op)
	}
	return h
}

// explain names the reads no order can explain, by rules that only fire on
// histories that are not linearizable.
func (r *run) explain(ops []*history.Op, init state) []string {
	var out []string
	for _, rd := range ops {
		if !rd.Kind.IsRead() {
			continue
		}
		s := read(rd)
		// Where could s come from? The initial state, or a write of s that
		// began before the read returned.
		var srcs []*history.Op
		fromInit := s == init
		for _, w := range ops {
			if w.Kind.IsWrite() && written(w) == s && w.Call < rd.Return {
				srcs = append(srcs, w)
			}
		}
		if !fromInit && len(srcs) == 0 {
			if s.found && !r.isWritten(s.v) {
				out = append(out, fmt.Sprintf("%s returned %s, which nothing wrote", r.describeOp(*rd), s))
			} else {
				out = append(out, fmt.Sprintf("%s returned %s before any write of it began", r.describeOp(*rd), s))
			}
			continue
		}
		// Stale: every source was certainly overwritten before the read
		// began, by a write that returned before the read and began after
		// the source returned.
		var by *history.Op
		stale := true
		if fromInit {
			by = overwrote(ops, nil, rd, s)
			stale = by != nil
		}
		for _, src := range srcs {
			if !stale {
				break
			}
			by = overwrote(ops, src, rd, s)
			stale = by != nil
		}
		if stale && by != nil {
			out = append(out, fmt.Sprintf("stale read: %s returned %s, but %s had returned before that read began",
				r.describeOp(*rd), s, r.describeOp(*by)))
		}
	}
	if len(out) > 0 {
		return out
	}
	// Two reads, one after the other, that saw different states with no
	// write of the second state that could fall between them.
	for _, r1 := range ops {
		for _, r2 := range ops {
			if !r1.Kind.IsRead() || !r2.Kind.IsRead() || r1.Return >= r2.Call || read(r1) == read(r2) {
				continue
			}
			between := false
			for _, w := range ops {
				if w.Kind.IsWrite() && written(w) == read(r2) && ret(w) >= r1.Call && w.Call <= r2.Return {
					between = true
				}
			}
			if !between {
				out = append(out, fmt.Sprintf("%s returned %s, then %s returned %s, and no write of %s could have happened in between",
					r.describeOp(*r1), read(r1), r.describeOp(*r2), read(r2), read(r2)))
			}
		}
	}
	return out
}

// overwrote returns a write, of another state than s, that began after src
// returned (src nil: the initial state) and returned before rd began.
func overwrote(ops []*history.Op, src, rd *history.Op, s state) *history.Op {
	for _, w := range ops {
		if w.Kind.IsWrite() && w.Outcome == history.OK && written(w) != s && w.Return < rd.Call && (src == nil || ret(src) < w.Call) {
			return w
		}
	}
	return nil
}

func (r *run) isWritten(v string) bool {
	for _, op := range r.ops {
		if op.Kind == history.Set && op.Value == v {
			return true
		}
	}
	return v == r.initialValue
}

// ret is when an op certainly took effect: an unknown write may take effect
// at any time after its call.
func ret(op *history.Op) int64 {
	if op.Outcome != history.OK {
		return math.MaxInt64
	}
	return op.Return
}

// linearizable searches every order of ops that respects real time (an op
// may go next only if no op left returned before it was called) for one in
// which every read sees the register's state. Writes whose outcome is not OK
// may also never take effect. The histories here have a handful of calls,
// so the search, memoized on (ops placed, state), is instant.
func linearizable(ops []*history.Op, init state) bool {
	if len(ops) > 24 {
		panic("schedule: history too long for the exhaustive check")
	}
	type memoKey struct {
		placed uint32
		s      state
	}
	var required uint32
	for i, op := range ops {
		if op.Outcome == history.OK {
			required |= 1 << i
		}
	}
	dead := make(map[memoKey]bool)
	var search func(placed uint32, s state) bool
	search = func(placed uint32, s state) bool {
		if placed&required == required {
			return true
		}
		k := memoKey{placed, s}
		if dead[k] {
			return false
		}
		for i, op := range ops {
			if placed&(1<<i) != 0 {
				continue
			}
			minimal := true
			for j, o := range ops {
				if j != i && placed&(1<<j) == 0 && ret(o) < op.Call {
					minimal = false
					break
				}
			}
			if !minimal {
				continue
			}
			switch {
			case op.Kind.IsRead():
				if read(op) == s && search(placed|1<<i, s) {
					return true
				}
			default:
				if search(placed|1<<i, written(op)) {
					return true
				}
			}
		}
		dead[k] = true
		return false
	}
	return search(0, init)
}
