package verify

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/memstore/memstore/check"
	"github.com/memstore/memstore/history"
)

// The names of the checks that can fire, as Result.Fired reports them.
// Besides these, each explainer's check.AnomalyKind ("stale_read",
// "lost_write", ...) fires under its own name.
const (
	CheckLinearizability = "linearizability"
	CheckConvergence     = "convergence"
	CheckStampede        = "stampede"
)

// Result is what one run found.
type Result struct {
	Store string `json:"store"`
	// ExpectPass: the store is expected to pass (memstore, db-only); a
	// known-bad store is expected to be caught.
	ExpectPass bool   `json:"expect_pass"`
	Seed       int64  `json:"seed"`
	Namespace  string `json:"namespace"`

	// History is everything the clients did, with the fault windows and
	// phases as events. It is saved separately (history.Write).
	History *history.History `json:"-"`
	// Report is check.All's verdict on the history, with the convergence
	// snapshot. Stampede counts join it only when StampedeLimit is set.
	Report *check.Report `json:"report"`
	// Stampede counts DB loads per cold key in the stampede probe (nil when
	// the probe could not run). It is a failure only when StampedeLimit is
	// positive (Config.MaxColdLoads); otherwise it is reported only.
	Stampede      *check.StampedeResult `json:"stampede,omitempty"`
	StampedeLimit int                   `json:"stampede_limit,omitempty"`

	// Ops counts the operations of the history; Latency summarizes them per
	// kind (final reads left out); Series is the run cut into 100ms
	// buckets, for throughput and latency plots.
	Ops     int                      `json:"ops"`
	Latency map[history.Kind]Latency `json:"latency"`
	Series  []Bucket                 `json:"series"`
	// Faults are the fault windows of the run.
	Faults []history.Event `json:"faults"`
	// LeftOut names the configured faults the run could not produce, with
	// the reason (a shared Redis, a fault this build lacks).
	LeftOut map[string]string `json:"left_out,omitempty"`
	// Notes say what the run left out or met on the way (faults the
	// environment could not produce, cleanup errors).
	Notes []string `json:"notes"`
	// Hangs are the store calls that did not return in time (the
	// watchdog, CheckHang). A run with one does not pass.
	Hangs []Hang `json:"hangs,omitempty"`
	// Features are what an --exec adapter announced in its handshake.
	Features []string `json:"features,omitempty"`

	// Detected says whether a check fired; TimeToDetection is then the
	// earliest point of the run by which the history proved a violation
	// (the last return among the operations an anomaly names, the return
	// of an operation no order could explain, or the convergence
	// snapshot), counted from the start of the warm-up.
	Detected        bool          `json:"detected"`
	TimeToDetection time.Duration `json:"time_to_detection_ns,omitempty"`
	// Elapsed is the run's wall-clock time, checks included.
	Elapsed time.Duration `json:"elapsed_ns"`
	// Interrupted says that the run was cancelled before it finished: the
	// Report covers the history up to then, without convergence or
	// stampede. Such a run is never Passed.
	Interrupted bool `json:"interrupted,omitempty"`
}

// Latency summarizes the latency of one kind of operation.
type Latency struct {
	Count int           `json:"count"`
	P50   time.Duration `json:"p50_ns"`
	P99   time.Duration `json:"p99_ns"`
	Max   time.Duration `json:"max_ns"`
}

// Bucket is one 100ms slice of the run: the operations that returned in it.
type Bucket struct {
	Start  time.Duration `json:"start_ns"` // since the run's start
	Ops    int           `json:"ops"`
	Errors int           `json:"errors"` // outcome failed or unknown
	P50    time.Duration `json:"p50_ns"`
	P99    time.Duration `json:"p99_ns"`
}

// BucketWidth is the width of Result.Series buckets.
const BucketWidth = 100 * time.Millisecond

// Fired lists the checks that found a violation: CheckLinearizability,
// each anomaly kind found, CheckConvergence, and CheckStampede when the
// stampede bound is set.
func (r *Result) Fired() []string {
	var out []string
	rep := r.Report
	if rep.Linearizability.Verdict == check.Illegal {
		out = append(out, CheckLinearizability)
	}
	var kinds []string
	for k, n := range rep.Summary.Anomalies {
		if n > 0 {
			kinds = append(kinds, string(k))
		}
	}
	sort.Strings(kinds)
	out = append(out, kinds...)
	if rep.Convergence != nil && rep.Convergence.Verdict == check.Illegal {
		out = append(out, CheckConvergence)
	}
	if r.StampedeLimit > 0 && r.Stampede != nil && r.Stampede.Verdict == check.Illegal {
		out = append(out, CheckStampede)
	}
	if len(r.Hangs) > 0 {
		out = append(out, CheckHang)
	}
	return out
}

