package check

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestConvergence(t *testing.T) {
	t.Parallel()
	snap := []KeySnapshot{
		{Key: "same", CachePresent: true, CacheBytes: []byte("v"), DBPresent: true, DBBytes: []byte("v")},
		{Key: "cache-empty", DBPresent: true, DBBytes: []byte("v")},
		{Key: "both-empty"},
		{Key: "miss-cached-for-missing-row", CacheNotFound: true},
		{Key: "stale", CachePresent: true, CacheBytes: []byte("old"), DBPresent: true, DBBytes: []byte("new")},
		{Key: "deleted", CachePresent: true, CacheBytes: []byte("v")},
		{Key: "miss-cached-for-row", CacheNotFound: true, DBPresent: true, DBBytes: []byte("v")},
		{Key: "empty-vs-nil", CachePresent: true, CacheBytes: []byte{}, DBPresent: true},
	}
	got := Convergence(snap)
	if got.Verdict != Illegal || got.Keys != len(snap) {
		t.Errorf("verdict %s over %d keys, want illegal over %d", got.Verdict, got.Keys, len(snap))
	}
	var keys []string
	for _, d := range got.Divergent {
		keys = append(keys, d.Key)
	}
	want := []string{"deleted", "miss-cached-for-row", "stale"}
	if diff := cmp.Diff(want, keys); diff != "" {
		t.Errorf("divergent keys mismatch (-want +got):\n%s", diff)
	}
	for _, d := range got.Divergent {
		if d.Key == "stale" && (!strings.Contains(d.Reason, `"old"`) || !strings.Contains(d.Reason, `"new"`)) {
			t.Errorf("reason %q does not show both values", d.Reason)
		}
	}
	if ok := Convergence(snap[:4]); ok.Verdict != Ok || len(ok.Divergent) != 0 {
		t.Errorf("converged snapshot: %+v", ok)
	}
}

func TestStampede(t *testing.T) {
	t.Parallel()
	got := Stampede(map[string]int{"a": 1, "b": 4, "c": 1, "warm": 9}, []string{"a", "b", "c", "d", "a"})
	want := StampedeResult{Verdict: Illegal, Limit: 1, Keys: 4, Total: 6, Max: 4, MaxKey: "b", Mean: 1.5,
		Over: []KeyLoads{{Key: "b", Loads: 4}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Stampede mismatch (-want +got):\n%s", diff)
	}
	if ok := Stampede(map[string]int{"a": 1}, []string{"a"}); ok.Verdict != Ok {
		t.Errorf("one load per cold key: %+v", ok)
	}
}
