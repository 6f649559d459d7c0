package history

import (
	"errors"
	"fmt"
	"sort"
	"time"
)

// Merge combines the histories that separate worker processes recorded during
// one run into one history.
//
// Each history's times count from its own Header.Start; Merge rebases them on
// the earliest Start. A process's Start pairs a wall-clock reading with its
// monotonic clock, so processes on one machine agree to within the time it
// takes to read both clocks, unless the wall clock was stepped between their
// starts. To keep that error from ordering two operations wrongly (which
// could make a linearizable history look illegal), every operation's interval
// is widened by slack on both sides when more than one history is merged:
// a wider interval only allows more orders, so the check stays sound. Use a
// slack larger than the clock error you expect (100µs is plenty on one
// machine with a stable clock).
//
// Ops are sorted by call time and renumbered; GetMany groups are renumbered
// so that they stay distinct. The header (store, seed, meta) is taken from
// the history with the earliest Start, with meta keys of the others added
// where absent.
func Merge(hs []*History, slack time.Duration) (*History, error) {
	if len(hs) == 0 {
		return nil, errors.New("history: merge of no histories")
	}
	if slack < 0 {
		return nil, fmt.Errorf("history: negative merge slack %v", slack)
	}
	first := 0
	for i, h := range hs {
		if h.Header.Start.Before(hs[first].Header.Start) {
			first = i
		}
	}
	base := hs[first].Header.Start.Round(0)
	out := &History{Header: hs[first].Header}
	out.Header.Version = FormatVersion
	out.Header.Start = base
	out.Header.Meta = nil
	for _, i := range append([]int{first}, indexesExcept(len(hs), first)...) {
		for k, v := range hs[i].Header.Meta {
			if out.Header.Meta == nil {
				out.Header.Meta = make(map[string]string)
			}
			if _, ok := out.Header.Meta[k]; !ok {
				out.Header.Meta[k] = v
			}
		}
	}
	widen := int64(0)
	if len(hs) > 1 {
		widen = int64(slack)
	}
	group := 0
	for _, h := range hs {
		off := int64(h.Header.Start.Round(0).Sub(base))
		groups := make(map[int]int)
		for _, op := range h.Ops {
			op.Call = max(op.Call+off-widen, 0)
			op.Return += off + widen
			if op.Group != 0 {
				g, ok := groups[op.Group]
				if !ok {
					group++
					g = group
					groups[op.Group] = g
				}
				op.Group = g
			}
			out.Ops = append(out.Ops, op)
		}
		for _, ev := range h.Events {
			ev.Start += off
			ev.End += off
			out.Events = append(out.Events, ev)
		}
	}
	sort.SliceStable(out.Ops, func(i, j int) bool {
		a, b := &out.Ops[i], &out.Ops[j]
		if a.Call != b.Call {
			return a.Call < b.Call
		}
		return a.Process < b.Process
	})
	for i := range out.Ops {
		out.Ops[i].ID = i
	}
	sort.SliceStable(out.Events, func(i, j int) bool { return out.Events[i].Start < out.Events[j].Start })
	if err := out.Validate(); err != nil {
		return nil, fmt.Errorf("history: merged history: %w", err)
	}
	return out, nil
}

func indexesExcept(n, skip int) []int {
	var idx []int
	for i := 0; i < n; i++ {
		if i != skip {
			idx = append(idx, i)
		}
	}
	return idx
}