// FiredCheck reports whether the named check fired.
func (r *Result) FiredCheck(name string) bool { return slices.Contains(r.Fired(), name) }

// Caught reports whether any check fired: what a known-bad store must get.
func (r *Result) Caught() bool { return len(r.Fired()) > 0 }

// Passed reports whether the store kept every promise: linearizable (Ok:
// an Unknown verdict is inconclusive and not a pass), no anomaly, cache and
// DB converged, and the stampede bound kept when one is set. Problems says
// what is missing.
func (r *Result) Passed() bool { return len(r.Problems()) == 0 }

// OK reports whether the run met its expectation: a store expected to pass
// passed, a known-bad store was caught.
func (r *Result) OK() bool {
	if r.ExpectPass {
		return r.Passed()
	}
	return r.Caught()
}

// Problems lists, in words, why the run did not pass.
func (r *Result) Problems() []string {
	var out []string
	rep := r.Report
	if rep.Invalid != "" {
		out = append(out, "the history could not be checked: "+rep.Invalid)
	}
	lin := rep.Linearizability
	illegal, unknown := lin.Split()
	if len(illegal) > 0 {
		out = append(out, fmt.Sprintf("not linearizable: %d of %d keys illegal; key %q: %s", len(illegal), len(lin.Keys), illegal[0].Key, illegal[0].Reason))
	}
	if len(unknown) > 0 {
		out = append(out, fmt.Sprintf("linearizability inconclusive on %d of %d keys (key %q: %s %s); unknown is not a pass",
			len(unknown), len(lin.Keys), unknown[0].Key, unknown[0].Cause, unknown[0].Reason))
	}
	if n := len(rep.Anomalies); n > 0 {
		a := rep.Anomalies[0]
		out = append(out, fmt.Sprintf("%d anomalies (%s); first: %s", countAnomalies(rep), anomalyKinds(rep), a.Explanation))
	}
	if c := rep.Convergence; c != nil && c.Verdict != check.Ok {
		d := c.Divergent[0]
		out = append(out, fmt.Sprintf("not converged: %d keys; key %q: %s", len(c.Divergent), d.Key, d.Reason))
	}
	if s := r.Stampede; r.StampedeLimit > 0 && s != nil && s.Verdict == check.Illegal {
		out = append(out, fmt.Sprintf("stampede: key %q loaded %d times, limit %d", s.MaxKey, s.Max, r.StampedeLimit))
	}
	if r.Interrupted {
		out = append(out, "interrupted before the run finished: only the history so far was checked")
	}
	if n := len(r.Hangs); n > 0 {
		msg := r.Hangs[0].String()
		if n > 1 {
			msg = fmt.Sprintf("%d calls hung; first: %s", n, msg)
		}
		out = append(out, msg)
	}
	if rep.Summary.Outcomes[history.OK] == 0 {
		out = append(out, "no operation succeeded: nothing was checked")
	}
	return out
}

func countAnomalies(rep *check.Report) int {
	n := 0
	for _, c := range rep.Summary.Anomalies {
		n += c
	}
	return n
}

