package check

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/memstore/memstore/history"
)

func TestExplainers(t *testing.T) {
	t.Parallel()
	type found struct {
		Kind AnomalyKind
		Ops  []int
	}
	tests := []struct {
		name  string
		h     *history.History
		want  []found
		words []string // in the first explanation
	}{
		{"stale read after a completed write", hist(
			set(0, "k", "a", 0, 1), set(0, "k", "b", 2, 3), get(1, "k", "b", 4, 5), get(2, "k", "a", 6, 7)),
			[]found{{StaleRead, []int{0, 1, 3}}}, []string{"op 3", "op 1", "already replaced"}},
		{"stale read shown by another client's read", hist(
			set(0, "k", "a", 0, 1), set(0, "k", "b", 2, 20), get(1, "k", "b", 3, 4), get(2, "k", "a", 5, 6)),
			[]found{{StaleRead, []int{0, 1, 2, 3}}}, []string{"op 3", "op 2", `"b"`}},
		{"non-monotonic reads of one client", hist(
			set(0, "k", "a", 0, 1), set(0, "k", "b", 2, 20), get(1, "k", "b", 3, 4), get(1, "k", "a", 5, 6)),
			[]found{{NonMonotonicRead, []int{0, 1, 2, 3}}}, []string{"client 1", "op 2", "op 3", "older"}},
		{"stale absent", hist(
			set(0, "k", "a", 0, 1), get(1, "k", "a", 2, 3), getAbsent(2, "k", 4, 5)),
			[]found{{StaleRead, []int{0, 2}}}, []string{"absent", "op 0", "no delete"}},
		{"non-monotonic absent", hist(
			set(0, "k", "a", 0, 10), get(1, "k", "a", 1, 2), getAbsent(1, "k", 3, 4)),
			[]found{{NonMonotonicRead, []int{0, 1, 2}}}, []string{"client 1", "absent"}},
		{"lost write, older value read", hist(
			set(0, "k", "a", 0, 1), set(0, "k", "b", 2, 3), get(1, "k", "a", 4, 5)),
			[]found{{LostWrite, []int{0, 1, 2}}}, []string{"op 1", "lost", `"b"`}},
		{"lost write, key absent", hist(set(0, "k", "a", 0, 1), getAbsent(1, "k", 2, 3)),
			[]found{{LostWrite, []int{0, 1}}}, []string{"op 0", "lost", "absent"}},
		{"lost write seen by the final read", hist(
			set(0, "k", "a", 0, 1), get(1, "k", "a", 2, 3), set(0, "k", "b", 4, 5), final(get(1, "k", "a", 100, 101))),
			[]found{{LostWrite, []int{0, 2, 3}}}, []string{"final get"}},
		{"never written", hist(set(0, "j", "a", 0, 1), get(1, "k", "a", 2, 3)),
			[]found{{NeverWritten, []int{1}}}, []string{"op 1", `key "k"`, `op 0 wrote it to key "j"`}},
		{"read of a failed write", hist(failed(set(0, "k", "a", 0, 1)), get(1, "k", "a", 2, 3)),
			[]found{{FailedWriteRead, []int{0, 1}}}, []string{"failed"}},
		{"read of a conflicting cas", hist(
			set(0, "k", "a", 0, 1), conflict(cas(0, "k", "x", true, "b", 2, 3)), get(1, "k", "b", 4, 5)),
			[]found{{FailedWriteRead, []int{1, 2}}}, []string{"conflict"}},
		{"read from the future", hist(get(1, "k", "a", 0, 1), set(0, "k", "a", 2, 3)),
			[]found{{FutureRead, []int{1, 0}}}, []string{"began only after"}},
		{"concurrent ops are fine", hist(
			set(0, "k", "a", 0, 10), set(1, "k", "b", 5, 15), get(2, "k", "b", 6, 8), get(2, "k", "a", 16, 20)), nil, nil},
		{"unknown write applied late is fine", hist(
			set(0, "k", "a", 0, 1), unknown(set(0, "k", "b", 2, 3)), get(1, "k", "a", 4, 5), get(1, "k", "b", 6, 7)), nil, nil},
		{"unknown delete explains absence", hist(
			set(0, "k", "a", 0, 1), unknown(del(0, "k", 2, 3)), get(1, "k", "a", 4, 5), getAbsent(1, "k", 6, 7)), nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			anoms, counts := Explain(mustValid(t, tt.h), nil)
			var got []found
			for _, a := range anoms {
				got = append(got, found{a.Kind, a.Ops})
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("anomalies mismatch (-want +got):\n%s\n%+v", diff, anoms)
			}
			total := 0
			for _, n := range counts {
				total += n
			}
			if total != len(tt.want) {
				t.Errorf("counts %v, want %d in all", counts, len(tt.want))
			}
			if len(anoms) == 0 {
				return
			}
			for _, w := range tt.words {
				if !strings.Contains(anoms[0].Explanation, w) {
					t.Errorf("explanation %q lacks %q", anoms[0].Explanation, w)
				}
			}
			// Every anomaly proves a violation: the search agrees.
			if v := Linearizability(tt.h, nil).Verdict; v != Illegal {
				t.Errorf("explainers found %v but the search says %s", tt.want, v)
			}
		})
	}
}

