package report

import (
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	"github.com/memstore/memstore/check"
	"github.com/memstore/memstore/verify"
)

// TableHeader names the table's columns.
var TableHeader = []string{
	"store", "expect", "ops", "failed in faults", "other errors", "linearizable", "stale reads", "lost writes",
	"converged", "DB loads/cold key", "p50", "p99", "verdict",
}

// numericColumns are the columns of TableHeader that hold numbers (the
// HTML table aligns them right).
var numericColumns = map[int]bool{2: true, 3: true, 4: true, 6: true, 7: true, 9: true, 10: true, 11: true}

// TableRow is one store's row of the table, as text.
func TableRow(r *verify.Result) []string {
	p50, p99 := LatencyOf(r)
	converged := "-"
	if c := Converged(r); c != nil {
		converged = map[bool]string{true: "yes", false: "NO"}[*c]
	}
	loads := "-"
	if mean, most, ok := ColdLoads(r); ok {
		loads = strconv.FormatFloat(mean, 'f', 1, 64)
		if float64(most) != mean {
			loads += fmt.Sprintf(" (max %d)", most)
		}
	}
	an := r.Report.Summary.Anomalies
	inFaults, other := "-", "-"
	if f, o, ok := FaultFailures(r); ok {
		inFaults, other = strconv.Itoa(f), strconv.Itoa(o)
	}
	return []string{
		r.Store,
		Expected(r),
		strconv.Itoa(r.Ops),
		inFaults,
		other,
		Linearizable(r),
		strconv.Itoa(an[check.StaleRead]),
		strconv.Itoa(an[check.LostWrite]),
		converged,
		loads,
		Duration(p50),
		Duration(p99),
		Verdict(r),
	}
}

// WriteTable writes the terminal table: one row per store, then one line
// per store saying what its verdict rests on (and, for an illegal key when
// no explainer found anything, why in words), then the run's headline.
func WriteTable(w io.Writer, run *Run) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(cells []string) {
		for i, c := range cells {
			if i > 0 {
				fmt.Fprint(tw, "\t")
			}
			fmt.Fprint(tw, c)
		}
		fmt.Fprintln(tw)
	}
	row(TableHeader)
	for _, r := range run.Results {
		row(TableRow(r))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	for _, r := range run.Results {
		fmt.Fprintf(w, "%s: %s\n", r.Store, Explain(r))
		if n := otherAnomalies(r); n != "" {
			fmt.Fprintf(w, "  other anomalies: %s\n", n)
		}
		// When no explainer found anything, the search's verdict is the
		// only evidence: say in words what it rests on.
		if Anomalies(r) == 0 {
			for _, ik := range illegalKeys(r) {
				fmt.Fprintf(w, "  key %s: %s\n", ik.Key, ik.Why)
				break
			}
		}
	}
	fmt.Fprintln(w)
	_, err := fmt.Fprintln(w, run.Headline())
	return err
}

// otherAnomalies names the anomaly kinds the table has no column for,
// with their counts: "non-monotonic reads 3, reads of values never
// written 1".
func otherAnomalies(r *verify.Result) string {
	var s string
	for _, k := range sortedKeys(anomalyCounts(r)) {
		if k == string(check.StaleRead) || k == string(check.LostWrite) {
			continue
		}
		if s != "" {
			s += ", "
		}
		s += fmt.Sprintf("%s %d", CheckName(k), r.Report.Summary.Anomalies[check.AnomalyKind(k)])
	}
	return s
}

// anomalyCounts is Summary.Anomalies with string keys and no zero counts.
func anomalyCounts(r *verify.Result) map[string]int {
	m := make(map[string]int)
	for k, n := range r.Report.Summary.Anomalies {
		if n > 0 {
			m[string(k)] = n
		}
	}
	return m
}
