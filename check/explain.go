package check

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/memstore/memstore/history"
)

// AnomalyKind names a kind of violation the explainers recognise.
type AnomalyKind string

const (
	// StaleRead: a read returned a value (or "absent") that had certainly
	// been replaced before the read began, by a completed write or as shown
	// by another client's completed read.
	StaleRead AnomalyKind = "stale_read"
	// NeverWritten: a read returned a value that no operation wrote to its
	// key.
	NeverWritten AnomalyKind = "never_written"
	// FailedWriteRead: a read returned the value of a write that failed (or
	// of a CAS that reported a conflict), so certainly never took effect.
	FailedWriteRead AnomalyKind = "read_of_failed_write"
	// FutureRead: a read returned a value whose write began only after the
	// read had returned.
	FutureRead AnomalyKind = "future_read"
	// LostWrite: an acknowledged write whose value no read ever saw, although
	// a read that began after it, with no other write possibly in between,
	// saw something else.
	LostWrite AnomalyKind = "lost_write"
	// NonMonotonicRead: one client read a value, then later an older one.
	NonMonotonicRead AnomalyKind = "non_monotonic_read"
)

// Anomaly is one violation, with the operations that prove it (by ID) and a
// sentence that walks through them.
type Anomaly struct {
	Kind        AnomalyKind `json:"kind"`
	Key         string      `json:"key"`
	Ops         []int       `json:"ops"`
	Explanation string      `json:"explanation"`
}

// Explain runs the explainers on every key of h. It returns the anomalies
// listed (at most Options.MaxAnomaliesPerKey per key and kind) and the count
// of all anomalies found, by kind. h must be valid (see
// history.History.Validate). opts may be nil.
//
// The explainers are sound: each anomaly is a pattern that no linearizable
// history contains, so they never raise a false alarm. They are not
// complete: a history can be non-linearizable without any of these
// patterns; the linearizability search decides those.
func Explain(h *history.History, opts *Options) ([]Anomaly, map[AnomalyKind]int) {
	o := opts.withDefaults()
	keys, byKey := keyOps(h)
	writers := writersByValue(h)
	all := []Anomaly{}
	counts := make(map[AnomalyKind]int)
	for _, k := range keys {
		a, c := explainKey(k, byKey[k], writers, o.MaxAnomaliesPerKey)
		all = append(all, a...)
		for kind, n := range c {
			counts[kind] += n
		}
	}
	return all, counts
}

// writersByValue returns a function that maps each written value to the set
// and CAS ops that wrote it, on any key. The map is built on first use and
// the function is safe for concurrent use.
func writersByValue(h *history.History) func() map[string][]*history.Op {
	return sync.OnceValue(func() map[string][]*history.Op {
		w := make(map[string][]*history.Op)
		for i := range h.Ops {
			op := &h.Ops[i]
			if op.Kind == history.Set || op.Kind == history.CAS {
				w[op.Value] = append(w[op.Value], op)
			}
		}
		return w
	})
}

// evidence proves that a write (write) took effect no later than before:
// either the write itself completed then (read nil), or a read that
// completed then had returned its value.
type evidence struct {
	before int64
	write  *history.Op
	read   *history.Op
}

// evidenceIndex answers: among the evidence that completed before t, which
// proves the write that began latest?
type evidenceIndex struct {
	ev   []evidence
	best []int
}

func newEvidenceIndex(ev []evidence) evidenceIndex {
	slices.SortFunc(ev, func(a, b evidence) int { return cmp.Compare(a.before, b.before) })
	best := make([]int, len(ev))
	for i := range ev {
		best[i] = i
		if i > 0 && ev[best[i-1]].write.Call >= ev[i].write.Call {
			best[i] = best[i-1]
		}
	}
	return evidenceIndex{ev: ev, best: best}
}

func (x evidenceIndex) latest(t int64) (evidence, bool) {
	i := sort.Search(len(x.ev), func(i int) bool { return x.ev[i].before >= t }) - 1
	if i < 0 {
		return evidence{}, false
	}
	return x.ev[x.best[i]], true
}

// effective reports whether op is a write that certainly took effect.
func effective(op *history.Op) bool {
	return op.Kind.IsWrite() && op.Outcome == history.OK && !op.Conflict
}

