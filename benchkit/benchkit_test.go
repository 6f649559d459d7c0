package benchkit

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestHistQuantiles(t *testing.T) {
	var h hist
	var all []time.Duration
	r := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		d := time.Duration(r.ExpFloat64() * float64(50*time.Microsecond))
		h.record(d)
		all = append(all, d)
	}
	slices.Sort(all)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		want := all[int(q*float64(len(all)))-1]
		got := h.quantile(q)
		if diff := float64(got-want) / float64(want); diff > 0.02 || diff < -0.02 {
			t.Errorf("quantile(%v) = %v, want %v ± 2%%", q, got, want)
		}
	}
}

func TestHistBuckets(t *testing.T) {
	// Every value falls in a bucket whose range holds it, and buckets
	// increase with the value.
	last := -1
	for _, v := range []uint64{0, 1, 63, 64, 65, 127, 128, 1000, 1 << 20, 1<<20 + 12345, 1 << 40, 1<<63 - 1, 1<<64 - 1} {
		i := bucket(v)
		lo, w := lowest(i)
		if v < lo || v-lo >= w {
			t.Errorf("bucket(%d) = %d, range [%d, %d+%d)", v, i, lo, lo, w)
		}
		if i < last {
			t.Errorf("bucket(%d) = %d < %d of a smaller value", v, i, last)
		}
		if i >= len(hist{}.counts) {
			t.Fatalf("bucket(%d) = %d out of range", v, i)
		}
		last = i
	}
}

// fakeRow sleeps per op instead of doing I/O.
func fakeRow(name string, kind Kind, d time.Duration, baseline string) Row {
	return Row{Name: name, Kind: kind, Baseline: baseline, Op: func(context.Context, int, int) error {
		time.Sleep(d)
		return nil
	}}
}

func TestRunOps(t *testing.T) {
	var setups atomic.Int32
	var loads atomic.Int64
	var seen [64]atomic.Bool
	rows := []Row{
		fakeRow("raw/get", KindRaw, 100*time.Microsecond, "raw/get"),
		{
			Name: "x/get-hit", Kind: KindMemstore, Baseline: "raw/get",
			Setup: func(context.Context) error { setups.Add(1); return nil },
			Op: func(_ context.Context, _, i int) error {
				if seen[i].Swap(true) {
					t.Errorf("op index %d given twice", i)
				}
				time.Sleep(200 * time.Microsecond)
				if i%10 == 0 {
					loads.Add(1)
					return errors.New("boom")
				}
				return nil
			},
			DBLoads: loads.Load,
		},
		{Name: "broken", Kind: KindPeer, Setup: func(context.Context) error { return errors.New("no server") }},
	}
	res := Run(context.Background(), rows, Options{Ops: 20, Goroutines: []int{1, 2}, Count: 1})
	if len(res) != 6 {
		t.Fatalf("%d results, want 6: %+v", len(res), res)
	}
	if setups.Load() != 1 {
		t.Errorf("Setup ran %d times, want 1", setups.Load())
	}
	for _, r := range res[:4] {
		if r.Ops+r.Errors != 20 {
			t.Errorf("%s g=%d: %d ops + %d errors, want 20", r.Name, r.Goroutines, r.Ops, r.Errors)
		}
		if r.P50us <= 0 || r.P99us < r.P50us {
			t.Errorf("%s g=%d: p50 %v p99 %v", r.Name, r.Goroutines, r.P50us, r.P99us)
		}
	}
	x := res[2]
	if x.Name != "x/get-hit" || x.Errors != 2 || x.DBLoads != 2 || x.Err != "boom" {
		t.Errorf("x/get-hit g=1: %+v, want 2 errors, 2 loads", x)
	}
	if want := x.OpsPerSec / res[0].OpsPerSec; x.Baseline != "raw/get" || x.RatioToRaw != want {
		t.Errorf("x/get-hit ratio to %q = %v, want %v", x.Baseline, x.RatioToRaw, want)
	}
	if b := res[4]; b.Name != "broken" || !strings.Contains(b.Err, "no server") || b.Ops != 0 {
		t.Errorf("broken row: %+v", b)
	}
}

