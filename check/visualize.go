package check

import (
	"fmt"
	"io"
	"sort"
	"strconv"

	"github.com/anishathalye/porcupine"

	"github.com/memstore/memstore/history"
)

// visualMaxOps is how many operations of a key Visualize draws at most when
// the key is not Illegal: porcupine's search is exponential in the worst
// case, and a timeline of thousands of operations helps nobody.
const visualMaxOps = 500

// Visualize writes porcupine's HTML timeline of one key: its operations, the
// linearization porcupine finds (or the longest partial ones, when there is
// none), and the history's events (fault windows, phases) as annotations.
//
// For an Illegal key it draws the segment that fails: from the last
// quiescent point before the failing operation (where the possible states of
// the register are known exactly, and shown as the initial state) to that
// operation. For other keys it draws the key from the start, up to the
// first quiescent point after a few hundred operations. The operations drawn
// are those the checker uses (failed writes, failed and unknown reads, and
// unknown writes nobody observed are left out); unknown writes that may
// still apply are drawn as never returning and may be left out of the
// linearization.
//
// The verdict is the checker's; the picture is porcupine's, run for at most
// opts.VisualizeTimeout. The picture can show an order for a segment that
// the checker rules out: when unknown writes from before the segment carry
// over into it, or when the checker failed at a write because a later read
// (outside the segment) needs the value that write would hide. The
// checker's verdict stands. opts may be nil.
func Visualize(w io.Writer, h *history.History, key string, opts *Options) error {
	o := opts.withDefaults()
	if err := h.Validate(); err != nil {
		return fmt.Errorf("check: invalid history: %w", err)
	}
	var ops []*history.Op
	for i := range h.Ops {
		if h.Ops[i].Key == key {
			ops = append(ops, &h.Ops[i])
		}
	}
	if len(ops) == 0 {
		return fmt.Errorf("check: no operations on key %q", key)
	}
	km := prepare(ops)
	lr := linearize(&km, o.limits(true))
	if lr.verdict == Illegal {
		lr = blame(&km, lr, o.limits(true))
	}

	var from, to int64 // the window: ops called in (from, to]
	init := []int32{0}
	var note string
	if lr.verdict == Illegal {
		to = lr.failTime
		if r := km.ops[lr.failed].ret; r != never {
			to = max(to, r)
		}
		// Start at the latest quiescent point that leaves some context
		// before the failure.
		c := lr.cuts[0]
		for i := len(lr.cuts) - 1; i >= 0; i-- {
			if calledIn(km.ops, lr.cuts[i].time, to) >= visualContext {
				c = lr.cuts[i]
				break
			}
		}
		from, init = c.time, c.states
		note = fmt.Sprintf("op %d cannot be linearized", km.ops[lr.failed].id)
	} else {
		from, to = -1, prefixCut(km.ops, visualMaxOps)
	}

	var win []mop
	end := int64(0)
	for _, m := range km.ops {
		carried := m.call <= from && (m.kind == mPool || m.ret == never)
		if carried || m.call > from && m.call <= to {
			win = append(win, m)
			end = max(end, m.call)
			if m.ret != never {
				end = max(end, m.ret)
			}
		}
	}
	byID := make(map[int]*history.Op, len(ops))
	for _, op := range ops {
		byID[op.ID] = op
	}
	clients := denseClients(win, byID)
	pops := make([]porcupine.Operation, len(win))
	for i, m := range win {
		ret, maybe := m.ret, false
		if ret == never {
			ret, maybe = end+1, true
		}
		call := m.call
		if call <= from {
			call = from + 1 // carried over: available from the window's start
		}
		op := byID[m.id]
		pops[i] = porcupine.Operation{
			ClientId: clients[clientOf(op)],
			Input:    pin{m: m, maybe: maybe},
			Call:     call,
			Return:   ret,
			Metadata: fmt.Sprintf("op %d, client %s, %s%s", op.ID, clientName(op), op.Outcome, errSuffix(op)),
		}
	}
	model := registerModel(km.values, init)
	_, info := porcupine.CheckOperationsVerbose(model, pops, o.VisualizeTimeout)

	var notes []porcupine.Annotation
	for _, ev := range h.Events {
		if ev.End < from || ev.Start > end+1 || ev.Kind == history.Step {
			continue // steps would bury the timeline
		}
		color := "#dde4ee"
		if ev.Kind == history.Fault {
			color = "#f6c6c0"
		}
		notes = append(notes, porcupine.Annotation{
			Tag:             string(ev.Kind),
			Start:           max(ev.Start, from+1),
			End:             min(ev.End, end+1),
			Description:     ev.Name,
			Details:         ev.Detail,
			BackgroundColor: color,
		})
	}
	if note != "" {
		notes = append(notes, porcupine.Annotation{
			Tag: "checker", Start: lr.failTime, End: lr.failTime,
			Description: note, BackgroundColor: "#f3a3a3",
		})
	}
	info.AddAnnotations(notes)
	return porcupine.Visualize(model, info, w)
}