type clientID [2]int

func clientOf(op *history.Op) clientID { return clientID{op.Process, op.Client} }

// explainKey finds the anomalies of one key. ops are the key's ops; writers
// maps values to their writers on every key (called only when a read
// returns a value never written to its key).
//
// Every rule below derives a contradiction from real-time order alone
// (a.Return < b.Call means a takes effect before b), so each is sound:
//
//   - A read of v needs v's write w1 (values are unique). It is never
//     written, failed or future if w1 is missing, certainly had no effect,
//     or began after the read returned.
//   - Stale: w1 completed, then a write w2 began and completed, then the read
//     began. w2 takes effect after w1 and before the read, so the read cannot
//     return v. The same holds when w2 is proven to precede the read by a
//     completed read r1 that returned w2's value.
//   - Absent: a present value's write s is proven to precede the read (it
//     completed, or a completed read saw its value), and no delete can take
//     effect between s and the read (every delete either returned before s
//     began or began after the read returned).
//
// A stale read whose newer write nobody ever saw is reported as a lost write;
// one proven by the same client's earlier read as a non-monotonic read.
func explainKey(key string, ops []*history.Op, writers func() map[string][]*history.Op, maxPerKind int) ([]Anomaly, map[AnomalyKind]int) {
	local := make(map[string]*history.Op) // value -> its writer on this key
	observed := make(map[string]bool)     // values some OK read returned
	var reads []*history.Op
	var writeEv, presentEv []evidence
	type del struct{ call, ret int64 }
	var dels []del
	for _, op := range ops {
		switch {
		case op.Kind == history.Set || op.Kind == history.CAS:
			local[op.Value] = op
		case op.Kind.IsRead() && op.Outcome == history.OK:
			reads = append(reads, op)
			if op.Found {
				observed[op.Out] = true
			}
		}
		if effective(op) {
			writeEv = append(writeEv, evidence{before: op.Return, write: op})
			if op.Kind != history.Delete {
				presentEv = append(presentEv, evidence{before: op.Return, write: op})
			}
		}
		if op.Kind == history.Delete && op.Outcome != history.Failed {
			ret := op.Return
			if op.Outcome == history.Unknown {
				ret = never
			}
			dels = append(dels, del{op.Call, ret})
		}
	}
	// Reads that prove their value's write took effect before they returned.
	var readEv []evidence
	byClient := make(map[clientID][]evidence)
	for _, r := range reads {
		if !r.Found {
			continue
		}
		w := local[r.Out]
		if w == nil || !(w.Outcome == history.OK && !w.Conflict || w.Outcome == history.Unknown) || w.Call > r.Return {
			continue
		}
		e := evidence{before: r.Return, write: w, read: r}
		readEv = append(readEv, e)
		byClient[clientOf(r)] = append(byClient[clientOf(r)], e)
	}
	writeIdx := newEvidenceIndex(writeEv)
	presentIdx := newEvidenceIndex(presentEv)
	readIdx := newEvidenceIndex(readEv)
	clientIdx := make(map[clientID]evidenceIndex, len(byClient))
	for c, ev := range byClient {
		clientIdx[c] = newEvidenceIndex(ev)
	}
	slices.SortFunc(dels, func(a, b del) int { return cmp.Compare(a.call, b.call) })
	delMaxRet := make([]int64, len(dels))
	for i, d := range dels {
		delMaxRet[i] = d.ret
		if i > 0 {
			delMaxRet[i] = max(delMaxRet[i], delMaxRet[i-1])
		}
	}
	// deleteBetween reports whether a delete can take effect after a write
	// that began at sCall and before a read that returned at rRet.
	deleteBetween := func(sCall, rRet int64) bool {
		i := sort.Search(len(dels), func(i int) bool { return dels[i].call > rRet }) - 1
		return i >= 0 && delMaxRet[i] >= sCall
	}

	var out []Anomaly
	counts := make(map[AnomalyKind]int)
	report := func(kind AnomalyKind, ids []int, format string, args ...any) {
		counts[kind]++
		if counts[kind] <= maxPerKind {
			out = append(out, Anomaly{Kind: kind, Key: key, Ops: ids, Explanation: fmt.Sprintf(format, args...)})
		}
	}
	slices.SortStableFunc(reads, func(a, b *history.Op) int { return cmp.Compare(a.Call, b.Call) })
	for _, r := range reads {
		if !r.Found {
			explainAbsent(r, presentIdx, readIdx, clientIdx[clientOf(r)], observed, deleteBetween, report)
			continue
		}
		w1 := local[r.Out]
		switch {
		case w1 == nil:
			elsewhere := ""
			for _, w := range writers()[r.Out] {
				elsewhere = fmt.Sprintf(" (op %d wrote it to key %q)", w.ID, w.Key)
				break
			}
			report(NeverWritten, []int{r.ID}, "op %d %s read %q, but no operation wrote %q to key %q%s",
				r.ID, opWords(r), r.Out, r.Out, key, elsewhere)
			continue
		case w1.Outcome == history.Failed:
			report(FailedWriteRead, []int{w1.ID, r.ID}, "op %d %s read %q, written by op %d %s, which failed and so certainly had no effect",
				r.ID, opWords(r), r.Out, w1.ID, opWords(w1))
			continue
		case w1.Conflict && w1.Outcome == history.OK:
			report(FailedWriteRead, []int{w1.ID, r.ID}, "op %d %s read %q, the new value of op %d %s, which reported a version conflict and wrote nothing",
				r.ID, opWords(r), r.Out, w1.ID, opWords(w1))
			continue
		case w1.Call > r.Return:
			report(FutureRead, []int{w1.ID, r.ID}, "op %d %s read %q, but op %d %s, which wrote it, began only after the read had returned",
				r.ID, opWords(r), r.Out, w1.ID, opWords(w1))
			continue
		case w1.Outcome != history.OK:
			continue // an unknown write may take effect at any time after its call
		}
		if e, ok := writeIdx.latest(r.Call); ok && e.write.Call > w1.Return {
			w2 := e.write
			if w2.Kind != history.Delete && !observed[w2.Value] {
				report(LostWrite, []int{w1.ID, w2.ID, r.ID}, "op %d %s was acknowledged but lost: no read ever saw %q, and op %d %s, which began after it returned, still read %q, written by op %d %s, which had completed before op %d began",
					w2.ID, opWords(w2), w2.Value, r.ID, opWords(r), r.Out, w1.ID, opWords(w1), w2.ID)
			} else {
				report(StaleRead, []int{w1.ID, w2.ID, r.ID}, "op %d %s read %q, written by op %d %s, but op %d %s had already replaced it: it began after op %d returned and completed before op %d began",
					r.ID, opWords(r), r.Out, w1.ID, opWords(w1), w2.ID, opWords(w2), w1.ID, r.ID)
			}
			continue
		}
		if e, ok := clientIdx[clientOf(r)].latest(r.Call); ok && e.write.Call > w1.Return {
			report(NonMonotonicRead, []int{w1.ID, e.write.ID, e.read.ID, r.ID}, "client %s read %q (written by op %d %s) in op %d %s, then the older %q (written by op %d %s, which completed before op %d began) in op %d %s",
				clientName(r), e.read.Out, e.write.ID, opWords(e.write), e.read.ID, opWords(e.read), r.Out, w1.ID, opWords(w1), e.write.ID, r.ID, opWords(r))
			continue
		}
		if e, ok := readIdx.latest(r.Call); ok && e.write.Call > w1.Return {
			report(StaleRead, []int{w1.ID, e.write.ID, e.read.ID, r.ID}, "op %d %s read %q, written by op %d %s, but op %d %s, which completed before op %d began, had already read %q, written by op %d %s after op %d completed",
				r.ID, opWords(r), r.Out, w1.ID, opWords(w1), e.read.ID, opWords(e.read), r.ID, e.read.Out, e.write.ID, opWords(e.write), w1.ID)
		}
	}
	slices.SortStableFunc(out, func(a, b Anomaly) int { return cmp.Compare(readOf(a), readOf(b)) })
	return out, counts
}

