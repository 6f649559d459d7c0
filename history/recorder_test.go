package history_test

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/memstore/memstore/history"
)

// tickClock returns a clock that advances by 10 on every reading.
func tickClock() func() int64 {
	var n atomic.Int64
	return func() int64 { return n.Add(10) }
}

func TestRecorder(t *testing.T) {
	t.Parallel()
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	rec := history.NewRecorder(history.Header{Store: "s", Seed: 9, Start: start}, &history.RecorderOptions{Process: 2, Clock: tickClock()})

	set := rec.Begin(0, "k", history.Set, history.Input{Value: "v1"})  // 10
	fault := rec.BeginEvent(history.Fault, "pause", "SIGSTOP")         // 20
	get := rec.Begin(1, "k", history.Get, history.Input{})             // 30
	set.End(history.Output{}, history.OK, nil)                         // 40
	get.End(history.Output{Value: "v1", Found: true}, history.OK, nil) // 50
	get.End(history.Output{Value: "ignored", Found: true}, history.OK, nil)
	many := rec.BeginMany(1, []string{"k", "j"}, history.Input{Final: true})                                             // 60
	many.End([]history.Output{{Value: "v1", Found: true}, {}}, history.OK, nil)                                          // 70
	cas := rec.Begin(3, "k", history.CAS, history.Input{Value: "v2", Expect: "v1", ExpectFound: true, ExpectVersion: 4}) // 80
	cas.End(history.Output{}, history.Unknown, errors.New("timeout"))                                                    // 90
	fault.End()                                                                                                          // 100
	del := rec.Begin(4, "j", history.Delete, history.Input{})                                                            // 110
	_ = del                                                                                                              // never ends
	got := rec.History()                                                                                                 // 120

	want := &history.History{
		Header: history.Header{Version: history.FormatVersion, Store: "s", Seed: 9, Start: start},
		Ops: []history.Op{
			{ID: 0, Client: 0, Process: 2, Key: "k", Kind: history.Set, Value: "v1", Call: 10, Return: 40, Outcome: history.OK},
			{ID: 1, Client: 1, Process: 2, Key: "k", Kind: history.Get, Out: "v1", Found: true, Call: 30, Return: 50, Outcome: history.OK},
			{ID: 2, Client: 1, Process: 2, Group: 1, Final: true, Key: "k", Kind: history.GetMany, Out: "v1", Found: true, Call: 60, Return: 70, Outcome: history.OK},
			{ID: 3, Client: 1, Process: 2, Group: 1, Final: true, Key: "j", Kind: history.GetMany, Call: 60, Return: 70, Outcome: history.OK},
			{ID: 4, Client: 3, Process: 2, Key: "k", Kind: history.CAS, Value: "v2", Expect: "v1", ExpectFound: true, ExpectVersion: 4,
				Call: 80, Return: 90, Outcome: history.Unknown, Err: "timeout"},
			{ID: 5, Client: 4, Process: 2, Key: "j", Kind: history.Delete, Call: 110, Return: 120, Outcome: history.Unknown, Err: "no response recorded"},
		},
		Events: []history.Event{{Kind: history.Fault, Name: "pause", Start: 20, End: 100, Detail: "SIGSTOP"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("History() mismatch (-want +got):\n%s", diff)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("recorded history is invalid: %v", err)
	}
}

func TestRecorderOpenEventEndsAtSnapshot(t *testing.T) {
	t.Parallel()
	rec := history.NewRecorder(history.Header{}, &history.RecorderOptions{Clock: tickClock()})
	rec.BeginEvent(history.Phase, "workload", "") // 10
	h := rec.History()                            // 20
	if got, want := h.Events[0].End, int64(20); got != want {
		t.Errorf("open event end = %d, want %d", got, want)
	}
	if h.Header.Start.IsZero() {
		t.Error("zero header start was not set")
	}
}

func TestRecorderConcurrent(t *testing.T) {
	t.Parallel()
	rec := history.NewRecorder(history.Header{}, nil)
	var wg sync.WaitGroup
	for c := 0; c < 8; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				p := rec.Begin(c, fmt.Sprint("k", i%3), history.Set, history.Input{Value: fmt.Sprintf("c%d-%d", c, i)})
				p.End(history.Output{}, history.OK, nil)
				if i%50 == 0 {
					_ = rec.History()
				}
			}
		}()
	}
	wg.Wait()
	h := rec.History()
	if got, want := len(h.Ops), 8*200; got != want {
		t.Fatalf("%d ops, want %d", got, want)
	}
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, op := range h.Ops {
		if op.Outcome != history.OK {
			t.Fatalf("op %+v not ended", op)
		}
	}
}

func TestMerge(t *testing.T) {
	t.Parallel()
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	a := &history.History{
		Header: history.Header{Store: "s", Seed: 1, Start: base.Add(time.Microsecond), Meta: map[string]string{"a": "1", "x": "a"}},
		Ops: []history.Op{
			{ID: 0, Client: 0, Process: 1, Group: 1, Key: "k", Kind: history.GetMany, Call: 0, Return: 100, Outcome: history.OK},
			{ID: 1, Client: 0, Process: 1, Group: 1, Key: "j", Kind: history.GetMany, Call: 0, Return: 100, Outcome: history.OK},
		},
		Events: []history.Event{{Kind: history.Fault, Name: "f", Start: 10, End: 20}},
	}
	b := &history.History{
		Header: history.Header{Store: "s", Seed: 1, Start: base, Meta: map[string]string{"b": "2", "x": "b"}},
		Ops: []history.Op{
			{ID: 0, Client: 0, Process: 2, Group: 1, Key: "k", Kind: history.GetMany, Call: 500, Return: 600, Outcome: history.OK},
			{ID: 1, Client: 0, Process: 2, Group: 1, Key: "j", Kind: history.GetMany, Call: 500, Return: 600, Outcome: history.OK},
		},
	}
	got, err := history.Merge([]*history.History{a, b}, 5)
	if err != nil {
		t.Fatal(err)
	}
	want := &history.History{
		Header: history.Header{Version: history.FormatVersion, Store: "s", Seed: 1, Start: base, Meta: map[string]string{"a": "1", "b": "2", "x": "b"}},
		Ops: []history.Op{
			{ID: 0, Client: 0, Process: 2, Group: 2, Key: "k", Kind: history.GetMany, Call: 495, Return: 605, Outcome: history.OK},
			{ID: 1, Client: 0, Process: 2, Group: 2, Key: "j", Kind: history.GetMany, Call: 495, Return: 605, Outcome: history.OK},
			{ID: 2, Client: 0, Process: 1, Group: 1, Key: "k", Kind: history.GetMany, Call: 995, Return: 1105, Outcome: history.OK},
			{ID: 3, Client: 0, Process: 1, Group: 1, Key: "j", Kind: history.GetMany, Call: 995, Return: 1105, Outcome: history.OK},
		},
		Events: []history.Event{{Kind: history.Fault, Name: "f", Start: 1010, End: 1020}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Merge mismatch (-want +got):\n%s", diff)
	}
}
