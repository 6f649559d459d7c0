package report

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/memstore/memstore/check"
	"github.com/memstore/memstore/history"
	"github.com/memstore/memstore/verify"
)

// CheckName is the name a person reads for a check that fired, as
// verify.Result.Fired names it: "linearizability", "stale reads",
// "lost writes", "convergence" ...
func CheckName(c string) string {
	if n, ok := anomalyNames[check.AnomalyKind(c)]; ok {
		return n
	}
	return strings.ReplaceAll(c, "_", " ")
}

// plainWords rewrites what the library says in its own terms (its Config
// fields, its packages) into what a user of the command reads.
var plainWords = strings.NewReplacer(
	"no worker processes (Config.Processes is 0)", "it needs worker processes (memstore check --processes N)",
	"(Config.Redis from memtest, or no Redis at all)", "(the default; not with --redis)",
	"Config.Outcome applies in this process only", "custom outcome rules apply in this process only",
	"worker processes classify errors with DefaultOutcome", "worker processes classify errors the default way",
	"(MEMSTORE_REDIS_URL)", "",
)

// internalName matches what must not reach a person: a Config field, a
// package-qualified Go name.
var internalName = regexp.MustCompile(`\b(Config|Options|memtest|verify|check|strategies)\.[A-Z]\w*`)

// Plain is s as the report shows it: library terms replaced by the
// command's, times to a readable precision (see Times).
func Plain(s string) string {
	s = plainWords.Replace(s)
	s = internalName.ReplaceAllStringFunc(s, func(m string) string {
		_, name, _ := strings.Cut(m, ".")
		return name
	})
	return Times(s)
}

// goDuration matches a time.Duration as %v writes it: 1.100898421s,
// 266.77916ms, 950µs, 2m3.5s.
var goDuration = regexp.MustCompile(`\b(?:\d+h)?(?:\d+m)?\d+(?:\.\d+)?(?:ns|µs|us|ms|s)\b|\b\d+h\d+m\b`)

// overPrecise matches the fraction of a duration printed to the nanosecond.
var overPrecise = regexp.MustCompile(`\.\d{3,}`)

// Times rewrites the times of the history that the checker's sentences
// print to the nanosecond ("(client 4 set "c4-202", 1.086074739s–1.091013932s)")
// as seconds to a tenth of a millisecond ("1.0861s–1.0910s"): enough to
// see which operation came first, no more. Text inside double quotes (the
// values) is left as it is.
func Times(s string) string {
	if !strings.ContainsAny(s, "0123456789") {
		return s
	}
	var b strings.Builder
	quoted := false
	start := 0
	flush := func(end int) {
		seg := s[start:end]
		if !quoted {
			seg = goDuration.ReplaceAllStringFunc(seg, func(m string) string {
				if !overPrecise.MatchString(m) {
					return m // 10s, 1m0s, 1.5ms: a duration someone chose
				}
				d, err := time.ParseDuration(strings.Replace(m, "us", "µs", 1))
				if err != nil {
					return m
				}
				return timeText(int64(d))
			})
		}
		b.WriteString(seg)
		start = end
	}
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++ // an escaped character inside a %q value
		case '"':
			if quoted {
				flush(i + 1)
			} else {
				flush(i)
			}
			quoted = !quoted
		}
	}
	flush(len(s))
	return b.String()
}

// timeText writes a time of the history (ns since its start) in seconds
// to a tenth of a millisecond: 0.2668s, 1.0861s.
func timeText(ns int64) string {
	return strconv.FormatFloat(float64(ns)/1e9, 'f', 4, 64) + "s"
}

// FaultFailures splits the operations of r that failed or ended unknown
// (final reads included) into those that overlapped a fault window, which
// the faults are there to cause, and the others: real errors. In an
// interrupted run, the calls that the interruption itself cancelled are
// neither. ok is false without a history.
func FaultFailures(r *verify.Result) (inFaults, other int, ok bool) {
	if r.History == nil {
		return 0, 0, false
	}
	for i := range r.History.Ops {
		op := &r.History.Ops[i]
		if op.Outcome == history.OK || r.Interrupted && strings.Contains(op.Err, context.Canceled.Error()) {
			continue
		}
		if faultDuring(r, op) != "" {
			inFaults++
		} else {
			other++
		}
	}
	return inFaults, other, true
}

// illegalKey is one key no order explains, with the operation the search
// could not place and what explains it.
type illegalKey struct {
	Key    string
	Op     *history.Op // nil without a history
	OpID   int
	Reason string // the checker's
	// Why says in words why no order explains Op: an explainer's anomaly
	// that ends in it, or, when none does, what the history shows.
	Why string
	// Explained is true when an explainer named the operation.
	Explained bool
}