// explainAbsent looks for a present value's write that certainly took effect
// before read r, which found the key absent, with no delete able to come in
// between.
func explainAbsent(r *history.Op, presentIdx, readIdx, clientIdx evidenceIndex, observed map[string]bool,
	deleteBetween func(sCall, rRet int64) bool, report func(AnomalyKind, []int, string, ...any)) {
	// Try the strongest kind of proof first. Within each, the write that
	// began latest is the hardest for a delete to follow, so it is the one
	// to test.
	var e evidence
	found := false
	for _, idx := range []evidenceIndex{presentIdx, clientIdx, readIdx} {
		if c, ok := idx.latest(r.Call); ok && !deleteBetween(c.write.Call, r.Return) {
			e, found = c, true
			break
		}
	}
	if !found {
		return
	}
	s := e.write
	switch {
	case e.read == nil && !observed[s.Value]:
		report(LostWrite, []int{s.ID, r.ID}, "op %d %s was acknowledged but lost: no read ever saw %q, and op %d %s, which began after it returned, found the key absent although no delete could have come in between",
			s.ID, opWords(s), s.Value, r.ID, opWords(r))
	case e.read == nil:
		report(StaleRead, []int{s.ID, r.ID}, "op %d %s found the key absent, but op %d %s had completed before it began, and no delete could have come in between",
			r.ID, opWords(r), s.ID, opWords(s))
	case clientOf(e.read) == clientOf(r):
		report(NonMonotonicRead, []int{s.ID, e.read.ID, r.ID}, "client %s read %q (written by op %d %s) in op %d %s, then found the key absent in op %d %s, although no delete could have come in between",
			clientName(r), e.read.Out, s.ID, opWords(s), e.read.ID, opWords(e.read), r.ID, opWords(r))
	default:
		report(StaleRead, []int{s.ID, e.read.ID, r.ID}, "op %d %s found the key absent, but op %d %s, which completed before it began, had read %q, written by op %d %s, and no delete could have come in between",
			r.ID, opWords(r), e.read.ID, opWords(e.read), e.read.Out, s.ID, opWords(s))
	}
}

