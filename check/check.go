package check

import (
	"fmt"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/memstore/memstore/history"
)

// Verdict is the result of a check. Unknown is inconclusive: it is never a
// pass.
type Verdict string

const (
	Ok      Verdict = "ok"      // the check held
	Illegal Verdict = "illegal" // the check found a violation
	Unknown Verdict = "unknown" // the check could not decide (see Cause)
)

// rank orders verdicts from best to worst.
func (v Verdict) rank() int {
	switch v {
	case Ok:
		return 0
	case Unknown:
		return 1
	default:
		return 2
	}
}

// worse returns the worse of two verdicts: Illegal, then Unknown, then Ok.
func worse(a, b Verdict) Verdict {
	if b.rank() > a.rank() {
		return b
	}
	return a
}

// Cause says why a key's linearizability verdict is Unknown.
type Cause string

const (
	CauseTimeout     Cause = "timeout"     // Options.Timeout ran out
	CauseConfigs     Cause = "configs"     // Options.MaxConfigs: the memory bound
	CauseSteps       Cause = "steps"       // Options.MaxSteps: the work bound
	CauseConcurrency Cause = "concurrency" // Options.MaxConcurrency
)

// Defaults of Options.
const (
	DefaultTimeout            = time.Minute
	DefaultMaxConfigs         = 1 << 19
	DefaultMaxSteps           = 1 << 28
	DefaultMaxConcurrency     = 64
	DefaultMaxAnomaliesPerKey = 10
	DefaultMaxColdLoads       = 1
	DefaultVisualizeTimeout   = 5 * time.Second
)

// DefaultPolarisDeltas are the Δt at which Polaris reports when
// Options.PolarisDeltas is nil.
var DefaultPolarisDeltas = []time.Duration{0, time.Millisecond, 10 * time.Millisecond, 100 * time.Millisecond, time.Second}

// Options configure the checks. The zero value (or a nil *Options) uses the
// defaults documented on each field.
type Options struct {
	// Timeout bounds the linearizability search of one key in wall-clock
	// time. Default DefaultTimeout (1 minute).
	Timeout time.Duration
	// MaxConfigs bounds the memory of one key's search: the number of
	// configurations it may hold at once. Each costs up to about 200 bytes
	// of heap (map overhead and garbage included; measured), and each
	// worker searches one key at a time, so the searches need at most about
	// Workers × MaxConfigs × 200 bytes. Default DefaultMaxConfigs (2^19,
	// some 100 MiB per worker).
	MaxConfigs int
	// MaxSteps bounds the work of one key's search, in configurations
	// visited (about a microsecond each). Default DefaultMaxSteps (2^28;
	// the default Timeout usually ends a search first).
	MaxSteps int64
	// MaxConcurrency bounds how many operations on one key may be pending
	// at once (unknown writes that may still apply count as pending). At
	// most 64, the default.
	MaxConcurrency int
	// Workers is the number of keys checked in parallel. Default
	// runtime.GOMAXPROCS(0).
	Workers int
	// MaxAnomaliesPerKey caps the anomalies listed per key and kind;
	// Summary.Anomalies still counts them all. Default 10.
	MaxAnomaliesPerKey int
	// PolarisDeltas are the Δt at which the Polaris figure is computed.
	// Default DefaultPolarisDeltas.
	PolarisDeltas []time.Duration
	// VisualizeTimeout bounds porcupine's search in Visualize, which draws
	// whatever it found by then. Porcupine's memory grows with its search
	// (on the order of 10 MB a second on a hot key), so keep this short.
	// Default DefaultVisualizeTimeout (5s).
	VisualizeTimeout time.Duration

	// Snapshot is the per-key state of cache and DB gathered after heal.
	// Nil: convergence is not checked; non-nil (even empty): it is.
	Snapshot []KeySnapshot
	// ColdKeys and Loads feed the stampede check: DB loads counted per key
	// during a phase in which the keys were cold. Nil ColdKeys: not checked.
	ColdKeys []string
	Loads    map[string]int
	// MaxColdLoads is the number of DB loads per cold key that the stampede
	// check allows. Default 1: exactly one rebuild per cold key.
	MaxColdLoads int

	now func() time.Time // tests: the clock the timeout reads
}

