package report

import (
	"encoding/json"
	"io"
	"time"

	"github.com/memstore/memstore/check"
	"github.com/memstore/memstore/verify"
)

// Document is the JSON form of a Run: what `memstore check --json` prints
// and result.json holds. Its field names are stable.
type Document struct {
	// OK is true when every store met its expectation (the exit status is
	// then 0).
	OK bool `json:"ok"`
	// RequirePass says what OK asks: every store passed every check (true),
	// or every store met its expectation (false: known-bad stores must be
	// caught).
	RequirePass bool   `json:"require_pass"`
	Headline    string `json:"headline"`
	// Interrupted says that the run was stopped before every store
	// finished; OK is then false.
	Interrupted bool              `json:"interrupted,omitempty"`
	Command     string            `json:"command,omitempty"`
	Started     *time.Time        `json:"started,omitempty"`
	Elapsed     time.Duration     `json:"elapsed_ns,omitempty"`
	Settings    map[string]string `json:"settings,omitempty"`
	Notes       []string          `json:"notes,omitempty"`
	Stores      []StoreDoc        `json:"stores"`
}

// StoreDoc is one store's verdict and the figures of the table, with every
// violation named.
type StoreDoc struct {
	Name string `json:"name"`
	// Expected is "pass" or "fail" (a known-bad store, expected to be
	// caught); Verdict is PASS, FAIL, CAUGHT or MISSED; OK says whether
	// the verdict met the expectation.
	Expected string `json:"expected"`
	Verdict  string `json:"verdict"`
	OK       bool   `json:"ok"`
	Seed     int64  `json:"seed"`
	// Linearizable is "ok", "illegal" or "unknown" (inconclusive: not a
	// pass); IllegalKeys and UnknownKeys count the keys so judged.
	Linearizable string `json:"linearizable"`
	Keys         int    `json:"keys"`
	IllegalKeys  int    `json:"illegal_keys"`
	UnknownKeys  int    `json:"unknown_keys"`
	// Anomalies counts every anomaly the explainers found; AnomalyKinds
	// by kind (stale_read, lost_write, ...).
	Anomalies    int            `json:"anomalies"`
	AnomalyKinds map[string]int `json:"anomaly_kinds"`
	StaleReads   int            `json:"stale_reads"`
	LostWrites   int            `json:"lost_writes"`
	// Converged is null when convergence was not checked.
	Converged *bool `json:"converged"`
	Ops       int   `json:"ops"`
	// FailedInFaults counts the operations that failed or ended unknown
	// while a fault was injected (what faults are for); OtherErrors the
	// rest.
	FailedInFaults int `json:"failed_in_faults"`
	OtherErrors    int `json:"other_errors"`
	// Interrupted says that the store's run was stopped before it
	// finished: its checks cover the history up to then.
	Interrupted bool `json:"interrupted,omitempty"`
	// DBLoadsPerColdKey is the mean number of DB loads per cold key in the
	// stampede probe (null when the probe did not run); MaxDBLoads the most
	// for one key.
	DBLoadsPerColdKey *float64 `json:"db_loads_per_cold_key"`
	MaxDBLoads        int      `json:"max_db_loads_per_cold_key,omitempty"`
	// P50 and P99 are the latency of the workload's operations, of every
	// kind.
	P50 time.Duration `json:"p50_ns"`
	P99 time.Duration `json:"p99_ns"`
	// Fired names the checks that found a violation; Problems says in words
	// why the store did not pass (empty when it passed).
	Fired    []string `json:"fired"`
	Problems []string `json:"problems"`
	// Violations names each violation found: the check, the key, the
	// operations (IDs in the history) and an explanation.
	Violations []Violation `json:"violations"`
	// TimeToDetection is how far into the run the history first proved a
	// violation (0 when none did).
	TimeToDetection time.Duration `json:"time_to_detection_ns,omitempty"`
	// Faults counts the fault windows injected, by fault; NotReached
	// names the faults of the run the workload ended before; LeftOut the
	// faults that could not be produced here, with the reason.
	Faults     map[string]int    `json:"faults"`
	NotReached []string          `json:"faults_not_reached,omitempty"`
	LeftOut    map[string]string `json:"left_out_faults,omitempty"`
	Notes      []string          `json:"notes,omitempty"`
	// History is the file the run's history was saved to, for
	// `memstore check-history`.
	History string `json:"history,omitempty"`
	// Report is the checker's full report.
	Report *check.Report `json:"report"`
}

// Violation is one thing a check found.
type Violation struct {
	// Check is the check that found it: "linearizability", "convergence",
	// "stampede" or an anomaly kind ("stale_read", "lost_write", ...).
	Check       string `json:"check"`
	Key         string `json:"key,omitempty"`
	Ops         []int  `json:"ops,omitempty"`
	Explanation string `json:"explanation"`
	// Why says in words, for an illegal key, why no order explains the
	// operation: an explainer's finding, or what the history shows.
	Why string `json:"why,omitempty"`
}

