package check

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func intp(i int) *int { return &i }

func TestPolaris(t *testing.T) {
	t.Parallel()
	h := hist(
		set(0, "k", "a", 0, 10),
		set(0, "k", "b", 20, 30),
		get(1, "k", "a", 40, 45), // stale: began 10ns after b returned
		get(2, "k", "b", 100, 110),
		set(0, "j", "x", 0, 10),
		get(1, "j", "x", 11, 12),
		set(0, "j", "y", 5, 50), // overlaps x: neither counts
	)
	got := Polaris(mustValid(t, h), []time.Duration{0, 9, 10, 11})
	want := PolarisResult{
		Writes: 1,
		Points: []PolarisPoint{
			{Delta: 0, Consistent: 0, Share: 0},
			{Delta: 9, Consistent: 0, Share: 0},
			{Delta: 10, Consistent: 1, Share: 1},
			{Delta: 11, Consistent: 1, Share: 1},
		},
		WorstStaleness: 10,
		WorstWrite:     intp(1),
		WorstRead:      intp(2),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Polaris mismatch (-want +got):\n%s", diff)
	}
}

func TestPolarisNoObservedWrites(t *testing.T) {
	t.Parallel()
	got := Polaris(mustValid(t, hist(set(0, "k", "a", 0, 1))), nil)
	if got.Writes != 0 || len(got.Points) != len(DefaultPolarisDeltas) || got.Points[0].Share != 1 || got.WorstWrite != nil {
		t.Errorf("Polaris of an unread write = %+v, want no writes, share 1 at every default delta", got)
	}
}
