package check

import (
	"testing"

	"github.com/memstore/memstore/history"
)

// benchHistory is a linearizable history of 100k operations on 1k keys by 16
// clients, with failed and unknown outcomes, CAS and GetMany, the shape of a
// real run with faults.
func benchHistory() *history.History {
	return genHistory(genConfig{seed: 42, clients: 16, keys: 1000, ops: 100_000, hotKey: 0.01,
		maxGap: 200_000, maxDur: 2_000_000, pRead: 0.6, pDelete: 0.05, pCAS: 0.1, pMany: 0.1,
		pFail: 0.01, pUnk: 0.02, final: true})
}

func BenchmarkCheck100kOps1kKeys(b *testing.B) {
	h := benchHistory()
	b.ReportAllocs()
	var r *Report
	for b.Loop() {
		r = All(h, nil)
	}
	if r.Verdict != Ok {
		b.Fatalf("verdict %s: %+v", r.Verdict, r.Summary)
	}
	peak := 0
	for _, kr := range r.Linearizability.Keys {
		peak = max(peak, kr.PeakConfigs)
	}
	b.ReportMetric(float64(len(h.Ops)), "ops")
	b.ReportMetric(float64(peak), "peak-configs")
}

// BenchmarkLinearizability100kOps1kKeys is the search alone on one worker,
// to compare with porcupine below.
func BenchmarkLinearizability100kOps1kKeys(b *testing.B) {
	h := benchHistory()
	b.ReportAllocs()
	for b.Loop() {
		if r := Linearizability(h, &Options{Workers: 1}); r.Verdict != Ok {
			b.Fatalf("verdict %s", r.Verdict)
		}
	}
}

// BenchmarkPorcupine100kOps1kKeys is the baseline: porcupine on the same
// history with the plain encoding, one key at a time.
func BenchmarkPorcupine100kOps1kKeys(b *testing.B) {
	h := benchHistory()
	keys, byKey := keyOps(h)
	b.ReportAllocs()
	for b.Loop() {
		for _, k := range keys {
			if porcupineVerdict(byKey[k]) != "Ok" {
				b.Fatalf("porcupine: key %s not Ok", k)
			}
		}
	}
}
