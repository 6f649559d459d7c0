// Package report turns the verifier's results (package verify) into what
// people and programs read: a terminal table, a JSON document and one
// self-contained HTML file with the checks, the anomalies explained in
// words, porcupine's timeline of a failing key and latency and throughput
// plots with the fault windows shaded.
//
// Every writer here is a pure function of a Run: no clock, no network, no
// randomness, so the same results always give the same bytes.
package report

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/memstore/memstore/check"
	"github.com/memstore/memstore/history"
	"github.com/memstore/memstore/strategies"
	"github.com/memstore/memstore/verify"
)

// Run is what a report shows: the results of one `memstore check` (or of
// `memstore check-history`), and the settings they came from.
type Run struct {
	// Title heads the HTML report, e.g. "memstore check".
	Title string
	// Command is the command line that produced the run, shown verbatim.
	Command string
	// Started is when the run began; zero leaves it out.
	Started time.Time
	// Elapsed is the run's wall-clock time; zero leaves it out.
	Elapsed time.Duration
	// Settings are the run's parameters (seed, duration, Redis, DB ...), in
	// the order they are shown.
	Settings []Setting
	// Notes are remarks on the whole run (faults left out, for example).
	Notes []string
	// Results are the stores' results, in the order they are shown.
	Results []*verify.Result
	// RequirePass makes the run OK only if every store passed every check,
	// whatever its expectation: a run of stores named one by one, or a
	// recorded history, asks "is this store safe?", and a known-bad store
	// that is caught (as expected) answers no. Without it, the run asks
	// "did every store meet its expectation?", the verifier's self-test.
	RequirePass bool
	// Histories names, per store, the file its history was saved to (a
	// path relative to the report), so that it can be checked again.
	Histories map[string]string
	// Faults are the faults the run cycled through, so that the report can
	// name those a store did not reach before its workload ended. Nil:
	// not known (a recorded history).
	Faults []string
	// Interrupted says that the run was stopped (Ctrl-C) before every
	// store finished: the report shows what it had. Such a run is not OK.
	Interrupted bool
}

// Setting is one named parameter of a run.
type Setting struct {
	Name, Value string
}

// OK reports whether every store met its expectation (those expected to
// pass passed, the known-bad ones were caught), or with RequirePass,
// whether every store passed. A run with no results, or an interrupted
// one, is not OK.
func (r *Run) OK() bool {
	return len(r.Results) > 0 && len(r.Failures()) == 0 && !r.Interrupted
}

// StoreOK reports whether one store's result lets the run be OK: the
// colour of its badge. With RequirePass, a known-bad store that was
// caught does not: it broke its promises, as expected.
func (r *Run) StoreOK(res *verify.Result) bool {
	if res.Interrupted && !res.Caught() {
		return false
	}
	if r.RequirePass {
		return res.Passed()
	}
	return res.OK()
}

// The verdicts of a store, as the table's last column shows them.
const (
	Pass   = "PASS"   // expected to pass, and passed
	Fail   = "FAIL"   // expected to pass, and did not
	Caught = "CAUGHT" // known-bad, and a check caught it
	Missed = "MISSED" // known-bad, and no check fired

	// Interrupted: the run was stopped before the store's checks were all
	// done, and none that ran fired.
	Interrupted = "INTERRUPTED"
)

// Verdict is a store's verdict: Pass, Fail, Caught or Missed, or
// Interrupted for a run stopped before its end in which no check fired (a
// check that fired in the history so far is a proof all the same).
func Verdict(r *verify.Result) string {
	switch {
	case r.Interrupted && !r.Caught():
		return Interrupted
	case r.ExpectPass && r.Passed():
		return Pass
	case r.ExpectPass:
		return Fail
	case r.Caught():
		return Caught
	default:
		return Missed
	}
}

// Expected is "pass" for a store expected to pass, "fail" for a known-bad
// one.
func Expected(r *verify.Result) string {
	if r.ExpectPass {
		return "pass"
	}
	return "fail"
}