// visualContext is how many operations Visualize tries to draw before the
// failure of an Illegal key.
const visualContext = 20

// calledIn counts the ops called in (from, to].
func calledIn(ops []mop, from, to int64) int {
	n := 0
	for _, m := range ops {
		if m.call > from && m.call <= to {
			n++
		}
	}
	return n
}

// prefixCut returns the time of the first quiescent point after limit ops
// (the end of the history if there is none), ignoring ops that never return.
func prefixCut(ops []mop, limit int) int64 {
	idx := make([]int, len(ops))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return ops[idx[a]].call < ops[idx[b]].call })
	busyUntil := int64(-1)
	for n, i := range idx {
		if n >= limit && ops[i].call > busyUntil {
			return busyUntil
		}
		if ops[i].ret != never {
			busyUntil = max(busyUntil, ops[i].ret)
		}
		busyUntil = max(busyUntil, ops[i].call)
	}
	return never - 1
}

func errSuffix(op *history.Op) string {
	if op.Err == "" {
		return ""
	}
	return ": " + op.Err
}

// denseClients numbers the clients of the window 0, 1, 2, ... (porcupine
// draws one row per client id).
func denseClients(win []mop, byID map[int]*history.Op) map[clientID]int {
	var ids []clientID
	seen := make(map[clientID]bool)
	for _, m := range win {
		c := clientOf(byID[m.id])
		if !seen[c] {
			seen[c] = true
			ids = append(ids, c)
		}
	}
	sort.Slice(ids, func(i, j int) bool {
		if ids[i][0] != ids[j][0] {
			return ids[i][0] < ids[j][0]
		}
		return ids[i][1] < ids[j][1]
	})
	m := make(map[clientID]int, len(ids))
	for i, c := range ids {
		m[c] = i
	}
	return m
}

// pin is a porcupine input: one register operation; maybe marks an unknown
// write that may also never apply.
type pin struct {
	m     mop
	maybe bool
}

// registerModel is the register as a porcupine model, starting in any of
// init. It has the same semantics as the search (model.go).
func registerModel(values []string, init []int32) porcupine.Model {
	state := func(s int32) string {
		if s == 0 {
			return "absent"
		}
		return strconv.Quote(values[s])
	}
	nm := porcupine.NondeterministicModel{
		Init: func() []interface{} {
			out := make([]interface{}, len(init))
			for i, s := range init {
				out[i] = s
			}
			return out
		},
		Step: func(st, input, _ interface{}) []interface{} {
			s, in := st.(int32), input.(pin)
			var next []interface{}
			switch in.m.kind {
			case mRead:
				if s == in.m.val {
					next = append(next, s)
				}
			case mConflict:
				if s != in.m.expect {
					next = append(next, s)
				}
			case mWrite:
				next = append(next, in.m.val)
			case mPool:
				next = append(next, int32(0))
			case mCAS:
				if s == in.m.expect {
					next = append(next, in.m.val)
				}
			}
			if in.maybe {
				next = append(next, s)
			}
			return next
		},
		DescribeOperation: func(input, _ interface{}) string {
			in := input.(pin)
			var d string
			switch in.m.kind {
			case mRead:
				d = "get → " + state(in.m.val)
			case mConflict:
				d = "cas conflict: ≠ " + state(in.m.expect)
			case mWrite:
				if in.m.val == 0 {
					d = "delete"
				} else {
					d = "set " + state(in.m.val)
				}
			case mPool:
				d = "delete"
			case mCAS:
				d = "cas " + state(in.m.expect) + " → " + state(in.m.val)
			}
			if in.maybe {
				d += " (unknown: may never apply)"
			}
			return d
		},
		DescribeState: func(st interface{}) string { return state(st.(int32)) },
		DescribeOperationMetadata: func(md interface{}) string {
			if md == nil {
				return ""
			}
			return md.(string)
		},
	}
	return nm.ToModel()
}
