package report_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/memstore/memstore/check"
	"github.com/memstore/memstore/history"
	"github.com/memstore/memstore/report"
	"github.com/memstore/memstore/verify"
)

// The recorded histories these tests render: real runs, kept by the
// packages that recorded them.
const (
	knownBadHistory   = "../cmd/memstore/testdata/write-db-delete-cache.jsonl" // caught: stale reads, lost writes
	passingHistory    = "../cmd/memstore/testdata/memstore.jsonl"              // memstore, linearizable
	unexplainedLinear = "../verify/testdata/memstore-flush-k2.jsonl"           // illegal, and no explainer fires
)

// recorded checks a recorded history as memstore check-history does.
func recorded(t *testing.T, path string) *verify.Result {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, err := history.Read(f)
	if err != nil {
		t.Fatal(err)
	}
	return report.FromHistory(h, check.All(h, nil))
}

// renderHTML writes run's report and returns it.
func renderHTML(t *testing.T, run *report.Run) string {
	t.Helper()
	var buf bytes.Buffer
	if err := report.WriteHTML(&buf, run, nil); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// timelineDoc is what a report's porcupine timeline holds: porcupine's
// drawing data and the rows the annotating script writes.
type timelineDoc struct {
	Rows   []string
	Failed int
	Boxes  []timelineBox
}

type timelineBox struct {
	Op          int    // the history's op ID, from the tooltip's metadata
	Client      string // ... and client
	Row         int    // porcupine's row
	Description string
}

var (
	srcdoc      = regexp.MustCompile(`srcdoc="([^"]*)"`)
	porcupineJS = regexp.MustCompile(`(?m)^\s*const data = (\{.*\})\s*$`)
	ourJS       = regexp.MustCompile(`const memstoreTimeline = (\{.*?\});`)
	boxMeta     = regexp.MustCompile(`^op (\d+), client (\S+), `)
)

// timelines parses every timeline of page.
func timelines(t *testing.T, page string) []timelineDoc {
	t.Helper()
	var out []timelineDoc
	for _, m := range srcdoc.FindAllStringSubmatch(page, -1) {
		doc := html.UnescapeString(m[1])
		pm, om := porcupineJS.FindStringSubmatch(doc), ourJS.FindStringSubmatch(doc)
		if pm == nil || om == nil {
			t.Fatalf("timeline without porcupine's data or the annotating script")
		}
		var data struct {
			Partitions []struct {
				History []struct {
					ClientId    int
					Description string
					Metadata    string
				}
			}
		}
		if err := json.Unmarshal([]byte(pm[1]), &data); err != nil {
			t.Fatalf("porcupine's data: %v", err)
		}
		var ours struct {
			Rows   []string `json:"rows"`
			Failed int      `json:"failed"`
		}
		if err := json.Unmarshal([]byte(om[1]), &ours); err != nil {
			t.Fatalf("the annotating script's data: %v", err)
		}
		td := timelineDoc{Rows: ours.Rows, Failed: ours.Failed}
		for _, p := range data.Partitions {
			for _, e := range p.History {
				mm := boxMeta.FindStringSubmatch(e.Metadata)
				if mm == nil {
					t.Fatalf("box metadata %q does not name its op and client", e.Metadata)
				}
				id, _ := strconv.Atoi(mm[1])
				td.Boxes = append(td.Boxes, timelineBox{Op: id, Client: mm[2], Row: e.ClientId, Description: e.Description})
			}
		}
		out = append(out, td)
	}
	return out
}

// visible is page without its timelines (porcupine's own script and data)
// and its style sheet, entities unescaped: what a person reads, and the
// markup around it.
func visible(page string) string {
	page = srcdoc.ReplaceAllString(page, `srcdoc=""`)
	if i, j := strings.Index(page, "<style>"), strings.Index(page, "</style>"); i >= 0 && j > i {
		page = page[:i] + page[j:]
	}
	return html.UnescapeString(page)
}

// leaks matches what must not reach a person: the library's names and
// times to the nanosecond.
var leaks = regexp.MustCompile(`Config\.|memtest|DefaultOutcome|MEMSTORE_|\((Timeout|MaxSteps|MaxConfigs|MaxConcurrency)\)|\b(stale_read|lost_write|non_monotonic_read|never_written|read_of_failed_write|future_read)\b|\d\.\d{5,}(s|ms|µs)\b`)

// checkTimeline checks the key facts of a timeline against the history:
// rows labelled with the history's client IDs, each box its op's words
// with the value it wrote or read.
func checkTimeline(t *testing.T, td timelineDoc, h *history.History) {
	t.Helper()
	if len(td.Boxes) == 0 {
		t.Fatal("timeline without boxes")
	}
	for _, b := range td.Boxes {
		op := h.Ops[b.Op]
		if b.Row >= len(td.Rows) || td.Rows[b.Row] != b.Client {
			t.Errorf("op %d of client %s is drawn on row %d, labelled %v", b.Op, b.Client, b.Row, td.Rows)
		}
		if want := fmt.Sprint(op.Client); op.Process == 0 && b.Client != want {
			t.Errorf("op %d: box says client %s, history %s", b.Op, b.Client, want)
		}
		var want string
		switch {
		case op.Kind == history.Set:
			want = fmt.Sprintf("set %q", op.Value)
		case op.Kind == history.Delete:
			want = "delete"
		case op.Kind.IsRead() && op.Found:
			want = fmt.Sprintf("get → %q", op.Out)
		case op.Kind.IsRead():
			want = "get → absent"
		}
		if !strings.HasPrefix(b.Description, want) {
			t.Errorf("op %d's box says %q, want %q", b.Op, b.Description, want)
		}
	}
}

func TestHTMLRecordedKnownBad(t *testing.T) {
	t.Parallel()
	r := recorded(t, knownBadHistory)
	run := &report.Run{Title: "memstore check-history", RequirePass: true, Results: []*verify.Result{r}}
	page := renderHTML(t, run)
	text := visible(page)

	// The verdict: a red banner, and a red badge beside it, never green.
	for _, want := range []string{
		`<div class="verdict bad">FAIL: write-db-delete-cache is unsafe (CAUGHT, as expected of a known-bad store)`,
		`<span class="badge bad">CAUGHT</span>`,
		"known-bad: caught, as expected, so not safe to use",
		"caught by linearizability, lost writes, stale reads",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(text, `badge good">CAUGHT`) {
		t.Error("a green CAUGHT badge under a red banner")
	}

	// Anomalies grouped by culprits: no two groups shown with the same
	// operations, and a count for the reads a group stands for.
	if !strings.Contains(text, "The same operations explain 1 more read like it") {
		t.Error("no group counts the reads its culprits explain")
	}
	tables := regexp.MustCompile(`(?s)<div class="anomaly">.*?</table>`).FindAllString(text, -1)
	for i, a := range tables {
		for _, b := range tables[:i] {
			if opIDs(a) == opIDs(b) {
				t.Errorf("two anomaly groups show the same operations %s", opIDs(a))
			}
		}
	}

	// The timeline: values in every box, client IDs on the rows, the
	// failing operation outlined, and a caption in words.
	tds := timelines(t, page)
	if len(tds) != 1 {
		t.Fatalf("%d timelines, want 1", len(tds))
	}
	checkTimeline(t, tds[0], r.History)
	if tds[0].Failed < 0 {
		t.Error("the timeline of an illegal key outlines no operation")
	}
	if !strings.Contains(text, "is the first that no order explains: outlined in red below.") {
		t.Error("no caption over the timeline")
	}

	// Every check says what it means, Polaris included.
	for _, want := range []string{"After Meta's cache-consistency monitor, Polaris", "Each key acts as one variable"} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	// The faults the run did not reach are listed as such.
	if !strings.Contains(text, "Not reached: the workload ended before their turn") || !strings.Contains(text, "redis-kill") {
		t.Error("the faults not reached are not listed")
	}
	if m := leaks.FindString(text); m != "" {
		t.Errorf("report shows an internal name or a nanosecond time: %q", m)
	}
}

// opIDs is the op column of an anomaly's table.
func opIDs(table string) string {
	var ids []string
	for _, m := range regexp.MustCompile(`<tr class="(?:read|write)"><td class="mono">(\d+)</td>`).FindAllStringSubmatch(table, -1) {
		ids = append(ids, m[1])
	}
	return strings.Join(ids, ",")
}

func TestHTMLRecordedPassing(t *testing.T) {
	t.Parallel()
	r := recorded(t, passingHistory)
	run := &report.Run{Title: "memstore check-history", RequirePass: true, Results: []*verify.Result{r}}
	page := renderHTML(t, run)
	text := visible(page)
	for _, want := range []string{
		`<div class="verdict good">OK: every store passed every check`,
		`<span class="badge good">PASS</span>`,
		"every check held: linearizable, no anomalies",
		`<svg xmlns="http://www.w3.org/2000/svg"`, // the plots
		"Injected, one at a time:",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(page, "<iframe") || strings.Contains(text, `class="toc"`) {
		t.Error("a passing single-store report has a timeline or a table of contents")
	}
	if m := leaks.FindString(text); m != "" {
		t.Errorf("report shows an internal name or a nanosecond time: %q", m)
	}
}

// An illegal key that no explainer names (every anomaly count is 0) is
// explained in words, never by "none explains op 57" alone.
func TestHTMLUnexplainedIllegalKey(t *testing.T) {
	t.Parallel()
	r := recorded(t, unexplainedLinear)
	if report.Anomalies(r) != 0 || r.Report.Linearizability.Verdict != check.Illegal {
		t.Fatalf("the recorded history should be illegal with no anomaly: %s", r.Summary())
	}
	run := &report.Run{Title: "memstore check-history", RequirePass: true, Results: []*verify.Result{r}}
	page := renderHTML(t, run)
	text := visible(page)
	tds := timelines(t, page)
	if len(tds) != 1 {
		t.Fatalf("%d timelines, want 1", len(tds))
	}
	checkTimeline(t, tds[0], r.History)
	if !slices.Contains(tds[0].Rows, "8") || len(tds[0].Rows) > 8 {
		t.Errorf("rows %v: want the clients' own IDs (8 among them), not porcupine's 0, 1, 2", tds[0].Rows)
	}
	want := `Op 50 (client 8, get, 0.8463s–0.8888s) had returned "c5-13" before op 55 (client 8, get, 0.8903s–0.8905s) began, which returned "c6-43"`
	if !strings.Contains(text, want) {
		t.Errorf("the unexplained key is not explained in words; want %q in the report", want)
	}
	if strings.Contains(text, "none explains op 57") {
		t.Error(`report says "none explains op 57"`)
	}
	var buf bytes.Buffer
	if err := report.WriteTable(&buf, run); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "  key k2: No order of the operations on key \"k2\" lets op 57") {
		t.Errorf("the table does not explain the key in words:\n%s", buf.String())
	}
}

// A report of several stores has a table of contents with their verdicts;
// the evidence of a store that met its expectation is folded.
func TestHTMLContents(t *testing.T) {
	t.Parallel()
	run := &report.Run{Title: "memstore check", Results: []*verify.Result{recorded(t, passingHistory), recorded(t, knownBadHistory)}}
	text := visible(renderHTML(t, run))
	for _, want := range []string{
		`<nav class="toc" aria-label="stores">`,
		`<a href="#store-memstore"><span class="name">memstore</span> <span class="badge good">PASS</span></a>`,
		`<a href="#store-write-db-delete-cache"><span class="name">write-db-delete-cache</span> <span class="badge good">CAUGHT</span></a>`,
		`<details class="evidence">`,
		`<div class="verdict good">OK: every store met its expectation`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

// An interrupted run says so in its banner, in amber, and a store stopped
// midway with no check fired is INTERRUPTED, not PASS.
func TestHTMLInterrupted(t *testing.T) {
	t.Parallel()
	r := recorded(t, passingHistory)
	r.Interrupted = true
	run := &report.Run{Title: "memstore check", Interrupted: true, Results: []*verify.Result{r}}
	if run.OK() || report.Verdict(r) != report.Interrupted {
		t.Fatalf("interrupted run: OK %v, verdict %s", run.OK(), report.Verdict(r))
	}
	text := visible(renderHTML(t, run))
	for _, want := range []string{`<div class="verdict warn">INTERRUPTED: stopped before the run finished; so far memstore INTERRUPTED`, `<span class="badge warn">INTERRUPTED</span>`} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

func TestTimes(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`op 12 (client 1 get, 52.7119ms–53.05ms) read "c1-2"`, `op 12 (client 1 get, 0.0527s–53.05ms) read "c1-2"`},
		{`(client 4 set "c4-202", 1.086074739s–1.091013932s)`, `(client 4 set "c4-202", 1.0861s–1.0910s)`},
		{`a value "1.234567s" stays`, `a value "1.234567s" stays`},
		{`timed out after 1m0s`, `timed out after 1m0s`},
	} {
		if got := report.Times(tc.in); got != tc.want {
			t.Errorf("Times(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestPlain(t *testing.T) {
	in := "fault kill-worker left out: no worker processes (Config.Processes is 0)"
	got := report.Plain(in)
	if strings.Contains(got, "Config") || !strings.Contains(got, "--processes") {
		t.Errorf("Plain(%q) = %q", in, got)
	}
}

// Every fault the verifier knows has a colour of its own and a line that
// says what it does.
func TestFaultsHaveColours(t *testing.T) {
	names := verify.FaultNames()
	res := &verify.Result{Report: &check.Report{}}
	for i, n := range names {
		res.Faults = append(res.Faults, history.Event{Kind: history.Fault, Name: n, Start: int64(i), End: int64(i) + 1})
	}
	run := &report.Run{Results: []*verify.Result{res}}
	text := renderHTML(t, run)
	var colours []string
	for _, n := range names {
		m := regexp.MustCompile(`<span class="swatch" style="background: (#[0-9a-f]{6})"></span><b>` + regexp.QuoteMeta(n) + `</b> × 1: \S`).FindStringSubmatch(text)
		if m == nil {
			t.Errorf("fault %s has no swatch and description in the Faults section", n)
			continue
		}
		if slices.Contains(colours, m[1]) {
			t.Errorf("fault %s shares its colour %s", n, m[1])
		}
		colours = append(colours, m[1])
	}
}
