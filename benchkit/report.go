package benchkit

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
)

// WriteJSON writes results as one indented JSON array.
func WriteJSON(w io.Writer, results []Result) error {
	if results == nil {
		results = []Result{}
	}
	b, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// WriteTable writes results as an aligned table, then the targets of
// Checks.
func WriteTable(w io.Writer, results []Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "row\tkind\tg\tops/s\tp50 µs\tp99 µs\tallocs/op\tB/op\tdb loads\tloads/key\t× raw\terrors\t")
	for _, r := range results {
		if r.Err != "" && r.Ops == 0 && r.Errors == 0 {
			fmt.Fprintf(tw, "%s\t%s\t%d\t-\t-\t-\t-\t-\t-\t-\t-\t%s\t\n", r.Name, r.Kind, r.Goroutines, r.Err)
			continue
		}
		perKey := "-"
		if r.Rounds > 0 {
			perKey = fmt.Sprintf("%.2f (max %d)", r.DBLoadsPerKey, r.MaxDBLoadsPerKey)
		}
		ratio := "-"
		if r.RatioToRaw > 0 {
			ratio = fmt.Sprintf("%.2f", r.RatioToRaw)
		}
		errs := "0"
		if r.Errors > 0 {
			errs = fmt.Sprintf("%d: %s", r.Errors, shorten(r.Err, 60))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f\t%.1f\t%.1f\t%.1f\t%.0f\t%d\t%s\t%s\t%s\t\n",
			r.Name, r.Kind, r.Goroutines, r.OpsPerSec, r.P50us, r.P99us, r.AllocsPerOp, r.BytesPerOp,
			r.DBLoads, perKey, ratio, errs)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	checks := Checks(results)
	if len(checks) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\ntargets (ratios within this run):")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range checks {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", c.Status, c.Name, c.Got, c.Target)
	}
	return tw.Flush()
}

