package schedule

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/memstore/memstore/history"
)

// hist builds a tiny history for the judge: each op is (client, kind,
// value or read result, call, return). A read result "-" is not found.
func hist(ops ...history.Op) []history.Op {
	for i := range ops {
		ops[i].ID = i
		ops[i].Key = "k"
		if ops[i].Outcome == "" {
			ops[i].Outcome = history.OK
		}
	}
	return ops
}

func rd(client int, out string, call, ret int64) history.Op {
	op := history.Op{Client: client, Kind: history.Get, Call: call, Return: ret}
	if out != "-" {
		op.Out, op.Found = out, true
	}
	return op
}

func wr(client int, v string, call, ret int64) history.Op {
	return history.Op{Client: client, Kind: history.Set, Value: v, Call: call, Return: ret}
}

func del(client int, call, ret int64) history.Op {
	return history.Op{Client: client, Kind: history.Delete, Call: call, Return: ret}
}

func testRun(initial string, ops []history.Op) *run {
	r := newRun("k", DefaultQuiet, 0, []Actor{{Name: "reader"}, {Name: "writer"}, {Name: "writer2"}})
	r.initialValue, r.ops, r.evictedRead = initial, ops, -1
	return r
}

func TestLinearizability(t *testing.T) {
	tests := []struct {
		name    string
		initial string
		ops     []history.Op
		want    string // "" linearizable; else a part of the explanation
	}{
		{"concurrent read sees old", "v0", hist(rd(0, "v0", 1, 4), wr(1, "w1", 2, 3)), ""},
		{"concurrent read sees new", "v0", hist(rd(0, "w1", 1, 4), wr(1, "w1", 2, 3)), ""},
		{"read after write sees old", "v0", hist(wr(1, "w1", 1, 2), rd(0, "v0", 3, 4)), `stale read: reader's Get returned "v0", but writer's Set("w1")`},
		{"read after delete sees old", "v0", hist(del(1, 1, 2), rd(0, "v0", 3, 4)), "stale read"},
		{"read after delete", "v0", hist(del(1, 1, 2), rd(0, "-", 3, 4)), ""},
		{"absent initially", "", hist(rd(0, "-", 1, 2), wr(1, "w1", 3, 4), rd(0, "w1", 5, 6)), ""},
		{"never written", "v0", hist(rd(0, "zz", 1, 2)), "which nothing wrote"},
		{"read from the future", "v0", hist(rd(0, "w1", 1, 2), wr(1, "w1", 3, 4)), "before any write of it began"},
		{
			"reads disagree with no write between", "v0",
			hist(wr(1, "w1", 1, 4), wr(2, "w2", 2, 3), rd(0, "w1", 5, 6), rd(0, "w2", 7, 8)),
			`reader's Get returned "w1", then reader's Get returned "w2", and no write of "w2"`,
		},
		{
			"two writers, either order", "v0",
			hist(wr(1, "w1", 1, 4), wr(2, "w2", 2, 3), rd(0, "w1", 5, 6), rd(0, "w1", 7, 8)), "",
		},
		{
			"unknown write may apply late", "v0",
			hist(history.Op{Client: 1, Kind: history.Set, Value: "w1", Call: 1, Return: 2, Outcome: history.Unknown}, rd(0, "v0", 3, 4), rd(0, "w1", 5, 6)), "",
		},
		{
			"unknown write may never apply", "v0",
			hist(history.Op{Client: 1, Kind: history.Set, Value: "w1", Call: 1, Return: 2, Outcome: history.Unknown}, rd(0, "v0", 3, 4)), "",
		},
		{
			// Neither rule names it, only the search: w1 and w2 are
			// concurrent, and the reads see w2 then w1 then w2.
			"flip-flop", "v0",
			hist(wr(1, "w1", 1, 10), wr(2, "w2", 1, 10), rd(0, "w2", 2, 3), rd(0, "w1", 4, 5), rd(0, "w2", 6, 7)), "not linearizable",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := strings.Join(testRun(tt.initial, tt.ops).linearizability(), "; ")
			switch {
			case tt.want == "" && got != "":
				t.Errorf("got %q, want linearizable", got)
			case tt.want != "" && !strings.Contains(got, tt.want):
				t.Errorf("got %q, want it to contain %q", got, tt.want)
			}
		})
	}
}

