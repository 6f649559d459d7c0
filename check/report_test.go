package check

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/memstore/memstore/history"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// reportHistory has a stale read on k, a clean key j, and a fault window.
func reportHistory() *history.History {
	h := hist(
		set(0, "k", "a", 0, 1000),
		set(0, "k", "b", 2000, 3000),
		get(1, "k", "b", 4000, 5000),
		get(2, "k", "a", 6000, 7000),
		set(0, "j", "x", 0, 1000),
		unknown(set(1, "j", "y", 1500, 2500)),
		get(2, "j", "x", 3000, 4000),
		failed(del(2, "j", 4500, 4600)),
	)
	h.Header.Seed = 42
	h.Events = []history.Event{{Kind: history.Fault, Name: "redis-pause", Start: 1200, End: 4400, Detail: "SIGSTOP"}}
	return h
}

func TestAllReport(t *testing.T) {
	t.Parallel()
	r := All(mustValid(t, reportHistory()), &Options{
		Snapshot: []KeySnapshot{{Key: "k", CachePresent: true, CacheBytes: []byte("a"), DBPresent: true, DBBytes: []byte("b")}},
		ColdKeys: []string{"k", "j"},
		Loads:    map[string]int{"k": 1, "j": 1},
	})
	for i := range r.Linearizability.Keys {
		r.Linearizability.Keys[i].Elapsed = 0 // wall-clock: not golden
	}
	got, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	const golden = "testdata/report.golden.json"
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("report differs from %s (run go test -update if the change is meant):\n%s", golden, got)
	}
	if r.Verdict != Illegal || r.Linearizability.Verdict != Illegal || r.Convergence.Verdict != Illegal || r.Stampede.Verdict != Ok {
		t.Errorf("verdicts: report %s, linearizability %s, convergence %s, stampede %s",
			r.Verdict, r.Linearizability.Verdict, r.Convergence.Verdict, r.Stampede.Verdict)
	}
	if r.Summary.Anomalies[StaleRead] != 1 || r.Summary.KeyVerdicts[Ok] != 1 || r.Summary.KeyVerdicts[Illegal] != 1 {
		t.Errorf("summary %+v", r.Summary)
	}
}

func TestAllInvalidHistory(t *testing.T) {
	t.Parallel()
	h := hist(set(0, "k", "a", 5, 1))
	r := All(h, nil)
	if r.Verdict != Unknown || !strings.Contains(r.Invalid, "want 0 <= call <= return") {
		t.Errorf("verdict %s, invalid %q; want unknown naming the bad op", r.Verdict, r.Invalid)
	}
	if _, err := json.Marshal(r); err != nil {
		t.Error(err)
	}
}

func TestAllExplainersDecideUnknownKeys(t *testing.T) {
	t.Parallel()
	h := mustValid(t, hist(set(0, "k", "a", 0, 1), set(0, "k", "b", 2, 3), get(1, "k", "b", 4, 5), get(2, "k", "a", 6, 7)))
	r := All(h, &Options{MaxSteps: 1})
	kr := r.Linearizability.Keys[0]
	if kr.Verdict != Illegal || kr.Cause != "" || !strings.Contains(kr.Reason, "explainers prove") {
		t.Errorf("key result %+v, want illegal on the explainers' word", kr)
	}
}

func TestAllEmptyHistory(t *testing.T) {
	t.Parallel()
	r := All(&history.History{}, nil)
	if r.Verdict != Ok || r.Summary.Ops != 0 {
		t.Errorf("empty history: %+v", r)
	}
}