// NewDocument builds the JSON document of run.
func NewDocument(run *Run) *Document {
	d := &Document{
		OK:          run.OK(),
		RequirePass: run.RequirePass,
		Headline:    run.Headline(),
		Interrupted: run.Interrupted,
		Command:     run.Command,
		Elapsed:     run.Elapsed,
		Notes:       run.Notes,
		Stores:      []StoreDoc{},
	}
	if !run.Started.IsZero() {
		t := run.Started
		d.Started = &t
	}
	if len(run.Settings) > 0 {
		d.Settings = make(map[string]string)
		for _, s := range run.Settings {
			d.Settings[s.Name] = s.Value
		}
	}
	for _, r := range run.Results {
		d.Stores = append(d.Stores, storeDoc(run, r))
	}
	return d
}

func storeDoc(run *Run, r *verify.Result) StoreDoc {
	rep := r.Report
	p50, p99 := LatencyOf(r)
	inFaults, other, _ := FaultFailures(r)
	s := StoreDoc{
		Name:            r.Store,
		Expected:        Expected(r),
		Verdict:         Verdict(r),
		OK:              r.OK(),
		Seed:            r.Seed,
		Linearizable:    string(rep.Linearizability.Verdict),
		Keys:            len(rep.Linearizability.Keys),
		Anomalies:       Anomalies(r),
		AnomalyKinds:    anomalyCounts(r),
		StaleReads:      rep.Summary.Anomalies[check.StaleRead],
		LostWrites:      rep.Summary.Anomalies[check.LostWrite],
		Converged:       Converged(r),
		Ops:             r.Ops,
		FailedInFaults:  inFaults,
		OtherErrors:     other,
		Interrupted:     r.Interrupted,
		P50:             p50,
		P99:             p99,
		Fired:           nonNil(r.Fired()),
		Problems:        nonNil(r.Problems()),
		Violations:      Violations(r),
		TimeToDetection: r.TimeToDetection,
		Faults:          FaultCounts(r),
		LeftOut:         r.LeftOut,
		Notes:           r.Notes,
		History:         run.Histories[r.Store],
		Report:          rep,
	}
	_, notReached, _ := faultLists(run, r, nil)
	for _, f := range notReached {
		s.NotReached = append(s.NotReached, f.Name)
	}
	if rep.Invalid != "" {
		s.Linearizable = string(check.Unknown)
	}
	for _, k := range rep.Linearizability.Keys {
		switch k.Verdict {
		case check.Illegal:
			s.IllegalKeys++
		case check.Unknown:
			s.UnknownKeys++
		}
	}
	if mean, most, ok := ColdLoads(r); ok {
		s.DBLoadsPerColdKey, s.MaxDBLoads = &mean, most
	}
	return s
}

// Violations lists what the checks found in r: each illegal key with the
// operation no order explains, each anomaly listed, each divergent key,
// and the stampede when its bound is set and broken.
func Violations(r *verify.Result) []Violation {
	rep := r.Report
	out := []Violation{}
	if rep.Invalid != "" {
		out = append(out, Violation{Check: "history", Explanation: "the history could not be checked: " + rep.Invalid})
	}
	why := make(map[string]string)
	for _, ik := range illegalKeys(r) {
		why[ik.Key] = ik.Why
	}
	for _, k := range rep.Linearizability.Keys {
		if k.Verdict != check.Illegal {
			continue
		}
		v := Violation{Check: verify.CheckLinearizability, Key: k.Key, Explanation: k.Reason, Why: why[k.Key]}
		if k.FailedOp != nil {
			v.Ops = []int{*k.FailedOp}
		}
		out = append(out, v)
	}
	for _, a := range rep.Anomalies {
		out = append(out, Violation{Check: string(a.Kind), Key: a.Key, Ops: a.Ops, Explanation: a.Explanation})
	}
	if c := rep.Convergence; c != nil {
		for _, d := range c.Divergent {
			out = append(out, Violation{Check: verify.CheckConvergence, Key: d.Key, Explanation: d.Reason})
		}
	}
	if s := r.Stampede; r.StampedeLimit > 0 && s != nil && s.Verdict == check.Illegal {
		for _, o := range s.Over {
			out = append(out, Violation{Check: verify.CheckStampede, Key: o.Key,
				Explanation: "loaded " + plural(o.Loads, "time") + " from the DB while cold; the limit is " + plural(r.StampedeLimit, "load")})
		}
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// WriteJSON writes run's Document, indented.
func WriteJSON(w io.Writer, run *Run) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(NewDocument(run))
}
