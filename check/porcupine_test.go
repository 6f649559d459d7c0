package check

import (
	"fmt"
	"math"
	"testing"

	"github.com/anishathalye/porcupine"
	"pgregory.net/rapid"

	"github.com/memstore/memstore/history"
)

// The reference: porcupine on the plain encoding of a history, with none of
// the search's reductions. Unknown writes never return and may or may not
// apply; failed writes and failed or unknown reads are left out.

type refState struct {
	v     string
	found bool
}

type refIn struct {
	op    history.Op
	maybe bool
}

var refModel = (&porcupine.NondeterministicModel{
	Init: func() []interface{} { return []interface{}{refState{}} },
	Step: func(st, input, _ interface{}) []interface{} {
		s, in := st.(refState), input.(refIn)
		op := in.op
		var next []interface{}
		switch {
		case op.Kind.IsRead():
			if s == (refState{op.Out, op.Found}) {
				next = append(next, s)
			}
		case op.Kind == history.Set:
			next = append(next, refState{op.Value, true})
		case op.Kind == history.Delete:
			next = append(next, refState{})
		case op.Kind == history.CAS && op.Conflict:
			if !op.ExpectFound || s != (refState{op.Expect, true}) {
				next = append(next, s)
			}
		case op.Kind == history.CAS:
			if s == (refState{op.Expect, op.ExpectFound}) {
				next = append(next, refState{op.Value, true})
			}
		}
		if in.maybe {
			next = append(next, s)
		}
		return next
	},
}).ToModel()

// porcupineVerdict checks one key's ops with the reference.
func porcupineVerdict(ops []*history.Op) porcupine.CheckResult {
	var pops []porcupine.Operation
	for _, op := range ops {
		in := refIn{op: *op}
		ret := op.Return
		switch {
		case op.Kind.IsRead() && op.Outcome != history.OK:
			continue
		case op.Outcome == history.Failed:
			continue
		case op.Outcome == history.Unknown:
			in.maybe, ret = true, math.MaxInt64/2
		}
		pops = append(pops, porcupine.Operation{ClientId: op.Client, Input: in, Call: op.Call, Return: ret})
	}
	return porcupine.CheckOperationsTimeout(refModel, pops, 0)
}

// corrupt changes h a little: one OK read returns another value (one written
// to the key, one never written, or "absent") or ran later, or one write's
// outcome is misreported. The result may or may not still be linearizable.
func corrupt(t *rapid.T, h *history.History) {
	var reads []int
	for i, op := range h.Ops {
		if op.Kind.IsRead() && op.Outcome == history.OK {
			reads = append(reads, i)
		}
	}
	if len(reads) == 0 {
		return
	}
	op := &h.Ops[rapid.SampledFrom(reads).Draw(t, "read")]
	var values []string
	for _, w := range h.Ops {
		if w.Key == op.Key && (w.Kind == history.Set || w.Kind == history.CAS) {
			values = append(values, w.Value)
		}
	}
	switch rapid.IntRange(0, 4).Draw(t, "how") {
	case 0:
		if len(values) > 0 {
			op.Out, op.Found = rapid.SampledFrom(values).Draw(t, "value"), true
		}
	case 1:
		op.Out, op.Found = "", false
	case 2:
		op.Out, op.Found = "never-written", true
	case 3:
		// The read happened later than recorded.
		d := rapid.Int64Range(1, 50).Draw(t, "shift")
		op.Call, op.Return, op.Group = op.Call+d, op.Return+d, 0
		op.Kind = history.Get
	case 4:
		// Some write's outcome is misreported.
		var writes []int
		for i, w := range h.Ops {
			if w.Kind.IsWrite() {
				writes = append(writes, i)
			}
		}
		if len(writes) > 0 {
			w := &h.Ops[rapid.SampledFrom(writes).Draw(t, "write")]
			w.Outcome = rapid.SampledFrom([]history.Outcome{history.OK, history.Failed, history.Unknown}).Draw(t, "outcome")
			w.Conflict = w.Kind == history.CAS && w.Outcome == history.OK && rapid.Bool().Draw(t, "conflict")
		}
	}
}

func drawGenConfig(t *rapid.T, maxOps int) genConfig {
	return genConfig{
		seed:        rapid.Uint64().Draw(t, "seed"),
		clients:     rapid.IntRange(1, 4).Draw(t, "clients"),
		keys:        rapid.IntRange(1, 2).Draw(t, "keys"),
		ops:         rapid.IntRange(1, maxOps).Draw(t, "ops"),
		hotKey:      0.5,
		maxGap:      rapid.Int64Range(0, 20).Draw(t, "gap"),
		maxDur:      rapid.Int64Range(1, 40).Draw(t, "dur"),
		pRead:       0.45,
		pDelete:     0.15,
		pCAS:        0.2,
		pMany:       0.2,
		pFail:       rapid.Float64Range(0, 0.2).Draw(t, "pFail"),
		pUnk:        rapid.Float64Range(0, 0.3).Draw(t, "pUnk"),
		final:       rapid.Bool().Draw(t, "final"),
		casAnyValue: rapid.Bool().Draw(t, "casAnyValue"),
	}
}

// TestAgreesWithPorcupine: on small random histories, legal or corrupted, the
// search's verdict equals porcupine's, and the explainers only speak when
// porcupine says Illegal.
func TestAgreesWithPorcupine(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		h := genHistory(drawGenConfig(t, 16))
		if rapid.Bool().Draw(t, "corrupt") {
			corrupt(t, h)
		}
		if err := h.Validate(); err != nil {
			t.Fatalf("generated history is invalid: %v", err)
		}
		keys, byKey := keyOps(h)
		writers := writersByValue(h)
		o := (*Options)(nil).withDefaults()
		for _, k := range keys {
			ops := byKey[k]
			want := porcupineVerdict(ops)
			kr, _, _ := checkKey(k, ops, &o)
			if string(kr.Verdict) != map[porcupine.CheckResult]string{porcupine.Ok: "ok", porcupine.Illegal: "illegal"}[want] {
				t.Fatalf("key %s: search says %s (%s), porcupine says %s\n%s", k, kr.Verdict, kr.Reason, want, dump(ops))
			}
			anoms, _ := explainKey(k, ops, writers, 10)
			if len(anoms) > 0 && want != porcupine.Illegal {
				t.Fatalf("key %s: explainers report %v on a history porcupine finds linearizable\n%s", k, anoms, dump(ops))
			}
		}
	})
}

func dump(ops []*history.Op) string {
	s := ""
	for _, op := range ops {
		s += fmt.Sprintf("  %+v\n", *op)
	}
	return s
}