func (o *Options) withDefaults() Options {
	var r Options
	if o != nil {
		r = *o
	}
	if r.Timeout <= 0 {
		r.Timeout = DefaultTimeout
	}
	if r.MaxConfigs <= 0 {
		r.MaxConfigs = DefaultMaxConfigs
	}
	if r.MaxSteps <= 0 {
		r.MaxSteps = DefaultMaxSteps
	}
	if r.MaxConcurrency <= 0 || r.MaxConcurrency > DefaultMaxConcurrency {
		r.MaxConcurrency = DefaultMaxConcurrency
	}
	if r.Workers <= 0 {
		r.Workers = runtime.GOMAXPROCS(0)
	}
	if r.MaxAnomaliesPerKey <= 0 {
		r.MaxAnomaliesPerKey = DefaultMaxAnomaliesPerKey
	}
	if r.PolarisDeltas == nil {
		r.PolarisDeltas = DefaultPolarisDeltas
	}
	if r.VisualizeTimeout <= 0 {
		r.VisualizeTimeout = DefaultVisualizeTimeout
	}
	if r.MaxColdLoads <= 0 {
		r.MaxColdLoads = DefaultMaxColdLoads
	}
	if r.now == nil {
		r.now = time.Now
	}
	return r
}

func (o *Options) limits(wantCutInfo bool) limits {
	return limits{
		maxConfigs:  o.MaxConfigs,
		maxSteps:    o.MaxSteps,
		maxPending:  o.MaxConcurrency,
		deadline:    o.now().Add(o.Timeout),
		now:         o.now,
		wantCutInfo: wantCutInfo,
	}
}

// KeyResult is the linearizability verdict for one key.
type KeyResult struct {
	Key     string  `json:"key"`
	Verdict Verdict `json:"verdict"`
	// Cause and Reason say why the verdict is Unknown; for Illegal, Reason
	// names the operation that no order could explain.
	Cause  Cause  `json:"cause,omitempty"`
	Reason string `json:"reason,omitempty"`
	// FailedOp is the ID of that operation (Illegal only).
	FailedOp *int `json:"failed_op,omitempty"`
	// Ops counts the key's operations; Checked those the search used (it
	// drops failed writes, failed and unknown reads, and unknown writes that
	// nobody observed).
	Ops     int `json:"ops"`
	Checked int `json:"checked"`
	// MaxConcurrency is the most operations pending at once; Segments the
	// number of quiescent points (nothing pending) the history went through.
	MaxConcurrency int `json:"max_concurrency"`
	Segments       int `json:"segments"`
	// PeakConfigs is the most configurations the search held at once, never
	// more than Options.MaxConfigs; Steps the configurations it visited.
	PeakConfigs int   `json:"peak_configs"`
	Steps       int64 `json:"steps"`
	// Elapsed is the search's wall-clock time.
	Elapsed time.Duration `json:"elapsed_ns"`
	// Anomalies counts the explainers' findings on the key (filled in by
	// All).
	Anomalies int `json:"anomalies"`
	// Culprits are, for an Illegal key no explainer explains, the IDs of a
	// smallest set of its operations that cannot be ordered (All; Reason
	// walks through them).
	Culprits []int `json:"culprits,omitempty"`
}

// LinearizabilityResult is the per-key linearizability check of a history.
type LinearizabilityResult struct {
	// Verdict is Illegal if any key is, else Unknown if any key is, else Ok.
	Verdict Verdict `json:"verdict"`
	// Keys holds one result per key, sorted by key.
	Keys []KeyResult `json:"keys"`
}

// Split returns the keys that are Illegal and those that are Unknown, each
// in key order: what every summary of the check names first.
func (r LinearizabilityResult) Split() (illegal, unknown []KeyResult) {
	for _, k := range r.Keys {
		switch k.Verdict {
		case Illegal:
			illegal = append(illegal, k)
		case Unknown:
			unknown = append(unknown, k)
		}
	}
	return illegal, unknown
}

// Report is everything All found. It marshals to JSON with stable field
// names.
type Report struct {
	// Verdict is the worst verdict of the checks that ran: Illegal if any
	// found a violation, else Unknown if any was inconclusive, else Ok.
	Verdict Verdict `json:"verdict"`
	// Invalid says why the history could not be checked at all (the
	// verdict is then Unknown).
	Invalid string `json:"invalid,omitempty"`
	Store   string `json:"store,omitempty"`
	Seed    int64  `json:"seed"`

	Summary         Summary               `json:"summary"`
	Linearizability LinearizabilityResult `json:"linearizability"`
	// Anomalies are violations named by the explainers, by key, then by the
	// first op involved.
	Anomalies   []Anomaly          `json:"anomalies"`
	Polaris     PolarisResult      `json:"polaris"`
	Convergence *ConvergenceResult `json:"convergence,omitempty"`
	Stampede    *StampedeResult    `json:"stampede,omitempty"`
}

