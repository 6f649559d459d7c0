package verify_test

import (
	"strings"
	"testing"
	"time"

	"github.com/memstore/memstore/check"
	"github.com/memstore/memstore/history"
	"github.com/memstore/memstore/strategies"
	"github.com/memstore/memstore/verify"
)

// The history holds the store's steps, and the explanation of a stale
// read of plain cache-aside names the mechanism: a fill that read the DB
// before the write committed landed after the write's invalidation.
func TestMechanismNamed(t *testing.T) {
	t.Parallel()
	r := run(t, verify.Config{Store: strategies.WriteDBDeleteCache(), Seed: 1, Ops: 2000, Duration: 8 * time.Second,
		Faults: []string{"none"}, Quiet: 200 * time.Millisecond})
	steps := 0
	for _, ev := range r.History.Events {
		if ev.Kind == history.Step {
			steps++
		}
	}
	if steps == 0 {
		t.Fatal("no step events in the history")
	}
	named := 0
	for _, a := range r.Report.Anomalies {
		if (a.Kind == check.StaleRead || a.Kind == check.LostWrite) && strings.Contains(a.Explanation, "How: ") {
			named++
			if named == 1 {
				t.Logf("%s", a.Explanation)
			}
			for _, w := range []string{"read the DB at", "committed", "cache fill landed at", "invalidation (redis.del"} {
				if !strings.Contains(a.Explanation, w) {
					t.Errorf("explanation lacks %q: %s", w, a.Explanation)
				}
			}
		}
	}
	if named == 0 {
		t.Errorf("no anomaly of %d names its mechanism (%d step events)", len(r.Report.Anomalies), steps)
	}
}