func TestExplainCapsListButCountsAll(t *testing.T) {
	t.Parallel()
	h := hist(set(0, "k", "a", 0, 1), set(0, "k", "b", 2, 3), get(1, "k", "b", 4, 5),
		get(2, "k", "a", 6, 7), get(2, "k", "a", 8, 9), get(2, "k", "a", 10, 11))
	anoms, counts := Explain(mustValid(t, h), &Options{MaxAnomaliesPerKey: 1})
	if len(anoms) != 1 || counts[StaleRead] != 3 {
		t.Errorf("listed %d, counted %v; want 1 listed and 3 stale reads counted", len(anoms), counts)
	}
}

// A violation no explainer names: two concurrent sets, then reads that see
// a, b, a. The key is Illegal, and the reason shows the smallest set of
// operations that cannot be ordered, with their values and times, out of a
// history padded with operations that have nothing to do with it.
func TestUnorderableCore(t *testing.T) {
	var ops []history.Op
	for i := range 20 { // earlier traffic, all in order
		ops = append(ops, set(9, "k", fmt.Sprintf("p%d", i), int64(i*10), int64(i*10+2)), get(8, "k", fmt.Sprintf("p%d", i), int64(i*10+3), int64(i*10+4)))
	}
	base := int64(1000)
	first := len(ops)
	ops = append(ops,
		set(1, "k", "a", base, base+10),      // first
		set(2, "k", "b", base, base+10),      // first+1
		get(3, "k", "a", base+11, base+12),   // first+2: needed by nothing
		get(4, "k", "b", base+13, base+14),   // first+3
		get(5, "k", "a", base+15, base+16),   // first+4
		getAbsent(6, "other", base, base+20), // another key
	)
	h := mustValid(t, hist(ops...))
	rep := All(h, nil)
	if len(rep.Anomalies) != 0 {
		t.Fatalf("an explainer found %v; this test wants a violation none of them names", rep.Anomalies)
	}
	var kr KeyResult
	for _, k := range rep.Linearizability.Keys {
		if k.Key == "k" {
			kr = k
		}
	}
	if kr.Verdict != Illegal {
		t.Fatalf("key k: %s, want illegal", kr.Verdict)
	}
	// Either "a then b" or "b then a" among the reads, with both sets.
	if want1, want2 := []int{first, first + 1, first + 2, first + 3}, []int{first, first + 1, first + 3, first + 4}; !slices.Equal(kr.Culprits, want1) && !slices.Equal(kr.Culprits, want2) {
		t.Errorf("culprits %v, want %v or %v", kr.Culprits, want1, want2)
	}
	for _, w := range []string{"these 4 operations cannot be ordered, and each is needed", `set "a"`, `set "b"`, `get → "b"`, `get → "a"`, "1µs–1.01µs"} {
		if !strings.Contains(kr.Reason, w) {
			t.Errorf("reason %q lacks %q", kr.Reason, w)
		}
	}
	t.Log(kr.Reason)
}