// Summary counts what the history holds and what the checks found.
type Summary struct {
	Ops      int                     `json:"ops"`
	Keys     int                     `json:"keys"`
	Clients  int                     `json:"clients"`
	Outcomes map[history.Outcome]int `json:"outcomes"`
	Kinds    map[history.Kind]int    `json:"kinds"`
	Faults   int                     `json:"faults"`
	// Duration is the span from the first call to the last return.
	Duration time.Duration `json:"duration_ns"`
	// KeyVerdicts counts keys by linearizability verdict.
	KeyVerdicts map[Verdict]int `json:"key_verdicts"`
	// Anomalies counts every anomaly found, by kind (also those not listed
	// because of Options.MaxAnomaliesPerKey).
	Anomalies map[AnomalyKind]int `json:"anomalies"`
}

// keyOps groups a history's ops by key, each group in ID order, and returns
// the keys sorted.
func keyOps(h *history.History) ([]string, map[string][]*history.Op) {
	byKey := make(map[string][]*history.Op)
	for i := range h.Ops {
		op := &h.Ops[i]
		byKey[op.Key] = append(byKey[op.Key], op)
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys, byKey
}

// checkKey runs the linearizability search for one key.
func checkKey(key string, ops []*history.Op, o *Options) (KeyResult, *keyModel, linResult) {
	start := time.Now()
	km := prepare(ops)
	lr := linearize(&km, o.limits(false))
	if lr.verdict == Illegal {
		lr = blame(&km, lr, o.limits(false))
	}
	kr := KeyResult{
		Key:            key,
		Verdict:        lr.verdict,
		Cause:          lr.cause,
		Reason:         lr.reason,
		Ops:            len(ops),
		Checked:        len(km.ops),
		MaxConcurrency: lr.maxPend,
		Segments:       lr.segments,
		PeakConfigs:    lr.peak,
		Steps:          lr.steps,
		Elapsed:        time.Since(start),
	}
	if lr.verdict == Illegal {
		id := km.ops[lr.failed].id
		kr.FailedOp = &id
		kr.Reason = fmt.Sprintf("no linearization exists: none explains op %d %s", id, describe(ops, id))
		if m := km.ops[lr.failed]; lr.lookahead && m.kind != mRead && m.kind != mConflict {
			kr.Reason += " without hiding a value that a later operation must see"
		}
	}
	return kr, &km, lr
}

// blame finds the operation to name for an Illegal key. The search looks
// ahead (it will not let a write hide a value that a later read needs), so
// it notices a violation at the write; searching again without looking
// ahead fails at the read that misses the value, which is the one a person
// wants named. The second search is bounded like the first; if it cannot
// finish, the first result stands.
func blame(km *keyModel, first linResult, lim limits) linResult {
	lim.noLookahead = true
	if r := linearize(km, lim); r.verdict == Illegal {
		r.steps += first.steps
		r.peak = max(r.peak, first.peak)
		return r
	}
	return first
}

// describe names op id of ops in a few words.
func describe(ops []*history.Op, id int) string {
	for _, op := range ops {
		if op.ID == id {
			return opWords(op)
		}
	}
	return ""
}

// Linearizability checks every key of h for linearizability of a register,
// in parallel, each within the bounds of opts. h must be valid (see
// history.History.Validate; All checks that first). opts may be nil.
func Linearizability(h *history.History, opts *Options) LinearizabilityResult {
	o := opts.withDefaults()
	keys, byKey := keyOps(h)
	res := LinearizabilityResult{Verdict: Ok, Keys: make([]KeyResult, len(keys))}
	parallel(len(keys), o.Workers, func(i int) {
		res.Keys[i], _, _ = checkKey(keys[i], byKey[keys[i]], &o)
	})
	for _, kr := range res.Keys {
		res.Verdict = worse(res.Verdict, kr.Verdict)
	}
	return res
}

// parallel runs f(0..n-1) on up to workers goroutines.
func parallel(n, workers int, f func(i int)) {
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < min(workers, n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f(i)
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
}

// All runs every check on h: per-key linearizability within the bounds of
// opts, the explainers, the Polaris figure, and, when opts carries their
// inputs, convergence and stampede. opts may be nil.
//
// The explainers are sound, so a key in which they find an anomaly is
// Illegal even when the search was inconclusive.
func All(h *history.History, opts *Options) *Report {
	o := opts.withDefaults()
	r := &Report{
		Verdict:   Ok,
		Store:     h.Header.Store,
		Seed:      h.Header.Seed,
		Anomalies: []Anomaly{},
		Summary:   summarize(h),
		Linearizability: LinearizabilityResult{
			Verdict: Ok,
			Keys:    []KeyResult{},
		},
	}
	if err := h.Validate(); err != nil {
		r.Verdict = Unknown
		r.Invalid = err.Error()
		return r
	}
	keys, byKey := keyOps(h)
	writers := writersByValue(h)
	type keyOut struct {
		kr     KeyResult
		anoms  []Anomaly
		counts map[AnomalyKind]int
		pol    []writeLag
	}
	outs := make([]keyOut, len(keys))
	parallel(len(keys), o.Workers, func(i int) {
		ops := byKey[keys[i]]
		kr, _, _ := checkKey(keys[i], ops, &o)
		anoms, counts := explainKey(keys[i], ops, writers, o.MaxAnomaliesPerKey)
		reconcile(&kr, counts)
		if kr.Verdict == Illegal && kr.Anomalies == 0 {
			// No explainer names the culprits: show the operations
			// that cannot be ordered.
			var text string
			if kr.Culprits, text = explainUnorderable(ops, &o); text != "" {
				kr.Reason += "; " + text
			}
		}
		outs[i] = keyOut{kr: kr, anoms: anoms, counts: counts, pol: polarisKey(ops)}
	})
	var lags []writeLag
	r.Linearizability.Keys = make([]KeyResult, len(keys))
	for i, out := range outs {
		r.Linearizability.Keys[i] = out.kr
		r.Linearizability.Verdict = worse(r.Linearizability.Verdict, out.kr.Verdict)
		r.Summary.KeyVerdicts[out.kr.Verdict]++
		r.Anomalies = append(r.Anomalies, out.anoms...)
		for k, n := range out.counts {
			r.Summary.Anomalies[k] += n
		}
		lags = append(lags, out.pol...)
	}
	annotateMechanisms(h, r.Anomalies)
	r.Polaris = polarisFrom(lags, o.PolarisDeltas)
	r.Verdict = worse(r.Verdict, r.Linearizability.Verdict)
	if len(r.Anomalies) > 0 {
		r.Verdict = Illegal
	}
	if o.Snapshot != nil {
		c := Convergence(o.Snapshot)
		r.Convergence = &c
		r.Verdict = worse(r.Verdict, c.Verdict)
	}
	if o.ColdKeys != nil {
		s := stampede(o.Loads, o.ColdKeys, o.MaxColdLoads)
		r.Stampede = &s
		r.Verdict = worse(r.Verdict, s.Verdict)
	}
	return r
}

// reconcile folds the explainers' findings into a key's verdict. They are
// sound, so an anomaly proves the key Illegal. The search and the
// explainers should never disagree the other way; if they do, the key is
// Illegal and the reason says so, so that the bug gets reported.
func reconcile(kr *KeyResult, counts map[AnomalyKind]int) {
	n := 0
	for _, c := range counts {
		n += c
	}
	kr.Anomalies = n
	if n == 0 {
		return
	}
	switch kr.Verdict {
	case Unknown:
		kr.Reason = fmt.Sprintf("%s; the explainers prove a violation (%d anomalies)", kr.Reason, n)
		kr.Verdict, kr.Cause = Illegal, ""
	case Ok:
		kr.Verdict = Illegal
		kr.Reason = fmt.Sprintf("the explainers found %d anomalies although the search found a linearization: a checker bug, please report it", n)
	}
}

func summarize(h *history.History) Summary {
	s := Summary{
		Ops:         len(h.Ops),
		Outcomes:    make(map[history.Outcome]int),
		Kinds:       make(map[history.Kind]int),
		KeyVerdicts: make(map[Verdict]int),
		Anomalies:   make(map[AnomalyKind]int),
	}
	keys := make(map[string]bool)
	clients := make(map[[2]int]bool)
	var first, last int64
	for i, op := range h.Ops {
		keys[op.Key] = true
		clients[[2]int{op.Process, op.Client}] = true
		s.Outcomes[op.Outcome]++
		s.Kinds[op.Kind]++
		if i == 0 || op.Call < first {
			first = op.Call
		}
		last = max(last, op.Return)
	}
	s.Keys, s.Clients = len(keys), len(clients)
	if len(h.Ops) > 0 {
		s.Duration = time.Duration(last - first)
	}
	for _, ev := range h.Events {
		if ev.Kind == history.Fault {
			s.Faults++
		}
	}
	return s
}
