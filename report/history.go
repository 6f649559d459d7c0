package report

import (
	"slices"
	"time"

	"github.com/memstore/memstore/check"
	"github.com/memstore/memstore/history"
	"github.com/memstore/memstore/strategies"
	"github.com/memstore/memstore/verify"
)

// FromHistory makes a Result of a history recorded elsewhere and the
// checker's report on it, so that it reads like a run's: the operations
// counted, latency per kind and per 100ms bucket, and the fault windows.
// The expectation is that of the store the header names when it is one
// of the bundled stores (a known-bad one is expected to be caught), else
// to pass.
func FromHistory(h *history.History, rep *check.Report) *verify.Result {
	r := &verify.Result{
		Store:      h.Header.Store,
		ExpectPass: expectPass(h.Header.Store),
		Seed:       h.Header.Seed,
		History:    h,
		Report:     rep,
		Ops:        len(h.Ops),
		Faults:     []history.Event{},
		Stampede:   rep.Stampede,
	}
	if r.Store == "" {
		r.Store = "history"
	}
	for _, ev := range h.Events {
		if ev.Kind == history.Fault {
			r.Faults = append(r.Faults, ev)
		}
	}
	r.Latency, r.Series = series(h)
	return r
}

func expectPass(store string) bool {
	if store == strategies.DBOnly().Name {
		return true
	}
	f, err := strategies.Lookup(store)
	return err != nil || f.ExpectPass
}

// series summarizes the latency of the history's operations (final reads
// left out) per kind and per verify.BucketWidth slice of the run, by
// return time, as the engine does for its own runs.
func series(h *history.History) (map[history.Kind]verify.Latency, []verify.Bucket) {
	byKind := make(map[history.Kind][]time.Duration)
	var last int64
	n := 0
	for _, op := range h.Ops {
		if op.Final {
			continue
		}
		byKind[op.Kind] = append(byKind[op.Kind], time.Duration(op.Return-op.Call))
		last = max(last, op.Return)
		n++
	}
	lat := make(map[history.Kind]verify.Latency, len(byKind))
	for k, ds := range byKind {
		slices.Sort(ds)
		lat[k] = verify.Latency{Count: len(ds), P50: percentile(ds, 50), P99: percentile(ds, 99), Max: ds[len(ds)-1]}
	}
	if n == 0 {
		return lat, []verify.Bucket{}
	}
	width := int64(verify.BucketWidth)
	buckets := make([]verify.Bucket, last/width+1)
	per := make([][]time.Duration, len(buckets))
	for _, op := range h.Ops {
		if op.Final {
			continue
		}
		b := op.Return / width
		buckets[b].Ops++
		if op.Outcome != history.OK {
			buckets[b].Errors++
		}
		per[b] = append(per[b], time.Duration(op.Return-op.Call))
	}
	for i := range buckets {
		buckets[i].Start = time.Duration(int64(i) * width)
		if ds := per[i]; len(ds) > 0 {
			slices.Sort(ds)
			buckets[i].P50, buckets[i].P99 = percentile(ds, 50), percentile(ds, 99)
		}
	}
	return lat, buckets
}
