package check

import (
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
