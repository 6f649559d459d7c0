package check

import (
	"cmp"
	"slices"
	"sort"
	"time"

	"github.com/memstore/memstore/history"
)

// PolarisResult is a Polaris-style consistency figure: for each Δt, the share
// of acknowledged writes that every read saw once Δt had passed.
//
// The window of an OK write w is from w's return until the next write to the
// key begins. Reads that ran entirely inside the window, beginning more than
// Δt after w returned, must all return w's value for w to count as
// consistent within Δt. Writes whose window holds no read, or that overlap
// another write (so that either could be last), are left out: nothing says
// which value is right. Reads that found the key absent while an unknown
// delete could have applied are left out too, and so are unknown writes that
// no read ever saw.
//
// For a linearizable history every share is 1 and WorstStaleness is 0.
type PolarisResult struct {
	// Writes counts the OK writes with at least one read in their window.
	Writes int            `json:"writes"`
	Points []PolarisPoint `json:"points"`
	// WorstStaleness is the longest time between a write's return and the
	// start of a read in its window that still returned something else.
	WorstStaleness time.Duration `json:"worst_staleness_ns"`
	// WorstWrite and WorstRead are the ops of that longest staleness.
	WorstWrite *int `json:"worst_write,omitempty"`
	WorstRead  *int `json:"worst_read,omitempty"`
}

// PolarisPoint is the figure at one Δt.
type PolarisPoint struct {
	Delta time.Duration `json:"delta_ns"`
	// Consistent counts the writes whose reads all returned their value
	// once Delta had passed; Share is Consistent / Writes (1 when Writes is
	// 0: nothing contradicts).
	Consistent int     `json:"consistent"`
	Share      float64 `json:"share"`
}

// writeLag is what Polaris needs of one OK write: whether its window held a
// read, and how late after its return the latest wrong read began.
type writeLag struct {
	write     int
	observed  bool
	maxBadLag int64 // -1: no wrong read
	badRead   int
}

// Polaris computes the Polaris figure of h at each of deltas (nil: the
// DefaultPolarisDeltas). h must be valid (see history.History.Validate).
func Polaris(h *history.History, deltas []time.Duration) PolarisResult {
	if deltas == nil {
		deltas = DefaultPolarisDeltas
	}
	keys, byKey := keyOps(h)
	var lags []writeLag
	for _, k := range keys {
		lags = append(lags, polarisKey(byKey[k])...)
	}
	return polarisFrom(lags, deltas)
}

func polarisFrom(lags []writeLag, deltas []time.Duration) PolarisResult {
	r := PolarisResult{Points: make([]PolarisPoint, len(deltas))}
	worst := int64(-1)
	for _, l := range lags {
		if !l.observed {
			continue
		}
		r.Writes++
		if l.maxBadLag > worst {
			worst = l.maxBadLag
			w, rd := l.write, l.badRead
			r.WorstWrite, r.WorstRead = &w, &rd
		}
	}
	if worst > 0 {
		r.WorstStaleness = time.Duration(worst)
	}
	for i, d := range deltas {
		p := PolarisPoint{Delta: d, Share: 1}
		for _, l := range lags {
			if l.observed && l.maxBadLag <= int64(d) {
				p.Consistent++
			}
		}
		if r.Writes > 0 {
			p.Share = float64(p.Consistent) / float64(r.Writes)
		}
		r.Points[i] = p
	}
	return r
}

// polarisKey computes the writeLag of every OK write of one key.
func polarisKey(ops []*history.Op) []writeLag {
	firstObs := observations(ops)
	// The writes that may take effect, with the latest time they can
	// (an unknown write that a read saw took effect before that read
	// returned; one that nobody saw cannot have changed what a read saw).
	type write struct {
		op        *history.Op
		call, ret int64
	}
	var writes []write
	var reads []*history.Op
	var unknownDeleteCalls []int64
	for _, op := range ops {
		switch {
		case op.Kind.IsRead():
			if op.Outcome == history.OK {
				reads = append(reads, op)
			}
		case op.Outcome == history.Failed, op.Conflict && op.Outcome == history.OK:
		case op.Outcome == history.OK:
			writes = append(writes, write{op, op.Call, op.Return})
		case op.Kind == history.Delete:
			unknownDeleteCalls = append(unknownDeleteCalls, op.Call)
		default:
			if t, ok := firstObs[op.Value]; ok {
				writes = append(writes, write{op, op.Call, max(t, op.Call)})
			}
		}
	}
	slices.SortStableFunc(writes, func(a, b write) int { return cmp.Compare(a.call, b.call) })
	slices.SortStableFunc(reads, func(a, b *history.Op) int { return cmp.Compare(a.Call, b.Call) })
	slices.Sort(unknownDeleteCalls)

	var lags []writeLag
	prevMaxRet := int64(-1) // latest return of the writes before i
	for i, w := range writes {
		overlapped := prevMaxRet >= w.call
		prevMaxRet = max(prevMaxRet, w.ret)
		if w.op.Outcome != history.OK || overlapped {
			continue
		}
		end := int64(never)
		if i+1 < len(writes) {
			end = writes[i+1].call
		}
		if end <= w.ret {
			continue // overlaps the next write
		}
		l := writeLag{write: w.op.ID, maxBadLag: -1}
		j := sort.Search(len(reads), func(j int) bool { return reads[j].Call > w.ret })
		for ; j < len(reads) && reads[j].Call < end; j++ {
			r := reads[j]
			if r.Return >= end {
				continue
			}
			good := r.Found == (w.op.Kind != history.Delete) && (!r.Found || r.Out == w.op.Value)
			if !good && !r.Found && len(unknownDeleteCalls) > 0 && unknownDeleteCalls[0] <= r.Return {
				continue // an unknown delete may have applied
			}
			l.observed = true
			if lag := r.Call - w.ret; !good && lag > l.maxBadLag {
				l.maxBadLag, l.badRead = lag, r.ID
			}
		}
		lags = append(lags, l)
	}
	return lags
}
