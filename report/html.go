package report

import (
	"bytes"
	_ "embed"
	"fmt"
	"html"
	"html/template"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/memstore/memstore/check"
	"github.com/memstore/memstore/history"
	"github.com/memstore/memstore/verify"
)

//go:embed report.html.tmpl
var htmlTemplate string

var pageTemplate = template.Must(template.New("report").Parse(htmlTemplate))

// HTMLOptions tune the HTML report. The zero value (or nil) means the
// defaults.
type HTMLOptions struct {
	// MaxAnomalies is how many anomalies each store lists, each with its
	// culprit operations. Default 6.
	MaxAnomalies int
	// TimelineTimeout bounds porcupine's search for the timeline of each
	// failing key. Default 5s.
	TimelineTimeout time.Duration
	// NoTimeline leaves porcupine's timelines out.
	NoTimeline bool
}

// WriteHTML writes run as one self-contained HTML document: the verdict
// first, the table, then for each store its checks, its anomalies
// explained with their culprit operations, porcupine's timeline of a
// failing key (inline, in an iframe's srcdoc) with the fault windows
// marked, and latency and throughput plots with the fault windows shaded.
// It loads nothing from the network. opts may be nil.
func WriteHTML(w io.Writer, run *Run, opts *HTMLOptions) error {
	o := HTMLOptions{}
	if opts != nil {
		o = *opts
	}
	if o.MaxAnomalies <= 0 {
		o.MaxAnomalies = 6
	}
	if o.TimelineTimeout <= 0 {
		o.TimelineTimeout = 5 * time.Second
	}
	page := newPage(run, &o)
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, page); err != nil {
		return err
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// page is what the template shows.
type page struct {
	Title       string
	OK          bool
	RequirePass bool
	Headline    string
	Command     string
	Started     string
	Elapsed     string
	Settings    []Setting
	Notes       []string
	Header      []string
	Rows        []pageRow
	Stores      []pageStore
	Faults      []faultKey
}

type pageRow struct {
	Anchor  string
	Cells   []string
	Verdict string
	Class   string
}

type faultKey struct{ Name, Colour string }

type pageStore struct {
	Name, Anchor     string
	Expected         string
	Verdict, Class   string
	Explain          string
	Doc              string
	Checks           []pageCheck
	Problems         []string
	Anomalies        []pageAnomaly
	AnomaliesTotal   int
	Timeline         template.HTML
	TimelineKey      string
	TimelineWhy      string
	Latency          template.HTML
	Throughput       template.HTML
	FaultCounts      []Setting
	LeftOut          []Setting
	Notes            []string
	History          string
	TimeToDetection  string
	HasFaultsOrPlots bool
}

type pageCheck struct {
	Name, Result, Class, Detail string
}

type pageAnomaly struct {
	Kind, Key, Explanation string
	Ops                    []pageOp
}

type pageOp struct {
	ID, Client, What, Outcome, Call, Return, Fault string
	Class                                          string
}

func newPage(run *Run, o *HTMLOptions) *page {
	p := &page{
		Title:       run.Title,
		OK:          run.OK(),
		RequirePass: run.RequirePass,
		Headline:    run.Headline(),
		Command:     run.Command,
		Settings:    run.Settings,
		Notes:       run.Notes,
		Header:      TableHeader,
	}
	if p.Title == "" {
		p.Title = "memstore check"
	}
	if !run.Started.IsZero() {
		p.Started = run.Started.Format("2006-01-02 15:04:05 MST")
	}
	if run.Elapsed > 0 {
		p.Elapsed = Duration(run.Elapsed)
	}
	palette := faultPalette(run.Results)
	for _, name := range sortedKeys(palette) {
		p.Faults = append(p.Faults, faultKey{name, palette[name]})
	}
	for _, r := range run.Results {
		v := Verdict(r)
		p.Rows = append(p.Rows, pageRow{Anchor: anchor(r.Store), Cells: TableRow(r), Verdict: v, Class: verdictClass(v)})
		p.Stores = append(p.Stores, newPageStore(r, run.Histories[r.Store], palette, o))
	}
	return p
}

func verdictClass(v string) string {
	if v == Pass || v == Caught {
		return "good"
	}
	return "bad"
}

func anchor(store string) string {
	var b strings.Builder
	b.WriteString("store-")
	for _, c := range store {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			b.WriteRune(c)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

func newPageStore(r *verify.Result, hist string, palette map[string]string, o *HTMLOptions) pageStore {
	v := Verdict(r)
	s := pageStore{
		Name:     r.Store,
		Anchor:   anchor(r.Store),
		Expected: Expected(r),
		Verdict:  v,
		Class:    verdictClass(v),
		Explain:  Explain(r),
		Doc:      Doc(r.Store),
		Checks:   checks(r),
		Notes:    storeNotes(r),
		History:  hist,
	}
	if r.ExpectPass && !r.Passed() {
		s.Problems = r.Problems()
	}
	if r.Detected {
		s.TimeToDetection = Duration(r.TimeToDetection)
	}
	fc := FaultCounts(r)
	for _, name := range sortedKeys(fc) {
		s.FaultCounts = append(s.FaultCounts, Setting{Name: name, Value: strconv.Itoa(fc[name])})
	}
	for _, name := range sortedKeys(r.LeftOut) {
		s.LeftOut = append(s.LeftOut, Setting{Name: name, Value: r.LeftOut[name]})
	}
	s.AnomaliesTotal = Anomalies(r)
	for _, a := range pickAnomalies(r.Report.Anomalies, o.MaxAnomalies) {
		s.Anomalies = append(s.Anomalies, pageAnomaly{
			Kind:        string(a.Kind),
			Key:         a.Key,
			Explanation: a.Explanation,
			Ops:         culprits(r, a.Ops),
		})
	}
	if len(r.Series) > 0 {
		s.Latency = LatencyPlot(r, palette)
		s.Throughput = ThroughputPlot(r, palette)
	}
	if !o.NoTimeline {
		s.TimelineKey, s.TimelineWhy, s.Timeline = timeline(r, o.TimelineTimeout)
	}
	return s
}

// checks lists each check with its result, in the order a reader asks:
// is it linearizable, which anomalies, did it converge, how did the cache
// hold a stampede, how stale did it get.
func checks(r *verify.Result) []pageCheck {
	rep := r.Report
	var out []pageCheck
	lin := rep.Linearizability
	linc := pageCheck{Name: "linearizability (per key)", Result: string(lin.Verdict), Class: verdictCSS(lin.Verdict)}
	if rep.Invalid != "" {
		linc.Result, linc.Class, linc.Detail = string(check.Unknown), "bad", "the history could not be checked: "+rep.Invalid
	} else {
		var illegal, unknown []check.KeyResult
		for _, k := range lin.Keys {
			switch k.Verdict {
			case check.Illegal:
				illegal = append(illegal, k)
			case check.Unknown:
				unknown = append(unknown, k)
			}
		}
		switch {
		case len(illegal) > 0:
			linc.Detail = fmt.Sprintf("%d of %d keys illegal. Key %s: %s", len(illegal), len(lin.Keys), illegal[0].Key, illegal[0].Reason)
		case len(unknown) > 0:
			linc.Detail = fmt.Sprintf("inconclusive on %d of %d keys (key %s: %s %s); unknown is not a pass", len(unknown), len(lin.Keys), unknown[0].Key, unknown[0].Cause, unknown[0].Reason)
		default:
			linc.Detail = fmt.Sprintf("every one of the %d keys has an order of its operations that respects real time", len(lin.Keys))
		}
	}
	out = append(out, linc)

	kinds := []check.AnomalyKind{check.StaleRead, check.LostWrite, check.NonMonotonicRead, check.NeverWritten, check.FailedWriteRead, check.FutureRead}
	for k := range rep.Summary.Anomalies {
		if !contains(kinds, k) {
			kinds = append(kinds, k)
		}
	}
	for _, k := range kinds {
		n := rep.Summary.Anomalies[k]
		name := anomalyNames[k]
		if name == "" {
			name = strings.ReplaceAll(string(k), "_", " ")
		}
		c := pageCheck{Name: name, Result: strconv.Itoa(n), Class: "good", Detail: anomalyDoc[k]}
		if n > 0 {
			c.Class = "bad"
		}
		out = append(out, c)
	}

	conv := pageCheck{Name: "convergence after heal", Result: "not checked", Class: "muted", Detail: "the store cannot be inspected, or the history came without a snapshot"}
	if c := rep.Convergence; c != nil {
		conv.Result, conv.Class = "yes", "good"
		conv.Detail = fmt.Sprintf("for each of the %d keys the cache held nothing or exactly the DB's value", c.Keys)
		if c.Verdict != check.Ok {
			conv.Result, conv.Class = "NO", "bad"
			conv.Detail = fmt.Sprintf("%d of %d keys diverge. Key %s: %s", len(c.Divergent), c.Keys, c.Divergent[0].Key, c.Divergent[0].Reason)
		}
	}
	out = append(out, conv)

	st := pageCheck{Name: "DB loads per cold key", Result: "not measured", Class: "muted"}
	if mean, most, ok := ColdLoads(r); ok {
		st.Result = strconv.FormatFloat(mean, 'f', 1, 64)
		st.Class = "good"
		st.Detail = fmt.Sprintf("%d cold keys, each read by many concurrent Gets at once: %d loads in all, at most %d for key %s. One load per cold key is ideal",
			r.Stampede.Keys, r.Stampede.Total, most, r.Stampede.MaxKey)
		if most > 1 {
			st.Class = "warn"
		}
		if r.StampedeLimit > 0 {
			st.Detail += fmt.Sprintf("; the limit is %d", r.StampedeLimit)
			if r.Stampede.Verdict == check.Illegal {
				st.Class = "bad"
			}
		} else {
			st.Detail += " (reported, not judged)"
		}
	}
	out = append(out, st)

	pol := rep.Polaris
	pc := pageCheck{Name: "Polaris: writes seen at once", Result: "-", Class: "muted"}
	if pol.Writes > 0 && len(pol.Points) > 0 {
		var parts []string
		worst := 1.0
		for _, pt := range pol.Points {
			parts = append(parts, fmt.Sprintf("within %s: %.1f%%", Duration(pt.Delta), 100*pt.Share))
			worst = min(worst, pt.Share)
		}
		first := pol.Points[0]
		pc.Result = fmt.Sprintf("%.1f%%", 100*first.Share)
		pc.Class = "good"
		if worst < 1 {
			pc.Class = "warn"
		}
		pc.Detail = fmt.Sprintf("share of %d acknowledged writes that every later read saw: %s. Worst staleness %s",
			pol.Writes, strings.Join(parts, ", "), Duration(pol.WorstStaleness))
	}
	out = append(out, pc)
	return out
}

var anomalyNames = map[check.AnomalyKind]string{
	check.StaleRead:        "stale reads",
	check.LostWrite:        "lost writes",
	check.NonMonotonicRead: "non-monotonic reads",
	check.NeverWritten:     "reads of values never written",
	check.FailedWriteRead:  "reads of failed writes",
	check.FutureRead:       "reads from the future",
}

var anomalyDoc = map[check.AnomalyKind]string{
	check.StaleRead:        "a read returned a value that a completed write (or another client's completed read) had already replaced",
	check.LostWrite:        "an acknowledged write that no read ever saw, although a later read saw an older value",
	check.NonMonotonicRead: "one client read a value, then an older one",
	check.NeverWritten:     "a read returned a value that was never written to its key",
	check.FailedWriteRead:  "a read returned the value of a write that failed",
	check.FutureRead:       "a read returned a value whose write began after the read returned",
}

func verdictCSS(v check.Verdict) string {
	switch v {
	case check.Ok:
		return "good"
	case check.Illegal:
		return "bad"
	}
	return "warn"
}

func contains[T comparable](s []T, v T) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// culprits describes the operations an anomaly names, each with the fault
// active when it ran, if any.
func culprits(r *verify.Result, ids []int) []pageOp {
	var out []pageOp
	for _, id := range ids {
		if r.History == nil || id < 0 || id >= len(r.History.Ops) {
			out = append(out, pageOp{ID: strconv.Itoa(id)})
			continue
		}
		op := &r.History.Ops[id]
		client := strconv.Itoa(op.Client)
		if op.Process != 0 {
			client = fmt.Sprintf("%d/%d", op.Process, op.Client)
		}
		po := pageOp{
			ID:      strconv.Itoa(op.ID),
			Client:  client,
			What:    opText(op),
			Outcome: string(op.Outcome),
			Call:    msText(op.Call),
			Return:  msText(op.Return),
			Fault:   faultDuring(r, op),
		}
		if op.Kind.IsRead() {
			po.Class = "read"
		} else {
			po.Class = "write"
		}
		out = append(out, po)
	}
	return out
}

func opText(op *history.Op) string {
	var s string
	switch op.Kind {
	case history.Set:
		s = fmt.Sprintf("set %s %q", op.Key, op.Value)
	case history.Delete:
		s = "delete " + op.Key
	case history.CAS:
		s = fmt.Sprintf("cas %s → %q", op.Key, op.Value)
	default:
		s = fmt.Sprintf("%s %s", op.Kind, op.Key)
		switch {
		case op.Outcome != history.OK:
		case op.Found:
			s += fmt.Sprintf(" → %q", op.Out)
		default:
			s += " → absent"
		}
	}
	if op.Final {
		s = "final " + s
	}
	if op.Err != "" {
		s += " (" + op.Err + ")"
	}
	return s
}

func msText(ns int64) string {
	return strconv.FormatFloat(float64(ns)/1e6, 'f', 3, 64) + " ms"
}

// faultDuring names the faults whose windows overlap op.
func faultDuring(r *verify.Result, op *history.Op) string {
	var names []string
	for _, f := range r.Faults {
		if f.Start <= op.Return && op.Call <= f.End && !contains(names, f.Name) {
			names = append(names, f.Name)
		}
	}
	return strings.Join(names, ", ")
}

// timeline draws porcupine's timeline of r's first failing key, as an
// iframe whose srcdoc holds porcupine's whole document, so that the report
// stays one file. It returns the key and, when there is no picture, why.
func timeline(r *verify.Result, timeout time.Duration) (key, why string, frame template.HTML) {
	if r.History == nil {
		return "", "no history", ""
	}
	for _, k := range r.Report.Linearizability.Keys {
		if k.Verdict == check.Illegal {
			key = k.Key
			break
		}
	}
	if key == "" {
		for _, a := range r.Report.Anomalies {
			key = a.Key
			break
		}
	}
	if key == "" {
		return "", "no key failed", ""
	}
	var doc bytes.Buffer
	if err := check.Visualize(&doc, r.History, key, &check.Options{Timeout: timeout}); err != nil {
		return key, "porcupine could not draw it: " + err.Error(), ""
	}
	// No sandbox attribute: a sandboxed frame gets an opaque origin and,
	// in Chromium, a process of its own, which a screenshot or a printout
	// taken at load misses. The document is our own: porcupine's script
	// and data that json.Marshal escaped.
	frame = template.HTML(`<iframe class="timeline" title="porcupine timeline of key ` +
		html.EscapeString(key) + `" srcdoc="` + html.EscapeString(doc.String()) + `"></iframe>`)
	return key, "", frame
}

// storeNotes are r's notes without those that the Faults section already
// says (a fault left out).
func storeNotes(r *verify.Result) []string {
	var out []string
	for _, n := range r.Notes {
		dup := false
		for name := range r.LeftOut {
			if strings.HasPrefix(n, "fault "+name+" left out") {
				dup = true
			}
		}
		if !dup {
			out = append(out, n)
		}
	}
	return out
}

// pickAnomalies chooses up to n anomalies to show, taking the kinds in
// turn (the first of each kind, then the second ...), so that one kind's
// many instances on one key do not hide the others.
func pickAnomalies(all []check.Anomaly, n int) []check.Anomaly {
	var kinds []check.AnomalyKind
	byKind := make(map[check.AnomalyKind][]check.Anomaly)
	for _, a := range all {
		if _, ok := byKind[a.Kind]; !ok {
			kinds = append(kinds, a.Kind)
		}
		byKind[a.Kind] = append(byKind[a.Kind], a)
	}
	var out []check.Anomaly
	for i := 0; len(out) < min(n, len(all)); i++ {
		for _, k := range kinds {
			if i < len(byKind[k]) && len(out) < n {
				out = append(out, byKind[k][i])
			}
		}
	}
	return out
}