// Failures lists the stores that keep the run from being OK, as
// "name VERDICT".
func (r *Run) Failures() []string {
	var out []string
	for _, res := range r.Results {
		if !r.StoreOK(res) {
			out = append(out, res.Store+" "+Verdict(res))
		}
	}
	return out
}

// Headline is the run's verdict in one line.
func (r *Run) Headline() string {
	if r.Interrupted {
		var done []string
		for _, res := range r.Results {
			done = append(done, res.Store+" "+Verdict(res))
		}
		if len(done) == 0 {
			return "INTERRUPTED: stopped before any store was checked"
		}
		return "INTERRUPTED: stopped before the run finished; so far " + strings.Join(done, ", ")
	}
	if len(r.Results) == 0 {
		return "FAIL: no store was checked"
	}
	if r.RequirePass {
		if r.OK() {
			return "OK: every store passed every check"
		}
		// Named one by one, a store is asked "is it safe?". A known-bad
		// one that is caught answers no, as expected: say both, so that
		// the verdict does not read as a failure of the verifier.
		var f []string
		for _, res := range r.Results {
			if r.StoreOK(res) {
				continue
			}
			s := res.Store + " " + Verdict(res)
			switch {
			case Verdict(res) == Caught:
				s = res.Store + " is unsafe (CAUGHT, as expected of a known-bad store)"
			case len(r.Results) == 1:
				s = res.Store + " did not pass every check (" + Verdict(res) + ")"
			}
			f = append(f, s)
		}
		if len(r.Results) == 1 {
			return "FAIL: " + f[0]
		}
		return fmt.Sprintf("FAIL: %d of %s broke their promises: %s", len(f), plural(len(r.Results), "store"), strings.Join(f, "; "))
	}
	if r.OK() {
		pass, caught := 0, 0
		for _, res := range r.Results {
			if res.ExpectPass {
				pass++
			} else {
				caught++
			}
		}
		var parts []string
		if pass > 0 {
			parts = append(parts, fmt.Sprintf("%s passed", plural(pass, "store")))
		}
		if caught > 0 {
			parts = append(parts, fmt.Sprintf("%s caught", plural(caught, "known-bad store")))
		}
		return "OK: every store met its expectation (" + strings.Join(parts, ", ") + ")"
	}
	f := r.Failures()
	return fmt.Sprintf("FAIL: %d of %s did not meet their expectation: %s", len(f), plural(len(r.Results), "store"), strings.Join(f, ", "))
}

// Explain says in one line what a store's verdict rests on: the checks
// that fired (with the time to the first proof), or the problems that keep
// it from passing, or that every check held.
func Explain(r *verify.Result) string {
	var fired []string
	for _, c := range r.Fired() {
		fired = append(fired, CheckName(c))
	}
	switch {
	case r.Interrupted && len(fired) == 0:
		return "interrupted before the run finished; no check fired in the history so far"
	case len(fired) > 0:
		s := "caught by " + strings.Join(fired, ", ")
		if r.ExpectPass {
			s = "FAILED: " + strings.Join(fired, ", ") + " found violations"
		}
		if r.Detected {
			s += fmt.Sprintf(" (first proof %s into the run)", Duration(r.TimeToDetection))
		}
		return s
	case !r.Passed():
		p := r.Problems()
		s := Plain(p[0])
		if len(p) > 1 {
			s += fmt.Sprintf(" (and %d more)", len(p)-1)
		}
		if !r.ExpectPass {
			return "no check fired, but it did not pass either: " + s
		}
		return s
	case r.ExpectPass:
		return "every check held: " + held(r)
	default:
		return "MISSED: every check held (" + held(r) + "), but this store is known to be unsafe"
	}
}

func held(r *verify.Result) string {
	parts := []string{"linearizable", "no anomalies"}
	if c := r.Report.Convergence; c != nil {
		parts = append(parts, "converged")
	}
	return strings.Join(parts, ", ")
}

// Doc returns the one-paragraph description of a known store ("" for an
// unknown one).
func Doc(store string) string {
	if store == strategies.DBOnly().Name {
		return strategies.DBOnly().Doc
	}
	f, err := strategies.Lookup(store)
	if err != nil {
		return ""
	}
	return f.Doc
}