// readOf returns the ID of the read an anomaly is about: its last op.
func readOf(a Anomaly) int {
	if len(a.Ops) == 0 {
		return -1
	}
	return a.Ops[len(a.Ops)-1]
}

func clientName(op *history.Op) string {
	if op.Process != 0 {
		return fmt.Sprintf("%d/%d", op.Process, op.Client)
	}
	return fmt.Sprint(op.Client)
}

// opWords describes an op in a few words: "(client 3 set "v1", ok,
// 1ms–2ms)", "(client 4 get → "v1", 2ms–3ms)".
func opWords(op *history.Op) string {
	what := string(op.Kind)
	switch {
	case op.Kind.IsRead() && op.Outcome == history.OK && op.Found:
		what += fmt.Sprintf(" → %q", op.Out)
	case op.Kind.IsRead() && op.Outcome == history.OK:
		what += " → absent"
	}
	switch op.Kind {
	case history.Set:
		what = fmt.Sprintf("set %q", op.Value)
	case history.CAS:
		exp := "absent"
		if op.ExpectFound {
			exp = fmt.Sprintf("%q", op.Expect)
		}
		what = fmt.Sprintf("cas %s→%q", exp, op.Value)
	}
	if op.Final {
		what = "final " + what
	}
	outcome := ""
	if op.Outcome != history.OK {
		outcome = ", " + string(op.Outcome)
	}
	return fmt.Sprintf("(client %s %s%s, %v–%v)", clientName(op), what, outcome, opTime(op.Call), opTime(op.Return))
}

// opTime shows an operation's time since the run began: to the microsecond
// once past a millisecond (a real run's nanoseconds are noise), exactly
// below it.
func opTime(ns int64) time.Duration {
	d := time.Duration(ns)
	if d >= time.Millisecond {
		return d.Round(time.Microsecond)
	}
	return d
}

// coreBudget bounds the search for the smallest set of operations that
// cannot be ordered, per key.
const coreBudget = 2 * time.Second