func TestInterleavings(t *testing.T) {
	for _, tt := range []struct {
		points []int
		want   float64
	}{
		{[]int{7, 5}, 792},
		{[]int{7, 7}, 3432},
		{[]int{5, 5}, 252},
		{[]int{7, 7, 7}, 399072960},
		{[]int{3}, 1},
	} {
		if got := newSpace(tt.points, make([][]int, len(tt.points))).count(); got != tt.want {
			t.Errorf("count of %v = %v, want %v", tt.points, got, tt.want)
		}
	}
}

// The depth-first order visits every interleaving once: simulated here on
// actors that are always enabled until their points run out.
func TestNextPrefixEnumeratesAll(t *testing.T) {
	points := []int{3, 2, 2}
	seen := make(map[string]bool)
	var prefix []int
	for n := 0; ; n++ {
		if n > 1000 {
			t.Fatal("no end")
		}
		left := slices.Clone(points)
		ch := &prefixChooser{prefix: prefix}
		var decisions [][]int
		var choices []int
		var order []byte
		for {
			var enabled []int
			for i, l := range left {
				if l > 0 {
					enabled = append(enabled, i)
				}
			}
			if len(enabled) == 0 {
				break
			}
			pick := enabled[0]
			if len(enabled) > 1 {
				pick = ch.choose(enabled)
				decisions, choices = append(decisions, enabled), append(choices, pick)
			}
			left[pick]--
			order = append(order, byte('a'+pick))
		}
		if seen[string(order)] {
			t.Fatalf("%s visited twice", order)
		}
		seen[string(order)] = true
		var ok bool
		if prefix, ok = nextPrefix(decisions, choices); !ok {
			break
		}
	}
	if want := int(multinomial(points)); len(seen) != want {
		t.Fatalf("visited %d interleavings, want %d", len(seen), want)
	}
}

func TestScenarioValidate(t *testing.T) {
	bad := []Scenario{
		{},
		{Actors: []Actor{{Name: "a"}}},
		{Actors: []Actor{{Name: "a", Calls: []Call{Get()}}, {Name: "a", Calls: []Call{Get()}}}},
		{Actors: []Actor{{Name: observer, Calls: []Call{Get()}}}},
		{Initial: "v", Actors: []Actor{{Name: "a", Calls: []Call{Set("v")}}}},
		{Actors: []Actor{{Name: "a", Calls: []Call{Set("")}}}},
		{Actors: []Actor{{Name: "a", Calls: []Call{Get()}, After: []string{"b"}}}},
		{Actors: []Actor{{Name: "a", Calls: []Call{Get()}, After: []string{"b"}}, {Name: "b", Calls: []Call{Get()}, After: []string{"a"}}}},
	}
	for i, sc := range bad {
		if err := sc.validate(); err == nil {
			t.Errorf("scenario %d: validate passed, want an error", i)
		}
	}
	for _, sc := range []Scenario{ReaderWriter(), ReaderDeleter(), TwoWriters(), ReaderTwoWriters(), LateReader()} {
		if err := sc.validate(); err != nil {
			t.Errorf("%s: %v", sc.Name, err)
		}
	}
}

// With an actor that starts after another, the space counts and samples
// exactly the interleavings that respect it.
func TestSpaceWithDeps(t *testing.T) {
	points, deps := []int{3, 2, 2}, [][]int{nil, nil, {1}} // actor 2 after actor 1
	valid := func(seq []int) bool {
		seen1 := 0
		for _, a := range seq {
			if a == 1 {
				seen1++
			}
			if a == 2 && seen1 < points[1] {
				return false
			}
		}
		return len(seq) == 7
	}
	// All orders of the multiset, filtered.
	all := make(map[string]bool)
	var gen func(left []int, seq []int)
	gen = func(left []int, seq []int) {
		done := true
		for i := range left {
			if left[i] > 0 {
				done = false
				left[i]--
				gen(left, append(seq, i))
				left[i]++
			}
		}
		if done && valid(seq) {
			all[fmt.Sprint(seq)] = true
		}
	}
	gen(slices.Clone(points), nil)
	sp := newSpace(points, deps)
	if got := sp.count(); got != float64(len(all)) {
		t.Fatalf("count = %v, want %d", got, len(all))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	hits := make(map[string]int)
	for range 200 * len(all) {
		seq := sp.sample(rng)
		if !all[fmt.Sprint(seq)] {
			t.Fatalf("sample %v breaks the order", seq)
		}
		hits[fmt.Sprint(seq)]++
	}
	for k := range all {
		if n := hits[k]; n < 100 || n > 300 {
			t.Errorf("%s drawn %d times in %d, want about 200", k, n, 200*len(all))
		}
	}
}