// LatencyOf is the p50 and p99 latency of every workload operation of r
// (final reads left out), whatever its kind. Without a history it falls
// back on the most frequent kind's figures.
func LatencyOf(r *verify.Result) (p50, p99 time.Duration) {
	if r.History != nil {
		var ds []time.Duration
		for _, op := range r.History.Ops {
			if !op.Final {
				ds = append(ds, time.Duration(op.Return-op.Call))
			}
		}
		slices.Sort(ds)
		return percentile(ds, 50), percentile(ds, 99)
	}
	best := verify.Latency{}
	for _, k := range sortedKinds(r.Latency) {
		if l := r.Latency[k]; l.Count > best.Count {
			best = l
		}
	}
	return best.P50, best.P99
}

// percentile is the nearest-rank percentile of sorted ds.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	i := (p*len(ds)+99)/100 - 1
	return ds[max(0, min(i, len(ds)-1))]
}

func sortedKinds(m map[history.Kind]verify.Latency) []history.Kind {
	ks := make([]history.Kind, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// Linearizable is the linearizability column: "ok", "unknown" or
// "illegal", with the share of keys for the last two.
func Linearizable(r *verify.Result) string {
	lin := r.Report.Linearizability
	if r.Report.Invalid != "" {
		return string(check.Unknown)
	}
	n := 0
	for _, k := range lin.Keys {
		if k.Verdict == lin.Verdict {
			n++
		}
	}
	if lin.Verdict == check.Ok {
		return string(check.Ok)
	}
	return fmt.Sprintf("%s (%d/%d keys)", lin.Verdict, n, len(lin.Keys))
}

// Anomalies counts every anomaly of r, of every kind.
func Anomalies(r *verify.Result) int {
	n := 0
	for _, c := range r.Report.Summary.Anomalies {
		n += c
	}
	return n
}

// Converged is the convergence verdict: true or false, nil when it was not
// checked.
func Converged(r *verify.Result) *bool {
	c := r.Report.Convergence
	if c == nil {
		return nil
	}
	ok := c.Verdict == check.Ok
	return &ok
}

// ColdLoads is the mean and the maximum DB loads per cold key in the
// stampede probe; ok is false when the probe did not run.
func ColdLoads(r *verify.Result) (mean float64, most int, ok bool) {
	s := r.Stampede
	if s == nil || s.Keys == 0 {
		return 0, 0, false
	}
	return s.Mean, s.Max, true
}

// FaultCounts counts the fault windows of r by fault name.
func FaultCounts(r *verify.Result) map[string]int {
	m := make(map[string]int)
	for _, f := range r.Faults {
		m[f.Name]++
	}
	return m
}

// Duration formats d to three significant digits in the unit that keeps
// it between 1 and 1000: 412µs, 1.23ms, 15ms, 1.25s, 12.3s; from a minute
// on, to the second: 2m05s.
func Duration(d time.Duration) string {
	if d <= 0 {
		return "0"
	}
	if d >= time.Minute-500*time.Millisecond {
		d = d.Round(time.Second)
		return fmt.Sprintf("%dm%02ds", int(d/time.Minute), int(d%time.Minute/time.Second))
	}
	units := []struct {
		name string
		size time.Duration
	}{{"ns", 1}, {"µs", time.Microsecond}, {"ms", time.Millisecond}, {"s", time.Second}}
	for i, u := range units {
		v := sig3(float64(d) / float64(u.size))
		if v < 1000 || i == len(units)-1 {
			return trimFloat(v) + u.name
		}
	}
	return d.String() // not reached
}

// sig3 rounds v > 0 to three significant digits.
func sig3(v float64) float64 {
	p := math.Pow(10, 2-math.Floor(math.Log10(v)))
	return math.Round(v*p) / p
}

// trimFloat writes v with at most two decimals and no trailing zeros.
func trimFloat(v float64) string {
	s := strconv.FormatFloat(v, 'f', 2, 64)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	if w, ok := strings.CutSuffix(what, "y"); ok {
		return fmt.Sprintf("%d %sies", n, w)
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