func TestRunRounds(t *testing.T) {
	var loads atomic.Int64
	var inRound [5]atomic.Int32
	row := Row{
		Name: "s/stampede", Kind: KindStrategy, Concurrency: 8, Rounds: 5,
		Op: func(_ context.Context, worker, round int) error {
			// Every worker of a round runs before any of the next.
			for r := round + 1; r < 5; r++ {
				if inRound[r].Load() != 0 {
					t.Errorf("round %d ran before round %d ended", r, round)
				}
			}
			inRound[round].Add(1)
			if worker < round%3+1 {
				loads.Add(1)
			}
			return nil
		},
		DBLoads: loads.Load,
	}
	res := Run(context.Background(), []Row{row}, Options{Goroutines: []int{1, 16}})
	if len(res) != 1 {
		t.Fatalf("%d results, want 1 (Concurrency overrides Goroutines)", len(res))
	}
	r := res[0]
	// Loads per round: 1, 2, 3, 1, 2.
	if r.Goroutines != 8 || r.Ops != 40 || r.Rounds != 5 || r.DBLoads != 9 || r.MaxDBLoadsPerKey != 3 || r.DBLoadsPerKey != 1.8 {
		t.Errorf("got %+v, want 8 goroutines, 40 ops, 5 rounds, 9 loads, max 3, mean 1.8", r)
	}
}

func TestRunExhausted(t *testing.T) {
	var n atomic.Int64
	row := Row{Name: "miss", Kind: KindMemstore, Op: func(context.Context, int, int) error {
		if n.Add(1) > 30 {
			return ErrExhausted
		}
		return nil
	}}
	res := Run(context.Background(), []Row{row}, Options{Duration: 5 * time.Second, Warmup: time.Millisecond, Goroutines: []int{4}})
	if r := res[0]; r.Errors != 0 || r.Ops > 30 || r.Seconds > 1 {
		t.Errorf("got %+v, want the measurement to end early without errors", r)
	}
}

func TestRunCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	rows := []Row{
		{Name: "a", Kind: KindRaw, Op: func(context.Context, int, int) error { cancel(); return nil }},
		fakeRow("b", KindRaw, 0, ""),
	}
	done := make(chan []Result)
	go func() { done <- Run(ctx, rows, Options{Duration: time.Hour}) }()
	select {
	case res := <-done:
		for _, r := range res {
			if r.Name == "b" {
				t.Errorf("row b ran after the context ended")
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop when its context ended")
	}
}

func sample() []Result {
	return []Result{
		{Name: "raw/get", Kind: KindRaw, Goroutines: 1, Ops: 100, OpsPerSec: 30000, AllocsPerOp: 7},
		{Name: "memstore/get-hit", Kind: KindMemstore, Goroutines: 1, Ops: 100, OpsPerSec: 27000, AllocsPerOp: 11, Baseline: "raw/get", RatioToRaw: 0.9},
		{Name: "peer/get-hit", Kind: KindPeer, Goroutines: 1, Ops: 100, OpsPerSec: 28000},
		{Name: "memstore/set", Kind: KindMemstore, DB: "sqlite", Goroutines: 1, Ops: 100, OpsPerSec: 600},
		{Name: "write-db-delete-cache/set", Kind: KindStrategy, DB: "sqlite", Goroutines: 1, Ops: 100, OpsPerSec: 1000},
		// On PostgreSQL the write target is 0.9: 0.85 misses it.
		{Name: "memstore/delete", Kind: KindMemstore, DB: "postgres", Goroutines: 1, Ops: 100, OpsPerSec: 850},
		{Name: "write-db-delete-cache/delete", Kind: KindStrategy, DB: "postgres", Goroutines: 1, Ops: 100, OpsPerSec: 1000},
		{Name: "memstore/get-miss", Kind: KindMemstore, Goroutines: 1, Ops: 100, OpsPerSec: 600, AllocsPerOp: 40},
		{Name: "write-db-delete-cache/get-miss", Kind: KindStrategy, Goroutines: 1, Ops: 100, OpsPerSec: 1000},
		{Name: "memstore/mixed-3", Kind: KindMemstore, Goroutines: 8, Ops: 100, OpsPerSec: 900},
		{Name: "write-db-delete-cache/mixed-3", Kind: KindStrategy, Goroutines: 8, Ops: 100, OpsPerSec: 1000},
		{Name: "memstore/stampede", Kind: KindMemstore, Goroutines: 200, Ops: 4000, OpsPerSec: 9000, Rounds: 20, DBLoads: 20, DBLoadsPerKey: 1, MaxDBLoadsPerKey: 1},
		{Name: "peer/stampede", Kind: KindPeer, Goroutines: 200, Ops: 4000, OpsPerSec: 9000, Rounds: 20, DBLoads: 400, DBLoadsPerKey: 20, MaxDBLoadsPerKey: 31},
		{Name: "broken/get-hit", Kind: KindPeer, Goroutines: 1, Err: "setup: no server"},
	}
}

func TestChecks(t *testing.T) {
	got := map[string]Status{}
	for _, c := range Checks(sample()) {
		got[c.Name] = c.Status
	}
	want := map[string]Status{
		"memstore/get-hit vs raw/get, g=1":                                Met,
		"memstore/get-hit allocs/op beyond raw/get, g=1":                  Missed,
		"memstore/get-hit vs peer/get-hit, g=1":                           Missed,
		"memstore/get-hit vs broken/get-hit, g=1":                         Unknown,
		"memstore/set vs write-db-delete-cache/set (sqlite), g=1":         Missed,
		"memstore/delete vs write-db-delete-cache/delete (postgres), g=1": Missed,
		"memstore/get-miss vs write-db-delete-cache/get-miss, g=1":        Met,
		"  allocs/op memstore/get-miss vs raw/get, g=1":                   Info,
		"memstore/mixed-3 vs write-db-delete-cache/mixed-3, g=8":          Met,
		"memstore/stampede DB loads per cold key (200 callers)":           Met,
		"  beside it: peer/stampede (200 callers)":                        Info,
	}
	for name, st := range want {
		if got[name] != st {
			t.Errorf("check %q: %q, want %q", name, got[name], st)
		}
	}
	if len(got) != len(want) {
		t.Errorf("checks %v, want %v", got, want)
	}
}

func TestWriteTableAndSVG(t *testing.T) {
	var b bytes.Buffer
	if err := WriteTable(&b, sample()); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"memstore/get-hit", "0.90", "1.00 (max 1)", "setup: no server", "MISSED"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, b.String())
		}
	}
	b.Reset()
	if err := WriteSVG(&b, sample()); err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(&b)
	bars := 0
	for {
		tok, err := d.Token()
		if err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("SVG is not well-formed XML: %v", err)
			}
			break
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "title" {
			bars++
		}
	}
	measured := 0
	for _, r := range sample() {
		if r.OpsPerSec > 0 {
			measured++
		}
	}
	if bars != measured {
		t.Errorf("%d bars, want %d (every measured row)", bars, measured)
	}
}

