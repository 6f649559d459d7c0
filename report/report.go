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
	"slices"
	"sort"
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
}

// Setting is one named parameter of a run.
type Setting struct {
	Name, Value string
}

// OK reports whether every store met its expectation (those expected to
// pass passed, the known-bad ones were caught), or with RequirePass,
// whether every store passed. A run with no results is not OK.
func (r *Run) OK() bool {
	return len(r.Results) > 0 && len(r.Failures()) == 0
}

// ok reports whether one store's result lets the run be OK.
func (r *Run) ok(res *verify.Result) bool {
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
)

// Verdict is a store's verdict: Pass, Fail, Caught or Missed.
func Verdict(r *verify.Result) string {
	switch {
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
		if !r.ok(res) {
			out = append(out, res.Store+" "+Verdict(res))
		}
	}
	return out
}

// Headline is the run's verdict in one line.
func (r *Run) Headline() string {
	if len(r.Results) == 0 {
		return "FAIL: no store was checked"
	}
	if r.RequirePass {
		if r.OK() {
			return "OK: every store passed every check"
		}
		f := r.Failures()
		return fmt.Sprintf("FAIL: %d of %s broke a promise: %s", len(f), plural(len(r.Results), "store"), strings.Join(f, ", "))
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
	fired := r.Fired()
	switch {
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
		s := p[0]
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

// Duration formats d with two or three significant digits: 412µs, 1.2ms,
// 15ms, 1.25s.
func Duration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0"
	case d < time.Microsecond:
		return d.String()
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.0fms", float64(d)/float64(time.Millisecond))
	case d < time.Minute:
		return fmt.Sprintf("%.2fs", d.Seconds())
	default:
		return d.Round(time.Second).String()
	}
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
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
