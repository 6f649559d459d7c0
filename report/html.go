package report

import (
	"bytes"
	_ "embed"
	"fmt"
	"html"
	"html/template"
	"io"
	"math"
	"slices"
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
	// MaxAnomalies is how many groups of anomalies each store shows, each
	// group the anomalies that the same culprit operations explain.
	// Default 5.
	MaxAnomalies int
	// TimelineTimeout bounds porcupine's search for the timeline of each
	// failing key. Default 5s.
	TimelineTimeout time.Duration
	// NoTimeline leaves porcupine's timelines out.
	NoTimeline bool
}

// WriteHTML writes run as one self-contained HTML document: the verdict
// first, a table of contents and the table, then for each store its
// checks (each with what it means), its anomalies grouped by the
// operations that explain them, porcupine's timeline of a failing key
// (inline, in an iframe's srcdoc) with the failing operation outlined and
// explained in words, latency and throughput plots with the fault windows
// shaded and their legend beside, and the faults injected, not reached and
// left out. It loads nothing from the network. opts may be nil.
func WriteHTML(w io.Writer, run *Run, opts *HTMLOptions) error {
	o := HTMLOptions{}
	if opts != nil {
		o = *opts
	}
	if o.MaxAnomalies <= 0 {
		o.MaxAnomalies = 5
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
	Class       string // good, bad, warn (interrupted)
	Short       string // OK, FAIL, INTERRUPTED: the title's tag
	Headline    string
	Lede        string
	Interrupted bool
	Command     string
	Started     string
	Elapsed     string
	Settings    []Setting
	Notes       []string
	Header      []pageCell
	Rows        []pageRow
	TOC         bool
	Stores      []pageStore
}

type pageCell struct {
	Text    string
	Num     bool
	Verdict bool // the verdict column: a badge
}

type pageRow struct {
	Anchor  string
	Cells   []pageCell
	Verdict string
	Class   string
}

type pageStore struct {
	Name, Anchor    string
	Expected        string
	Verdict, Class  string
	VerdictNote     string
	Explain         string
	Doc             string
	Checks          []pageCheck
	Problems        []string
	Open            bool // the evidence is shown, not folded
	Evidence        string
	Groups          []pageGroup
	Found           int    // anomalies found, all kinds
	NotShown        string // what the groups shown leave out, in words
	TimeToDetection string
	Timeline        template.HTML
	TimelineKey     string
	TimelineWhy     string
	CaptionTitle    string
	Caption         string
	Latency         template.HTML
	Throughput      template.HTML
	PlotFaults      []pageFault
	Injected        []pageFault
	NotReached      []pageFault
	LeftOut         []pageFault
	Errors          string
	Notes           []string
	History         string
}

type pageCheck struct {
	Name, Means, Result, Class, Detail string
}

type pageFault struct {
	Name, Colour, Doc string
	Count             int
	Why               string // left out: the reason
}

// pageGroup is the anomalies that the same culprit operations explain: the
// first in full, the others' reads counted.
type pageGroup struct {
	Kind, Key, Explanation string
	Ops                    []pageOp
	More                   int
	MoreOps                string
}

type pageOp struct {
	ID, Client, What, Outcome, Call, Return, Fault string
	Class                                          string
}

func newPage(run *Run, o *HTMLOptions) *page {
	p := &page{
		Title:       run.Title,
		Headline:    run.Headline(),
		Interrupted: run.Interrupted,
		Command:     run.Command,
		Settings:    run.Settings,
		TOC:         len(run.Results) > 1,
	}
	for _, n := range run.Notes {
		p.Notes = append(p.Notes, Plain(n))
	}
	switch {
	case run.Interrupted:
		p.Class, p.Short = "warn", "INTERRUPTED"
		p.Lede = "The run was stopped before it finished. A store that finished has its verdict; a store stopped midway was checked on the history it had recorded, without the convergence sweep and the stampede probe, and is INTERRUPTED unless a check fired in it."
	case run.OK():
		p.Class, p.Short = "good", "OK"
	default:
		p.Class, p.Short = "bad", "FAIL"
	}
	if !run.Interrupted {
		if run.RequirePass {
			p.Lede = "Stores named one by one are asked \"is it safe?\": only PASS answers yes. A known-bad store that is CAUGHT behaved as expected, and is unsafe all the same."
		} else {
			p.Lede = "Each store has an expectation: memstore and db-only must pass every check, the classic strategies are known to be unsafe and must be caught by one. PASS and CAUGHT meet the expectation; FAIL and MISSED do not."
		}
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
	for i, h := range TableHeader {
		p.Header = append(p.Header, pageCell{Text: h, Num: numericColumns[i]})
	}
	palette := faultPalette(run.Results)
	for _, r := range run.Results {
		v := Verdict(r)
		row := pageRow{Anchor: anchor(r.Store), Verdict: v, Class: storeClass(run, r)}
		for i, c := range TableRow(r) {
			row.Cells = append(row.Cells, pageCell{Text: c, Num: numericColumns[i], Verdict: i == len(TableHeader)-1})
		}
		p.Rows = append(p.Rows, row)
		p.Stores = append(p.Stores, newPageStore(run, r, palette, o))
	}
	return p
}

// storeClass is the colour of a store's badge: green when its result lets
// the run be OK, red when not (amber for a store that was interrupted).
// The banner follows the same rule, so the two never disagree.
func storeClass(run *Run, r *verify.Result) string {
	switch {
	case run.StoreOK(r):
		return "good"
	case Verdict(r) == Interrupted:
		return "warn"
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

func newPageStore(run *Run, r *verify.Result, palette map[string]string, o *HTMLOptions) pageStore {
	v := Verdict(r)
	s := pageStore{
		Name:     r.Store,
		Anchor:   anchor(r.Store),
		Expected: Expected(r),
		Verdict:  v,
		Class:    storeClass(run, r),
		Explain:  Explain(r),
		Doc:      Doc(r.Store),
		History:  run.Histories[r.Store],
		Open:     len(run.Results) == 1 || !run.StoreOK(r),
	}

	switch {
	case r.ExpectPass:
		s.VerdictNote = "expected to pass"
	case v == Caught && run.RequirePass:
		s.VerdictNote = "known-bad: caught, as expected, so not safe to use"
	default:
		s.VerdictNote = "known-bad: expected to be caught"
	}
	for _, n := range storeNotes(r) {
		s.Notes = append(s.Notes, Plain(n))
	}
	s.Problems = problems(r)
	if r.Detected {
		s.TimeToDetection = Duration(r.TimeToDetection)
	}
	if f, other, ok := FaultFailures(r); ok && f+other > 0 {
		s.Errors = fmt.Sprintf("%s failed or ended unknown while a fault was injected, as faults make them; %s outside every fault window.",
			plural(f, "operation"), plural(other, "other"))
	}
	s.Injected, s.NotReached, s.LeftOut = faultLists(run, r, palette)
	s.PlotFaults = s.Injected

	s.Found = Anomalies(r)
	groups := groupAnomalies(r)
	picked := pickGroups(groups, o.MaxAnomalies)
	hidden := len(r.Report.Anomalies)
	for _, g := range picked {
		s.Groups = append(s.Groups, g.page(r))
		hidden -= len(g.all)
	}
	var rest []string
	if n := len(groups) - len(picked); n > 0 {
		rest = append(rest, fmt.Sprintf("%d more %s (%s) in result.json", n, strings.TrimPrefix(plural(n, "group"), strconv.Itoa(n)+" "), plural(hidden, "anomaly")))
	}
	if n := s.Found - len(r.Report.Anomalies); n > 0 {
		rest = append(rest, fmt.Sprintf("%d more found but not listed: the explainers list the first few of each kind on each key", n))
	}
	s.NotShown = strings.Join(rest, "; ")

	if len(r.Series) > 0 {
		s.Latency = LatencyPlot(r, palette)
		s.Throughput = ThroughputPlot(r, palette)
	}
	if !o.NoTimeline {
		s.TimelineKey, s.TimelineWhy, s.Timeline = timeline(r, o.TimelineTimeout)
		s.CaptionTitle, s.Caption = caption(r, s.TimelineKey)
	}
	// The failing operation's story is told once: over the timeline when
	// it is in view, else in the checks table.
	s.Checks = checks(r, s.Open && s.Timeline != "" && s.CaptionTitle != "")
	var ev []string
	if len(s.Groups) > 0 {
		ev = append(ev, plural(s.Found, "anomaly"))
	}
	if s.Timeline != "" {
		ev = append(ev, "the timeline of key "+s.TimelineKey)
	}
	s.Evidence = strings.Join(ev, " and ")
	return s
}

// problems are the reasons a store did not pass that its checks table
// does not show.
func problems(r *verify.Result) []string {
	var out []string
	if r.Interrupted {
		out = append(out, "the run was interrupted: only the history recorded until then was checked, without the convergence sweep and the stampede probe")
	}
	if r.Report.Summary.Outcomes[history.OK] == 0 {
		out = append(out, "no operation succeeded: nothing was checked")
	}
	return out
}

// faultLists splits the faults of r's run into those injected (with their
// counts), those configured but not reached before the workload ended,
// and those left out because this environment cannot produce them.
func faultLists(run *Run, r *verify.Result, palette map[string]string) (injected, notReached, leftOut []pageFault) {
	counts := FaultCounts(r)
	for _, name := range sortedKeys(counts) {
		injected = append(injected, pageFault{Name: name, Colour: palette[name], Doc: faultDoc[name], Count: counts[name]})
	}
	for _, name := range sortedKeys(r.LeftOut) {
		leftOut = append(leftOut, pageFault{Name: name, Doc: faultDoc[name], Why: Plain(r.LeftOut[name])})
	}
	for _, name := range configuredFaults(run, r) {
		if _, ok := counts[name]; ok {
			continue
		}
		if _, ok := r.LeftOut[name]; ok {
			continue
		}
		notReached = append(notReached, pageFault{Name: name, Doc: faultDoc[name]})
	}
	return injected, notReached, leftOut
}

// configuredFaults are the faults r's run cycled through: Run.Faults, or
// what the history's header recorded ("[redis-kill flush ...]").
func configuredFaults(run *Run, r *verify.Result) []string {
	if run.Faults != nil {
		return slices.DeleteFunc(slices.Clone(run.Faults), func(f string) bool { return f == "none" })
	}
	if r.History == nil {
		return nil
	}
	m := r.History.Header.Meta["faults"]
	if m == "" || m == "[]" {
		return nil
	}
	return slices.DeleteFunc(strings.Fields(strings.Trim(m, "[]")), func(f string) bool { return f == "none" })
}

// checks lists each check with what it means and its result, in the order
// a reader asks: is it linearizable, which anomalies, did it converge, how
// did the cache hold a stampede, how stale did it get.
func checks(r *verify.Result, captioned bool) []pageCheck {
	rep := r.Report
	var out []pageCheck
	lin := rep.Linearizability
	linc := pageCheck{Name: "linearizability (per key)", Means: checkMeans["linearizability"], Result: string(lin.Verdict), Class: verdictCSS(lin.Verdict)}
	if rep.Invalid != "" {
		linc.Result, linc.Class, linc.Detail = string(check.Unknown), "bad", "the history could not be checked: "+Plain(rep.Invalid)
	} else {
		_, unknown := lin.Split()
		iks := illegalKeys(r)
		switch {
		case len(iks) > 0 && captioned:
			ik := iks[0]
			linc.Detail = fmt.Sprintf("%d of %d keys illegal. The first, key %s, fails at op %d: see the timeline below", len(iks), len(lin.Keys), ik.Key, ik.OpID)
		case len(iks) > 0:
			ik := iks[0]
			linc.Detail = fmt.Sprintf("%d of %d keys illegal. The first, key %s, fails at op %d: %s", len(iks), len(lin.Keys), ik.Key, ik.OpID, ik.Why)
		case len(unknown) > 0:
			linc.Detail = fmt.Sprintf("inconclusive on %d of %d keys (key %s: %s); unknown is not a pass", len(unknown), len(lin.Keys), unknown[0].Key, Plain(unknown[0].Reason))
		default:
			linc.Detail = fmt.Sprintf("each of the %d keys has an order of its operations that respects real time", len(lin.Keys))
		}
	}
	out = append(out, linc)

	// Stale reads and lost writes always have a row; the rarer kinds share
	// one while none of them was found.
	rare := []check.AnomalyKind{check.NonMonotonicRead, check.NeverWritten, check.FailedWriteRead, check.FutureRead}
	kinds := []check.AnomalyKind{check.StaleRead, check.LostWrite}
	anyRare := false
	for _, k := range sortedKeys(anomalyCounts(r)) {
		if !slices.Contains(kinds, check.AnomalyKind(k)) {
			anyRare = true
		}
	}
	if anyRare {
		kinds = append(kinds, rare...)
		for _, k := range sortedKeys(anomalyCounts(r)) {
			if !slices.Contains(kinds, check.AnomalyKind(k)) {
				kinds = append(kinds, check.AnomalyKind(k))
			}
		}
	}
	for _, k := range kinds {
		n := rep.Summary.Anomalies[k]
		c := pageCheck{Name: CheckName(string(k)), Means: anomalyDoc[k], Result: strconv.Itoa(n), Class: "good"}
		if n > 0 {
			c.Class = "bad"
			c.Detail = "see the anomalies below"
		}
		out = append(out, c)
	}
	if !anyRare {
		out = append(out, pageCheck{Name: "other anomalies", Result: "0", Class: "good",
			Means:  "Non-monotonic reads (one client reads a value, then an older one), reads of values never written, of failed writes, from the future.",
			Detail: "none found"})
	}

	conv := pageCheck{Name: "convergence after heal", Means: checkMeans["convergence"], Result: "not checked", Class: "muted",
		Detail: "the store cannot be inspected, or the history came without a snapshot"}
	if r.Interrupted {
		conv.Detail = "the run was interrupted before the convergence sweep"
	}
	if c := rep.Convergence; c != nil {
		conv.Result, conv.Class = "yes", "good"
		conv.Detail = fmt.Sprintf("for each of the %d keys the cache held nothing or exactly the DB's value", c.Keys)
		if c.Verdict != check.Ok {
			conv.Result, conv.Class = "NO", "bad"
			conv.Detail = fmt.Sprintf("%d of %d keys diverge. Key %s: %s", len(c.Divergent), c.Keys, c.Divergent[0].Key, Plain(c.Divergent[0].Reason))
		}
	}
	out = append(out, conv)

	st := pageCheck{Name: "DB loads per cold key", Means: checkMeans["stampede"], Result: "not measured", Class: "muted"}
	if mean, most, ok := ColdLoads(r); ok {
		st.Result = strconv.FormatFloat(mean, 'f', 1, 64)
		st.Class = "good"
		st.Detail = fmt.Sprintf("%d cold keys, each read by many concurrent Gets at once: %d loads in all, at most %d for key %s",
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
	pc := pageCheck{Name: "Polaris: writes seen at once", Means: checkMeans["polaris"], Result: "-", Class: "muted",
		Detail: "no write had a read after it before the next write"}
	if pol.Writes > 0 && len(pol.Points) > 0 {
		var parts []string
		worst := 1.0
		for _, pt := range pol.Points {
			within := "within " + Duration(pt.Delta)
			if pt.Delta == 0 {
				within = "at once"
			}
			parts = append(parts, within+": "+percent(pt.Share))
			worst = min(worst, pt.Share)
		}
		first := pol.Points[0]
		pc.Result = percent(first.Share)
		pc.Class = "good"
		if worst < 1 {
			pc.Class = "warn"
		}
		pc.Detail = fmt.Sprintf("of %d acknowledged writes, the share that every later read saw: %s", pol.Writes, strings.Join(parts, ", "))
		if pol.WorstStaleness > 0 {
			pc.Detail += ". Worst staleness " + Duration(pol.WorstStaleness)
		}
	}
	out = append(out, pc)
	return out
}

// percent writes a share: 100%, 92.1%.
func percent(share float64) string {
	return trimFloat(math.Round(1000*share)/10) + "%"
}

// checkMeans says in one line what each check asks.
var checkMeans = map[string]string{
	"linearizability": "Each key acts as one variable: some order of its operations, each at an instant between call and return, has every read return the latest write.",
	"convergence":     "Once faults heal and the load stops, the cache holds nothing or exactly the DB's value, for every key.",
	"stampede":        "Many readers miss one cold key at once: how many reach the DB (1: the cache held the stampede off).",
	"polaris":         "After Meta's cache-consistency monitor, Polaris: the share of writes that every read begun Δt or more after them saw.",
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
	check.StaleRead:        "A read returned a value that a completed write (or another client's completed read) had already replaced.",
	check.LostWrite:        "A write was acknowledged, yet no read ever saw it, and a read that began after it still saw an older value.",
	check.NonMonotonicRead: "One client read a value, then an older one.",
	check.NeverWritten:     "A read returned a value that was never written to its key.",
	check.FailedWriteRead:  "A read returned the value of a write that failed.",
	check.FutureRead:       "A read returned a value whose write began only after the read returned.",
}

// anomalyName is one anomaly kind in words, singular: "stale read".
func anomalyName(k check.AnomalyKind) string {
	n := CheckName(string(k))
	n = strings.Replace(n, "reads", "read", 1)
	return strings.Replace(n, "writes", "write", 1)
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

// anomalyGroup is the anomalies of one kind on one key that the same
// culprit operations explain: all but the read each is about (its last
// operation). A stale write-back serves one old value to read after read;
// each read is an anomaly, and the culprits are the same two writes.
type anomalyGroup struct {
	kind check.AnomalyKind
	all  []check.Anomaly
}

func groupAnomalies(r *verify.Result) []*anomalyGroup {
	var out []*anomalyGroup
	byKey := make(map[string]*anomalyGroup)
	for _, a := range r.Report.Anomalies {
		k := string(a.Kind) + "\x00" + a.Key + "\x00"
		switch {
		case len(a.Ops) > 1:
			k += fmt.Sprint(a.Ops[:len(a.Ops)-1])
		case len(a.Ops) == 1 && r.History != nil && a.Ops[0] >= 0 && a.Ops[0] < len(r.History.Ops):
			k += "read " + r.History.Ops[a.Ops[0]].Out // never written: the same value
		default:
			k += fmt.Sprint(a.Ops)
		}
		g := byKey[k]
		if g == nil {
			g = &anomalyGroup{kind: a.Kind}
			byKey[k] = g
			out = append(out, g)
		}
		g.all = append(g.all, a)
	}
	return out
}

// pickGroups chooses up to n groups to show, taking the kinds in turn
// (the first of each kind, then the second ...), so that one kind's many
// groups do not hide the others.
func pickGroups(all []*anomalyGroup, n int) []*anomalyGroup {
	var kinds []check.AnomalyKind
	byKind := make(map[check.AnomalyKind][]*anomalyGroup)
	for _, g := range all {
		if _, ok := byKind[g.kind]; !ok {
			kinds = append(kinds, g.kind)
		}
		byKind[g.kind] = append(byKind[g.kind], g)
	}
	var out []*anomalyGroup
	for i := 0; len(out) < min(n, len(all)); i++ {
		for _, k := range kinds {
			if i < len(byKind[k]) && len(out) < n {
				out = append(out, byKind[k][i])
			}
		}
	}
	return out
}

func (g *anomalyGroup) page(r *verify.Result) pageGroup {
	first := g.all[0]
	pg := pageGroup{
		Kind:        anomalyName(first.Kind),
		Key:         first.Key,
		Explanation: Plain(first.Explanation),
		Ops:         culprits(r, first.Ops),
		More:        len(g.all) - 1,
	}
	var ids []string
	for _, a := range g.all[1:] {
		if len(a.Ops) > 0 {
			ids = append(ids, strconv.Itoa(a.Ops[len(a.Ops)-1]))
		}
	}
	if len(ids) > 8 {
		ids = append(ids[:8], "…")
	}
	pg.MoreOps = strings.Join(ids, ", ")
	return pg
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
		po := pageOp{
			ID:      strconv.Itoa(op.ID),
			Client:  clientText(op),
			What:    opText(op),
			Outcome: string(op.Outcome),
			Call:    timeText(op.Call),
			Return:  timeText(op.Return),
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
		s += " (" + Plain(op.Err) + ")"
	}
	return s
}

// faultDuring names the faults whose windows overlap op.
func faultDuring(r *verify.Result, op *history.Op) string {
	var names []string
	for _, f := range r.Faults {
		if f.Start <= op.Return && op.Call <= f.End && !slices.Contains(names, f.Name) {
			names = append(names, f.Name)
		}
	}
	return strings.Join(names, ", ")
}

// timelineKey is the key whose timeline the report draws: the first
// illegal one, else the first with an anomaly.
func timelineKey(r *verify.Result) string {
	for _, k := range r.Report.Linearizability.Keys {
		if k.Verdict == check.Illegal {
			return k.Key
		}
	}
	for _, a := range r.Report.Anomalies {
		return a.Key
	}
	return ""
}

// timeline draws porcupine's timeline of r's first failing key, as an
// iframe whose srcdoc holds porcupine's whole document, so that the report
// stays one file. It returns the key and, when there is no picture, why.
func timeline(r *verify.Result, timeout time.Duration) (key, why string, frame template.HTML) {
	if r.History == nil {
		return "", "no history", ""
	}
	key = timelineKey(r)
	if key == "" {
		return "", "no key failed", ""
	}
	var doc bytes.Buffer
	if err := check.Visualize(&doc, r.History, key, &check.Options{VisualizeTimeout: timeout}); err != nil {
		return key, "porcupine could not draw it: " + err.Error(), ""
	}
	// No sandbox attribute: a sandboxed frame gets an opaque origin and,
	// in Chromium, a process of its own, which a screenshot or a printout
	// taken at load misses. The document is our own: porcupine's script
	// and data that json.Marshal escaped. Once loaded, the frame takes the
	// height of its drawing (within bounds), so that no row hides below
	// its edge.
	frame = template.HTML(`<iframe class="timeline" title="porcupine timeline of key ` +
		html.EscapeString(key) + `" onload="try{var h=+this.contentDocument.documentElement.dataset.height;if(h>0)this.style.height=Math.min(Math.max(h,200),900)+'px'}catch(e){}" srcdoc="` +
		html.EscapeString(doc.String()) + `"></iframe>`)
	return key, "", frame
}

// caption says, above the timeline, which operation fails and why, in
// words.
func caption(r *verify.Result, key string) (title, text string) {
	if key == "" {
		return "", ""
	}
	for _, ik := range illegalKeys(r) {
		if ik.Key != key {
			continue
		}
		title = fmt.Sprintf("Op %d is the first that no order explains", ik.OpID)
		if ik.Op != nil {
			title = fmt.Sprintf("Op %d (%s) is the first that no order explains", ik.OpID, opBrief(ik.Op))
		}
		return title + ": outlined in red below.", ik.Why
	}
	for _, a := range r.Report.Anomalies {
		if a.Key == key {
			return "Key " + key + " is linearizable as a whole, yet an explainer found a " + anomalyName(a.Kind) + ".", Plain(a.Explanation)
		}
	}
	return "", ""
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