func TestMainUsage(t *testing.T) {
	for _, args := range [][]string{
		{"--goroutines", "1,x"},
		{"--duration", "0s"},
		{"--no-such-flag"},
		{"extra"},
		{"--run", "("},
		{"--count", "0"},
	} {
		var out, errb bytes.Buffer
		err := Main(context.Background(), args, &out, &errb)
		var ue *UsageError
		if !errors.As(err, &ue) {
			t.Errorf("Main(%q) = %v, want a *UsageError", args, err)
		}
	}
	var out, errb bytes.Buffer
	if err := Main(context.Background(), []string{"-h"}, &out, &errb); err != nil || !strings.HasPrefix(out.String(), "Usage: memstore bench [flags]") ||
		!strings.Contains(out.String(), "-duration") || errb.Len() != 0 {
		t.Errorf("Main(-h) = %v, stdout %q, stderr %q; want the usage on stdout", err, out.String(), errb.String())
	}
}

func TestRatioPaired(t *testing.T) {
	// The neighbours slowed pass 2 down for both rows: the paired ratio
	// sees 0.9 in every pass, the ratio of the medians does not.
	a := Result{OpsPerSec: 900, PassOpsPerSec: []float64{900, 90, 1800}}
	b := Result{OpsPerSec: 1000, PassOpsPerSec: []float64{1000, 100, 2000}}
	if got := Ratio(a, b); got < 0.8999 || got > 0.9001 {
		t.Errorf("Ratio = %v, want 0.9", got)
	}
	if got := Ratio(Result{OpsPerSec: 50}, Result{OpsPerSec: 100}); got != 0.5 {
		t.Errorf("Ratio without passes = %v, want 0.5", got)
	}
	if got := Ratio(Result{OpsPerSec: 50}, Result{}); got != 0 {
		t.Errorf("Ratio to nothing = %v, want 0", got)
	}
}