// illegalKeys lists r's illegal keys, each with why.
func illegalKeys(r *verify.Result) []illegalKey {
	var out []illegalKey
	illegal, _ := r.Report.Linearizability.Split()
	for _, k := range illegal {
		ik := illegalKey{Key: k.Key, OpID: -1, Reason: k.Reason}
		if k.FailedOp != nil {
			ik.OpID = *k.FailedOp
			if h := r.History; h != nil && ik.OpID >= 0 && ik.OpID < len(h.Ops) {
				ik.Op = &h.Ops[ik.OpID]
			}
		}
		for _, a := range r.Report.Anomalies {
			if a.Key == k.Key && len(a.Ops) > 0 && a.Ops[len(a.Ops)-1] == ik.OpID {
				ik.Why, ik.Explained = Plain(a.Explanation), true
				break
			}
		}
		if ik.Why == "" {
			ik.Why = unexplained(r.History, k.Key, ik.Op)
		}
		out = append(out, ik)
	}
	return out
}

// unexplained says in words what the history shows about op, which no
// order of its key's operations explains and no explainer names: the read
// of a value after a read of a newer one, when that is what happened, or
// else the write of its value and the last writes before it began.
func unexplained(h *history.History, key string, op *history.Op) string {
	if op == nil {
		return "No order of the operations on key " + strconv.Quote(key) + " explains all of them; none of the explainers' patterns fits, so the timeline below is the evidence."
	}
	var ops []*history.Op
	for i := range h.Ops {
		if o := &h.Ops[i]; o.Key == key {
			ops = append(ops, o)
		}
	}
	head := fmt.Sprintf("No order of the operations on key %q lets op %d (%s) %s", key, op.ID, opBrief(op), effect(op))
	if !op.Kind.IsRead() || !op.Found {
		return head + ". " + lastWrites(ops, op) + "None of the explainers' patterns fits; the timeline below is the evidence."
	}
	v := op.Out
	w := writerOf(ops, v)
	// A read of v that returned before a read of u began, which returned
	// before op began: the register held v, then u, and op found v again,
	// though each value is written once.
	for _, a := range ops {
		if !a.Kind.IsRead() || a.Outcome != history.OK || !a.Found || a.Out != v || a.ID == op.ID || a.Return >= op.Call {
			continue
		}
		for _, b := range ops {
			if !b.Kind.IsRead() || b.Outcome != history.OK || b.Out == v || b.Call <= a.Return || b.Return >= op.Call {
				continue
			}
			u := "found the key absent"
			if b.Found {
				u = fmt.Sprintf("returned %q", b.Out)
				if wb := writerOf(ops, b.Out); wb != nil {
					u += fmt.Sprintf(" (written by op %d, %s)", wb.ID, opBrief(wb))
				}
			}
			s := head + fmt.Sprintf(". Op %d (%s) had returned %q before op %d (%s) began, which %s and itself returned before op %d began. ",
				a.ID, opBrief(a), v, b.ID, opBrief(b), u, op.ID)
			if w != nil {
				s += fmt.Sprintf("%q was written once, by op %d (%s), ", v, w.ID, opBrief(w))
			} else {
				s += fmt.Sprintf("%q was written once, ", v)
			}
			return s + "so once another state had been read after it, no read could return it again."
		}
	}
	s := head + ". "
	if w != nil {
		s += fmt.Sprintf("%q was written by op %d (%s). ", v, w.ID, opBrief(w))
	}
	return s + lastWrites(ops, op) + "None of the explainers' patterns fits; the timeline below is the evidence."
}

func effect(op *history.Op) string {
	switch {
	case op.Kind.IsRead() && op.Found:
		return fmt.Sprintf("return %q", op.Out)
	case op.Kind.IsRead():
		return "find the key absent"
	}
	return "take effect"
}

// lastWrites names the last few writes that completed before op began.
func lastWrites(ops []*history.Op, op *history.Op) string {
	var ws []*history.Op
	for _, o := range ops {
		if o.Kind.IsWrite() && o.Outcome == history.OK && o.Return < op.Call {
			ws = append(ws, o)
		}
	}
	slices.SortFunc(ws, func(a, b *history.Op) int { return int(a.Return - b.Return) })
	if len(ws) > 3 {
		ws = ws[len(ws)-3:]
	}
	if len(ws) == 0 {
		return ""
	}
	var parts []string
	for _, o := range ws {
		parts = append(parts, fmt.Sprintf("op %d (%s)", o.ID, opBrief(o)))
	}
	return "The last writes to complete before it began: " + strings.Join(parts, ", ") + ". "
}

func writerOf(ops []*history.Op, v string) *history.Op {
	for _, o := range ops {
		if (o.Kind == history.Set || o.Kind == history.CAS) && o.Value == v {
			return o
		}
	}
	return nil
}

// opBrief is an operation in a few words: client 3, get, 0.891–0.896s.
func opBrief(op *history.Op) string {
	what := string(op.Kind)
	switch op.Kind {
	case history.Set:
		what = fmt.Sprintf("set %q", op.Value)
	case history.CAS:
		what = fmt.Sprintf("cas → %q", op.Value)
	}
	if op.Final {
		what = "final " + what
	}
	if op.Outcome != history.OK {
		what += ", " + string(op.Outcome)
	}
	return fmt.Sprintf("client %s, %s, %s–%s", clientText(op), what, timeText(op.Call), timeText(op.Return))
}

func clientText(op *history.Op) string {
	if op.Process != 0 {
		return fmt.Sprintf("%d/%d", op.Process, op.Client)
	}
	return strconv.Itoa(op.Client)
}
