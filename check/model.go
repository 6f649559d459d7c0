package check

import (
	"math"

	"github.com/memstore/memstore/history"
)

// never is the return time of an operation that never has to take effect: an
// unknown write may be applied at any time after its call, or not at all.
const never = math.MaxInt64

// mkind is an operation of the register model.
type mkind uint8

const (
	mRead       mkind = iota // legal iff state == val; state unchanged
	mWrite                   // state = val (a set, or a delete with val 0)
	mCAS                     // legal iff state == expect; state = val
	mConflict                // legal iff state != expect (expect present); state unchanged
	mPool                    // an unknown delete: may make the key absent once, at any time after its call, or never
	mPoolBottom              // an unknown set of a value nobody sees: may make the state bottom once, or never
)

// mop is one operation of one key in the form the search uses. States are
// interned: 0 is "absent", i > 0 is the i-th distinct value of the key.
type mop struct {
	id     int   // history op ID
	kind   mkind // see mkind
	val    int32 // read: the state seen; write, cas: the state written
	expect int32 // cas, conflict: the state compared with
	call   int64
	ret    int64 // never: the op floats and is not forced by any return
	writer int32 // read, cas: index of the write of val (read) or expect (cas) when present, -1 if none
}

// keyModel is one key's history prepared for the search.
type keyModel struct {
	ops    []mop
	values []string // values[i] is state i; values[0] is unused (absent)
	// bottom, when nonzero, is the one state that stands for every value
	// that nothing observes (see prepare); sets of such values can be
	// absorbed by the search instead of branched on.
	bottom int32
	// observers[s] counts the ops that must see state s (OK reads of it and
	// CAS ops that must apply expecting it).
	observers []int32
}

