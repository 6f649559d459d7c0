package check_test

import (
	"testing"

	"github.com/memstore/memstore/check"
)

func TestLinearizabilitySplit(t *testing.T) {
	r := check.LinearizabilityResult{Keys: []check.KeyResult{
		{Key: "a", Verdict: check.Ok}, {Key: "b", Verdict: check.Illegal},
		{Key: "c", Verdict: check.Unknown}, {Key: "d", Verdict: check.Illegal},
	}}
	illegal, unknown := r.Split()
	if len(illegal) != 2 || illegal[0].Key != "b" || illegal[1].Key != "d" {
		t.Errorf("illegal = %+v, want keys b and d", illegal)
	}
	if len(unknown) != 1 || unknown[0].Key != "c" {
		t.Errorf("unknown = %+v, want key c", unknown)
	}
}