// unorderable finds, for a key whose history no order explains and no
// explainer names, a small set of its operations that alone cannot be
// ordered: a subhistory that is itself not linearizable, from which no
// operation can be dropped without it becoming linearizable (when the
// budget lets the search finish: minimal is then true). It is the
// counterpart of porcupine's partial linearizations and Knossos' final
// paths: what a person needs to see the contradiction.
//
// Dropping an operation must keep the subhistory an honest witness: every
// linearization of the whole history must give one of the subhistory. So a
// read may go alone, a set only with every read of its value, and a delete
// only with every read that found the key absent; with CAS operations in
// the key only reads are dropped. Failed operations, and reads that
// returned no information, are dropped first (the search ignores them).
func unorderable(ops []*history.Op, o *Options) (core []*history.Op, minimal bool) {
	var keep []*history.Op
	hasCAS := false
	for _, op := range ops {
		switch {
		case op.Kind.IsRead() && op.Outcome != history.OK:
		case op.Kind.IsWrite() && op.Outcome == history.Failed:
		default:
			keep = append(keep, op)
			hasCAS = hasCAS || op.Kind == history.CAS
		}
	}
	deadline := time.Now().Add(min(coreBudget, o.Timeout))
	illegal := func(sub []*history.Op) bool {
		km := prepare(sub)
		lim := o.limits(false)
		lim.deadline = deadline
		return linearize(&km, lim).verdict == Illegal
	}
	if !illegal(keep) {
		return nil, false
	}
	// closure is what must go with op.
	closure := func(set []*history.Op, op *history.Op) map[*history.Op]bool {
		out := map[*history.Op]bool{op: true}
		switch {
		case op.Kind.IsRead():
		case hasCAS:
			return nil
		case op.Kind == history.Set:
			for _, r := range set {
				if r.Kind.IsRead() && r.Found && r.Out == op.Value {
					out[r] = true
				}
			}
		case op.Kind == history.Delete:
			for _, r := range set {
				if r.Kind.IsRead() && !r.Found {
					out[r] = true
				}
			}
		}
		return out
	}
	without := func(set []*history.Op, drop map[*history.Op]bool) []*history.Op {
		out := make([]*history.Op, 0, len(set))
		for _, op := range set {
			if !drop[op] {
				out = append(out, op)
			}
		}
		return out
	}
	// Delta debugging: drop chunks, halving their size down to one op,
	// keeping every drop after which the rest is still illegal.
	for chunk := max(len(keep)/2, 1); ; chunk = max(chunk/2, 1) {
		for i := 0; i < len(keep); {
			if time.Now().After(deadline) {
				return keep, false
			}
			drop := make(map[*history.Op]bool)
			ok := true
			for _, op := range keep[i:min(i+chunk, len(keep))] {
				c := closure(keep, op)
				if c == nil {
					ok = false
					break
				}
				for x := range c {
					drop[x] = true
				}
			}
			if ok {
				if rest := without(keep, drop); len(rest) < len(keep) && illegal(rest) {
					keep = rest
					continue // the same i is now the next chunk
				}
			}
			i += chunk
		}
		if chunk == 1 {
			return keep, !time.Now().After(deadline)
		}
	}
}

// explainUnorderable words a key's unorderable core for a KeyResult.
func explainUnorderable(ops []*history.Op, o *Options) (ids []int, text string) {
	core, minimal := unorderable(ops, o)
	if len(core) == 0 {
		return nil, ""
	}
	sorted := slices.Clone(core)
	slices.SortFunc(sorted, func(a, b *history.Op) int { return cmp.Compare(a.Call, b.Call) })
	var b strings.Builder
	if minimal {
		fmt.Fprintf(&b, "these %d operations cannot be ordered, and each is needed for that:", len(sorted))
	} else {
		fmt.Fprintf(&b, "these %d operations cannot be ordered (the search for fewer ran out of time):", len(sorted))
	}
	for _, op := range sorted {
		ids = append(ids, op.ID)
		fmt.Fprintf(&b, " op %d %s;", op.ID, opWords(op))
	}
	text = strings.TrimSuffix(b.String(), ";")
	text += ". No order of them, each placed between its call and its return, lets every read return what it did"
	return ids, text
}

// stepKey indexes a history's step events by key and client.
type stepKey struct {
	key    string
	client int
}