// prepare turns one key's ops (ordered by ID) into the register model's
// operations. It drops what carries no information and bounds unknown
// writes where that is exact:
//
//   - Failed writes are dropped: they certainly had no effect. So are failed
//     and unknown reads, and CAS conflicts against an absent row (a deleted
//     row keeps a version, so "absent" does not determine the version and
//     such a conflict allows every state).
//   - An unknown set or CAS whose value was observed (see observations)
//     certainly took effect, before the first observer returned: its return
//     is set to that time, which keeps exactly the same set of
//     linearizations (the value is unique, so the write precedes every
//     observer).
//   - An unknown set or CAS whose value nobody observed is dropped: any
//     linearization with it stays legal with it moved to the very end, where
//     it changes nothing, and conversely. The exception is a CAS conflict
//     that could come after it (the conflict might need the write to have
//     moved the state away); then the write is kept floating, with no return,
//     unless it is a CAS whose expected value no conflict compares with: such
//     a CAS could only move the state away from a value nobody compares.
//   - Values that no operation must see (no OK read returned them, no CAS
//     that must apply expected them, no CAS conflict compared with them) are
//     merged into one state, bottom: nothing can tell them apart. Floating
//     unknown sets of such values are interchangeable and join a second
//     pool.
//   - An unknown delete joins a pool: it may apply at any time after its
//     call, or never. Pooled deletes are interchangeable (they all make the
//     key absent), so the search only counts them.
func prepare(ops []*history.Op) keyModel {
	km := keyModel{values: []string{""}}
	intern := make(map[string]int32)
	state := func(v string, found bool) int32 {
		if !found {
			return 0
		}
		s, ok := intern[v]
		if !ok {
			s = int32(len(km.values))
			intern[v] = s
			km.values = append(km.values, v)
		}
		return s
	}
	firstObs := observations(ops)
	// The last return of a CAS conflict that constrains the state.
	lastConflict := int64(-1)
	for _, op := range ops {
		if op.Kind == history.CAS && op.Conflict && op.ExpectFound && op.Outcome == history.OK {
			lastConflict = max(lastConflict, op.Return)
		}
	}
	unknownWrite := func(op *history.Op) (ret int64, keep bool) {
		if t, ok := firstObs[op.Value]; ok {
			return max(t, op.Call), true
		}
		if lastConflict >= op.Call {
			return never, true
		}
		return 0, false
	}
	for _, op := range ops {
		m := mop{id: op.ID, call: op.Call, ret: op.Return, writer: -1}
		switch {
		case op.Kind.IsRead():
			if op.Outcome != history.OK {
				continue
			}
			m.kind, m.val = mRead, state(op.Out, op.Found)
		case op.Outcome == history.Failed:
			continue
		case op.Kind == history.Delete && op.Outcome == history.Unknown:
			m.kind, m.ret = mPool, never
		case op.Kind == history.Delete:
			m.kind = mWrite
		case op.Kind == history.CAS && op.Conflict && op.Outcome == history.OK:
			if !op.ExpectFound {
				continue
			}
			m.kind, m.expect = mConflict, state(op.Expect, true)
		default: // set or cas, OK or unknown
			if op.Outcome == history.Unknown {
				ret, keep := unknownWrite(op)
				if !keep {
					continue
				}
				m.ret = ret
			}
			m.kind, m.val = mWrite, state(op.Value, true)
			if op.Kind == history.CAS {
				m.kind, m.expect = mCAS, state(op.Expect, op.ExpectFound)
			}
		}
		km.ops = append(km.ops, m)
	}
	km.observers = make([]int32, len(km.values))
	compared := make([]bool, len(km.values)) // expected by a CAS conflict
	for _, m := range km.ops {
		switch {
		case m.kind == mRead && m.val != 0:
			km.observers[m.val]++
		case m.kind == mCAS && m.expect != 0 && m.ret != never:
			km.observers[m.expect]++
		case m.kind == mConflict:
			compared[m.expect] = true
		}
	}
	// A floating unknown CAS can only ever move the state away from the
	// value it expects; that helps only a conflict comparing with that
	// value. Without one, "never applies" is always as good: drop it.
	kept := km.ops[:0]
	for _, m := range km.ops {
		if m.kind == mCAS && m.ret == never && !compared[m.expect] {
			continue
		}
		kept = append(kept, m)
	}
	km.ops = kept
	merge := func(v int32) int32 {
		if v == 0 || km.observers[v] > 0 || compared[v] {
			return v
		}
		if km.bottom == 0 {
			km.bottom = int32(len(km.values))
			km.values = append(km.values, "")
			km.observers = append(km.observers, 0)
		}
		return km.bottom
	}
	for i := range km.ops {
		m := &km.ops[i]
		switch m.kind {
		case mWrite:
			m.val = merge(m.val)
			if m.ret == never && m.val == km.bottom {
				m.kind = mPoolBottom
			}
		case mCAS:
			m.val, m.expect = merge(m.val), merge(m.expect)
		}
	}
	writerOf := make([]int32, len(km.values))
	for i := range writerOf {
		writerOf[i] = -1
	}
	for i, m := range km.ops {
		if (m.kind == mWrite || m.kind == mCAS) && m.val != 0 && m.val != km.bottom {
			writerOf[m.val] = int32(i)
		}
	}
	for i := range km.ops {
		m := &km.ops[i]
		switch {
		case m.kind == mRead && m.val != 0:
			m.writer = writerOf[m.val]
		case m.kind == mCAS && m.expect != 0:
			m.writer = writerOf[m.expect]
		}
	}
	return km
}

// observations returns, for each value that certainly was the register's
// state at some point, the earliest time by which it was: the return of an
// OK read of it, or of an OK CAS that expected it. An unknown CAS whose own
// value was observed took effect, so the value it expected was observed too,
// by the time the unknown CAS took effect; this is followed to a fixed point.
func observations(ops []*history.Op) map[string]int64 {
	first := make(map[string]int64)
	observe := func(v string, t int64) bool {
		if old, ok := first[v]; ok && old <= t {
			return false
		}
		first[v] = t
		return true
	}
	var unknownCAS []*history.Op
	for _, op := range ops {
		switch {
		case op.Outcome == history.Unknown && op.Kind == history.CAS && op.ExpectFound:
			unknownCAS = append(unknownCAS, op)
		case op.Outcome != history.OK:
		case op.Kind.IsRead() && op.Found:
			observe(op.Out, op.Return)
		case op.Kind == history.CAS && !op.Conflict && op.ExpectFound:
			observe(op.Expect, op.Return)
		}
	}
	for changed := true; changed; {
		changed = false
		for _, op := range unknownCAS {
			if t, ok := first[op.Value]; ok && observe(op.Expect, max(t, op.Call)) {
				changed = true
			}
		}
	}
	return first
}