func shorten(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Status is the outcome of a Check.
type Status string

const (
	Met     Status = "met"
	Missed  Status = "MISSED"
	Unknown Status = "unknown" // a row it needs was not measured, or failed
	Info    Status = "info"    // no target: a number shown beside one
)

// Check is one of the performance targets of issue 6, judged on the
// results of one run.
type Check struct {
	Name   string `json:"name"`
	Got    string `json:"got"`
	Target string `json:"target"`
	Status Status `json:"status"`
}

// Checks judges results against the targets, each a ratio within the run:
//
//   - memstore hits at ≥ 0.85× raw GET and at most 3 allocations beyond it,
//     and at least as fast as each peer's hit;
//   - memstore Set and Delete at ≥ 0.7× write-db-delete-cache's on SQLite,
//     ≥ 0.9× on PostgreSQL;
//   - memstore get-miss at ≥ 0.5× write-db-delete-cache's (GET, SELECT, SET);
//   - the mixed rows at ≥ 0.8× write-db-delete-cache's throughput;
//   - GetMany of 100 cached keys at ≥ 0.7× raw MGET of 100;
//   - exactly one DB load per cold key in the stampede.
//
// Allocations per Set and per miss are listed beside raw's. Numbers from a
// shared machine are noisy: a target missed by a little may be the
// neighbours.
func Checks(results []Result) []Check {
	type at struct {
		name string
		g    int
	}
	by := make(map[at]Result, len(results))
	var gs []int
	seenG := map[int]bool{}
	for _, r := range results {
		by[at{r.Name, r.Goroutines}] = r
		if strings.HasPrefix(r.Name, "memstore/") && r.Rounds == 0 && !seenG[r.Goroutines] {
			seenG[r.Goroutines] = true
			gs = append(gs, r.Goroutines)
		}
	}
	slices.Sort(gs)
	ok := func(r Result, found bool) bool { return found && r.Ops > 0 && r.Errors == 0 }
	var out []Check
	ratio := func(name string, a, b at, target float64) {
		ra, fa := by[a]
		rb, fb := by[b]
		if !fa && !fb {
			return
		}
		c := Check{Name: name, Target: fmt.Sprintf("target ≥ %.2f×", target), Status: Unknown, Got: "-"}
		if ok(ra, fa) && ok(rb, fb) {
			v := Ratio(ra, rb)
			c.Got = fmt.Sprintf("%.2f×", v)
			c.Status = status(v >= target)
		}
		out = append(out, c)
	}
	allocs := func(name string, a, b at) {
		ra, fa := by[a]
		rb, fb := by[b]
		if ok(ra, fa) && ok(rb, fb) {
			out = append(out, Check{Name: name, Got: fmt.Sprintf("%.0f vs %.0f", ra.AllocsPerOp, rb.AllocsPerOp), Status: Info})
		}
	}
	const naive = "write-db-delete-cache"
	for _, g := range gs {
		hit := at{"memstore/get-hit", g}
		if h, fh := by[hit]; fh {
			ratio(fmt.Sprintf("memstore/get-hit vs raw/get, g=%d", g), hit, at{"raw/get", g}, 0.85)
			r, fr := by[at{"raw/get", g}]
			c := Check{Name: fmt.Sprintf("memstore/get-hit allocs/op beyond raw/get, g=%d", g), Target: "target ≤ 3", Status: Unknown, Got: "-"}
			if ok(h, fh) && ok(r, fr) {
				d := h.AllocsPerOp - r.AllocsPerOp
				c.Got = fmt.Sprintf("%+.1f", d)
				c.Status = status(d <= 3.05)
			}
			out = append(out, c)
			for _, p := range results {
				if p.Kind == KindPeer && p.Goroutines == g && strings.HasSuffix(p.Name, "/get-hit") {
					ratio(fmt.Sprintf("memstore/get-hit vs %s, g=%d", p.Name, g), hit, at{p.Name, g}, 1)
				}
			}
		}
		for _, row := range []string{"set", "delete"} {
			m := at{"memstore/" + row, g}
			target := 0.7
			if by[m].DB == "postgres" {
				target = 0.9
			}
			ratio(fmt.Sprintf("memstore/%s vs %s/%s (%s), g=%d", row, naive, row, by[m].DB, g), m, at{naive + "/" + row, g}, target)
		}
		ratio(fmt.Sprintf("memstore/get-miss vs %s/get-miss, g=%d", naive, g), at{"memstore/get-miss", g}, at{naive + "/get-miss", g}, 0.5)
		ratio(fmt.Sprintf("memstore/getmany-100 vs raw/mget, g=%d", g), at{"memstore/getmany-100", g}, at{"raw/mget", g}, 0.7)
		allocs(fmt.Sprintf("  allocs/op memstore/set vs raw/set, g=%d", g), at{"memstore/set", g}, at{"raw/set", g})
		allocs(fmt.Sprintf("  allocs/op memstore/get-miss vs raw/get, g=%d", g), at{"memstore/get-miss", g}, at{"raw/get", g})
	}
	for _, n := range []string{"mixed-3", "mixed-1000"} {
		for _, r := range results {
			if r.Name == "memstore/"+n {
				ratio(fmt.Sprintf("memstore/%s vs %s/%s, g=%d", n, naive, n, r.Goroutines), at{r.Name, r.Goroutines}, at{naive + "/" + n, r.Goroutines}, 0.8)
			}
		}
	}
	for _, r := range results {
		if r.Name != "memstore/stampede" {
			continue
		}
		c := Check{Name: fmt.Sprintf("memstore/stampede DB loads per cold key (%d callers)", r.Goroutines), Target: "target exactly 1", Status: Unknown, Got: "-"}
		if r.Rounds > 0 && r.Errors == 0 {
			c.Got = fmt.Sprintf("%.2f (max %d, %d keys)", r.DBLoadsPerKey, r.MaxDBLoadsPerKey, r.Rounds)
			c.Status = status(r.DBLoadsPerKey == 1 && r.MaxDBLoadsPerKey == 1)
		}
		out = append(out, c)
		for _, p := range results {
			if p.Rounds > 0 && p.Name != r.Name && strings.HasSuffix(p.Name, "/stampede") {
				out = append(out, Check{Name: fmt.Sprintf("  beside it: %s (%d callers)", p.Name, p.Goroutines),
					Got: fmt.Sprintf("%.2f (max %d)", p.DBLoadsPerKey, p.MaxDBLoadsPerKey), Status: Info})
			}
		}
	}
	return out
}

func status(met bool) Status {
	if met {
		return Met
	}
	return Missed
}

// kindColor is the bar colour of each kind in the chart.
var kindColor = map[Kind]string{
	KindRaw:      "#8a8a8a",
	KindMemstore: "#2b6cb0",
	KindStrategy: "#c05621",
	KindPeer:     "#2f855a",
}

// WriteSVG writes a horizontal bar chart of ops/s per row and goroutine
// count, on a logarithmic axis (reads and DB writes differ by orders of
// magnitude), coloured by kind. The SVG is self-contained.
func WriteSVG(w io.Writer, results []Result) error {
	const (
		labelW = 300
		plotW  = 560
		rightW = 90
		barH   = 16
		gap    = 4
		top    = 56
	)
	var rs []Result
	maxV := 1.0
	for _, r := range results {
		if r.OpsPerSec > 0 {
			rs = append(rs, r)
			maxV = max(maxV, r.OpsPerSec)
		}
	}
	// The axis runs between the powers of ten around the slowest and the
	// fastest row.
	lo := 0.0
	for i, r := range rs {
		if l := math.Floor(math.Log10(r.OpsPerSec)); i == 0 || l < lo {
			lo = l
		}
	}
	hi := math.Ceil(math.Log10(maxV))
	if hi <= lo {
		hi = lo + 1
	}
	x := func(v float64) float64 {
		return labelW + plotW*(math.Log10(max(v, math.Pow(10, lo)))-lo)/(hi-lo)
	}
	height := top + len(rs)*(barH+gap) + 40
	width := labelW + plotW + rightW
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="10" y="20" font-size="15" font-weight="bold">memstore bench: operations per second (log scale)</text>`+"\n")
	lx := 10.0
	for _, k := range []Kind{KindRaw, KindMemstore, KindStrategy, KindPeer} {
		fmt.Fprintf(&b, `<rect x="%.0f" y="30" width="12" height="12" fill="%s"/><text x="%.0f" y="40">%s</text>`+"\n", lx, kindColor[k], lx+16, k)
		lx += 100
	}
	for p := lo; p <= hi; p++ {
		gx := x(math.Pow(10, p))
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>`+"\n", gx, top-4, gx, height-30)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%s</text>`+"\n", gx, height-14, human(math.Pow(10, p)))
	}
	for i, r := range rs {
		y := top + i*(barH+gap)
		label := fmt.Sprintf("%s g=%d", r.Name, r.Goroutines)
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", labelW-8, y+barH-4, html.EscapeString(label))
		col, okc := kindColor[r.Kind]
		if !okc {
			col = "#555"
		}
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"><title>%s: %.0f ops/s, p50 %.1fµs, p99 %.1fµs</title></rect>`+"\n",
			labelW, y, max(x(r.OpsPerSec)-labelW, 1), barH, col, html.EscapeString(label), r.OpsPerSec, r.P50us, r.P99us)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" fill="#333">%s</text>`+"\n", x(r.OpsPerSec)+4, y+barH-4, human(r.OpsPerSec))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// human formats n with a k or M suffix.
func human(n float64) string {
	switch {
	case n >= 1e6:
		return trimZero(fmt.Sprintf("%.1f", n/1e6)) + "M"
	case n >= 1e3:
		return trimZero(fmt.Sprintf("%.1f", n/1e3)) + "k"
	}
	return fmt.Sprintf("%.0f", n)
}

func trimZero(s string) string { return strings.TrimSuffix(s, ".0") }