func stepIndex(h *history.History) map[stepKey][]history.Event {
	idx := make(map[stepKey][]history.Event)
	for _, ev := range h.Events {
		if ev.Kind != history.Step {
			continue
		}
		var client int
		var key string
		if n, _ := fmt.Sscanf(ev.Detail, "client %d key %s", &client, &key); n != 2 {
			continue
		}
		k := stepKey{key, client}
		idx[k] = append(idx[k], ev)
	}
	for _, evs := range idx {
		slices.SortFunc(evs, func(a, b history.Event) int { return cmp.Compare(a.Start, b.Start) })
	}
	return idx
}

// stepsOf returns op's step events: those of its client and key within its
// interval (a client makes one call at a time). Only the engine's own
// process records steps.
func stepsOf(idx map[stepKey][]history.Event, op *history.Op) []history.Event {
	if op.Process != 0 {
		return nil
	}
	var out []history.Event
	for _, ev := range idx[stepKey{op.Key, op.Client}] {
		if ev.Start >= op.Call && ev.End <= op.Return {
			out = append(out, ev)
		}
	}
	return out
}

func firstStep(evs []history.Event, after int64, names ...string) (history.Event, bool) {
	for _, ev := range evs {
		if ev.Start >= after && slices.Contains(names, ev.Name) {
			return ev, true
		}
	}
	return history.Event{}, false
}

func lastStep(evs []history.Event, names ...string) (history.Event, bool) {
	for i := len(evs) - 1; i >= 0; i-- {
		if slices.Contains(names, evs[i].Name) {
			return evs[i], true
		}
	}
	return history.Event{}, false
}

// Step names as the stores' hooks report them (memstore.Step; check does
// not import the store).
var (
	stepLoad  = []string{"db.load"}
	stepWrite = []string{"db.write"}
	stepFill  = []string{"redis.fill", "redis.set"}
	stepInval = []string{"redis.del", "redis.begin", "redis.end"}
)

// annotateMechanisms names, where the history holds step events, how the
// stale value of each stale read or lost write got into the cache: a fill
// that read the DB before the newer write committed, and landed after that
// write's invalidation.
func annotateMechanisms(h *history.History, anoms []Anomaly) {
	idx := stepIndex(h)
	if len(idx) == 0 {
		return
	}
	for i := range anoms {
		a := &anoms[i]
		if (a.Kind != StaleRead && a.Kind != LostWrite) || len(a.Ops) < 3 {
			continue
		}
		r, w2 := &h.Ops[a.Ops[len(a.Ops)-1]], &h.Ops[a.Ops[1]]
		if m := fillMechanism(h, idx, r, w2); m != "" {
			a.Explanation += ". How: " + m
		}
	}
}

// fillMechanism finds the fill that put r's stale value back in the cache
// after w2 invalidated it, and words it; "" if the steps show none.
func fillMechanism(h *history.History, idx map[stepKey][]history.Event, r, w2 *history.Op) string {
	if !r.Found || !w2.Kind.IsWrite() {
		return ""
	}
	wsteps := stepsOf(idx, w2)
	commit, ok1 := lastStep(wsteps, stepWrite...)
	inval, ok2 := lastStep(wsteps, stepInval...)
	if !ok1 || !ok2 {
		return ""
	}
	var best string
	var bestFill int64 = -1
	for i := range h.Ops {
		f := &h.Ops[i]
		if f.Key != r.Key || f.Kind != history.Get || f.Outcome != history.OK || !f.Found || f.Out != r.Out || f.Call > r.Return {
			continue
		}
		fsteps := stepsOf(idx, f)
		load, ok := firstStep(fsteps, f.Call, stepLoad...)
		if !ok {
			continue
		}
		fill, ok := firstStep(fsteps, load.End, stepFill...)
		if !ok || load.Start >= commit.End || fill.End <= inval.End || fill.Start > r.Return || fill.End <= bestFill {
			continue
		}
		bestFill = fill.End
		d := func(t int64) time.Duration { return time.Duration(t) }
		best = fmt.Sprintf("op %d %s read the DB at %v, before op %d %s committed (its DB write ended at %v), and its cache fill landed at %v, after op %d's invalidation (%s, ended at %v): the fill put the old value %q back in the cache, where op %d found it",
			f.ID, opWords(f), d(load.Start), w2.ID, opWords(w2), d(commit.End), d(fill.End), w2.ID, inval.Name, d(inval.End), r.Out, r.ID)
	}
	return best
}