func anomalyKinds(rep *check.Report) string {
	var ks []string
	for k, n := range rep.Summary.Anomalies {
		if n > 0 {
			ks = append(ks, fmt.Sprintf("%s %d", k, n))
		}
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}

// Summary is one line on the run, for logs and the terminal.
func (r *Result) Summary() string {
	expect := "expected to be caught"
	if r.ExpectPass {
		expect = "expected to pass"
	}
	verdict := "passed"
	if fired := r.Fired(); len(fired) > 0 {
		verdict = "caught by " + strings.Join(fired, ", ")
		if r.Detected {
			verdict += fmt.Sprintf(" (first after %v)", r.TimeToDetection.Round(time.Millisecond))
		}
	} else if !r.Passed() {
		verdict = "not passed: " + r.Problems()[0]
	}
	ok := "OK"
	if !r.OK() {
		ok = "FAIL"
	}
	return fmt.Sprintf("%s %s (%s, seed %d): %s; %d ops, %d fault windows", ok, r.Store, expect, r.Seed, verdict, r.Ops, len(r.Faults))
}

func (e *engine) result(h *history.History, snaps []check.KeySnapshot, cold []string, loads map[string]int) *Result {
	opts := check.Options{}
	if e.cfg.Check != nil {
		opts = *e.cfg.Check
	}
	opts.Snapshot = snaps
	if e.cfg.MaxColdLoads > 0 && cold != nil {
		opts.ColdKeys, opts.Loads, opts.MaxColdLoads = cold, loads, e.cfg.MaxColdLoads
	} else {
		opts.ColdKeys, opts.Loads = nil, nil
	}
	rep := check.All(h, &opts)
	r := &Result{
		Store:         e.cfg.Store.Name,
		ExpectPass:    e.cfg.Store.ExpectPass,
		Seed:          e.cfg.Seed,
		Namespace:     e.env.namespace,
		History:       h,
		Report:        rep,
		StampedeLimit: e.cfg.MaxColdLoads,
		Ops:           len(h.Ops),
		Faults:        []history.Event{},
		Notes:         e.env.getNotes(),
		LeftOut:       e.leftOut,
		Hangs:         e.getHangs(),
		Features:      e.execFeatures(),
	}
	if rep.Stampede != nil {
		r.Stampede = rep.Stampede
	} else if cold != nil {
		s := check.Stampede(loads, cold)
		r.Stampede = &s
	}
	for _, ev := range h.Events {
		if ev.Kind == history.Fault {
			r.Faults = append(r.Faults, ev)
		}
	}
	r.Latency, r.Series = latencies(h)
	r.TimeToDetection, r.Detected = detection(h, rep, r.Hangs)
	r.Elapsed = time.Since(e.start)
	return r
}

// latencies summarizes operation latencies per kind and per bucket. Final
// reads are left out: they are the engine's, not the workload's.
func latencies(h *history.History) (map[history.Kind]Latency, []Bucket) {
	byKind := make(map[history.Kind][]time.Duration)
	var last int64
	for _, op := range h.Ops {
		if op.Final {
			continue
		}
		byKind[op.Kind] = append(byKind[op.Kind], time.Duration(op.Return-op.Call))
		last = max(last, op.Return)
	}
	lat := make(map[history.Kind]Latency, len(byKind))
	for k, ds := range byKind {
		slices.Sort(ds)
		lat[k] = Latency{Count: len(ds), P50: pct(ds, 50), P99: pct(ds, 99), Max: ds[len(ds)-1]}
	}
	n := int(last/int64(BucketWidth)) + 1
	if len(h.Ops) == 0 {
		n = 0
	}
	series := make([]Bucket, n)
	per := make([][]time.Duration, n)
	for _, op := range h.Ops {
		if op.Final {
			continue
		}
		b := int(op.Return / int64(BucketWidth))
		series[b].Ops++
		if op.Outcome != history.OK {
			series[b].Errors++
		}
		per[b] = append(per[b], time.Duration(op.Return-op.Call))
	}
	for i := range series {
		series[i].Start = time.Duration(i) * BucketWidth
		if ds := per[i]; len(ds) > 0 {
			slices.Sort(ds)
			series[i].P50, series[i].P99 = pct(ds, 50), pct(ds, 99)
		}
	}
	return lat, series
}

// pct is the nearest-rank percentile of sorted ds.
func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	i := (p*len(ds)+99)/100 - 1
	return ds[max(0, min(i, len(ds)-1))]
}

// detection finds the earliest time by which the history proved a
// violation.
func detection(h *history.History, rep *check.Report, hangs []Hang) (time.Duration, bool) {
	best := int64(-1)
	consider := func(t int64) {
		if best < 0 || t < best {
			best = t
		}
	}
	ret := func(id int) int64 {
		if id >= 0 && id < len(h.Ops) {
			return h.Ops[id].Return
		}
		return -1
	}
	for _, a := range rep.Anomalies {
		t := int64(-1)
		for _, id := range a.Ops {
			t = max(t, ret(id))
		}
		if t >= 0 {
			consider(t)
		}
	}
	for _, k := range rep.Linearizability.Keys {
		if k.Verdict == check.Illegal && k.FailedOp != nil {
			if t := ret(*k.FailedOp); t >= 0 {
				consider(t)
			}
		}
	}
	for _, hg := range hangs {
		consider(int64(hg.At + hg.Waited))
	}
	if c := rep.Convergence; c != nil && c.Verdict == check.Illegal {
		for _, ev := range h.Events {
			if ev.Kind == history.Phase && ev.Name == "convergence" {
				consider(ev.End)
			}
		}
	}
	if best < 0 {
		return 0, false
	}
	// Count from the first operation (the warm-up), not from the setup.
	origin := int64(0)
	for _, ev := range h.Events {
		if ev.Kind == history.Phase && ev.Name == "warm-up" {
			origin = ev.Start
			break
		}
	}
	return time.Duration(max(best-origin, 0)), true
}
