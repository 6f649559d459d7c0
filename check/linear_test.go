package check

import (
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/memstore/memstore/history"
)

func TestLinearizability(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		h      *history.History
		want   Verdict
		failed int // for Illegal: the op no order explains
	}{
		{"empty key reads absent", hist(getAbsent(0, "k", 0, 1)), Ok, 0},
		{"sequential", hist(
			set(0, "k", "a", 0, 1), get(1, "k", "a", 2, 3), del(0, "k", 4, 5), getAbsent(1, "k", 6, 7)), Ok, 0},
		{"concurrent writes, reads choose the order", hist(
			set(0, "k", "a", 0, 10), set(1, "k", "b", 5, 15), get(2, "k", "b", 6, 8), get(2, "k", "a", 16, 20)), Ok, 0},
		{"read during the write sees it", hist(set(0, "k", "a", 0, 10), get(1, "k", "a", 1, 2)), Ok, 0},
		{"read during the write misses it", hist(set(0, "k", "a", 0, 10), getAbsent(1, "k", 1, 2)), Ok, 0},
		{"stale after a completed write", hist(
			set(0, "k", "a", 0, 1), set(0, "k", "b", 2, 3), get(1, "k", "a", 4, 5)), Illegal, 2},
		{"absent after a completed write", hist(set(0, "k", "a", 0, 1), getAbsent(1, "k", 2, 3)), Illegal, 1},
		{"read of a value never written", hist(set(0, "k", "a", 0, 1), get(1, "k", "x", 2, 3)), Illegal, 1},
		{"read before its write began", hist(get(1, "k", "a", 0, 1), set(0, "k", "a", 2, 3)), Illegal, 0},
		{"read of a failed write", hist(failed(set(0, "k", "a", 0, 1)), get(1, "k", "a", 2, 3)), Illegal, 1},
		{"failed write is dropped", hist(
			set(0, "k", "a", 0, 1), failed(set(0, "k", "b", 2, 3)), get(1, "k", "a", 4, 5)), Ok, 0},
		{"failed and unknown reads carry nothing", hist(
			set(0, "k", "a", 0, 1), unknown(get(1, "k", "zzz", 2, 3)), failed(getAbsent(1, "k", 4, 5)), get(1, "k", "a", 6, 7)), Ok, 0},
		{"unknown write takes effect after it returned", hist(
			set(0, "k", "a", 0, 1), unknown(set(0, "k", "b", 2, 3)), get(1, "k", "a", 4, 5), get(1, "k", "b", 6, 7)), Ok, 0},
		{"unknown write never takes effect", hist(
			set(0, "k", "a", 0, 1), unknown(set(0, "k", "b", 2, 3)), get(1, "k", "a", 4, 5), final(get(1, "k", "a", 100, 101))), Ok, 0},
		{"unknown write cannot be undone", hist(
			set(0, "k", "a", 0, 1), unknown(set(0, "k", "b", 2, 3)), get(1, "k", "b", 4, 5), get(1, "k", "a", 6, 7)), Illegal, 3},
		{"unknown delete takes effect late", hist(
			set(0, "k", "a", 0, 1), unknown(del(0, "k", 2, 3)), get(1, "k", "a", 4, 5), getAbsent(1, "k", 6, 7)), Ok, 0},
		{"unknown delete applies once", hist(
			set(0, "k", "a", 0, 1), unknown(del(0, "k", 2, 3)), get(1, "k", "a", 4, 5), getAbsent(1, "k", 6, 7),
			set(0, "k", "c", 8, 9), get(1, "k", "c", 10, 11), getAbsent(1, "k", 12, 13)), Illegal, 6},
		{"two unknown deletes apply twice", hist(
			set(0, "k", "a", 0, 1), unknown(del(0, "k", 2, 3)), unknown(del(2, "k", 2, 3)), get(1, "k", "a", 4, 5), getAbsent(1, "k", 6, 7),
			set(0, "k", "c", 8, 9), get(1, "k", "c", 10, 11), getAbsent(1, "k", 12, 13)), Ok, 0},
		{"cas applies", hist(
			set(0, "k", "a", 0, 1), cas(0, "k", "a", true, "b", 2, 3), get(1, "k", "b", 4, 5)), Ok, 0},
		{"cas on absent applies", hist(cas(0, "k", "", false, "b", 2, 3), get(1, "k", "b", 4, 5)), Ok, 0},
		{"cas applied although the value had changed", hist(
			set(0, "k", "a", 0, 1), set(0, "k", "b", 2, 3), cas(0, "k", "a", true, "c", 4, 5)), Illegal, 2},
		{"cas conflict while the value was current", hist(
			set(0, "k", "a", 0, 1), conflict(cas(0, "k", "a", true, "c", 2, 3))), Illegal, 1},
		{"cas conflict after the value changed", hist(
			set(0, "k", "a", 0, 1), set(0, "k", "b", 2, 3), conflict(cas(0, "k", "a", true, "c", 4, 5))), Ok, 0},
		{"cas conflict on an absent row allows anything", hist(
			conflict(cas(0, "k", "", false, "c", 2, 3))), Ok, 0},
		{"unknown cas takes effect late", hist(
			set(0, "k", "a", 0, 1), unknown(cas(0, "k", "a", true, "b", 2, 3)), get(1, "k", "a", 4, 5), get(1, "k", "b", 6, 7)), Ok, 0},
		{"unknown cas chain observed at the end", hist(
			unknown(cas(0, "k", "", false, "v1", 0, 1)), unknown(cas(0, "k", "v1", true, "v2", 2, 3)), get(1, "k", "v2", 10, 11)), Ok, 0},
		{"unseen unknown write explains a conflict", hist(
			set(0, "k", "a", 0, 1), get(1, "k", "a", 2, 3), unknown(set(2, "k", "b", 4, 5)),
			conflict(cas(0, "k", "a", true, "x", 6, 7)), del(0, "k", 8, 9), getAbsent(1, "k", 10, 11)), Ok, 0},
		{"unseen set overwrites a value a conflict compares", hist(
			del(0, "k", 0, 7), getAbsent(1, "k", 0, 6), set(1, "k", "v6", 7, 14), del(0, "k", 8, 11),
			set(0, "k", "v1", 12, 20), conflict(cas(0, "k", "v1", true, "v2", 21, 23))), Ok, 0},
		{"getmany reads each key", hist(
			set(0, "k", "a", 0, 1), set(0, "j", "b", 0, 1),
			history.Op{Client: 1, Group: 1, Key: "k", Kind: history.GetMany, Out: "a", Found: true, Call: 2, Return: 3},
			history.Op{Client: 1, Group: 1, Key: "j", Kind: history.GetMany, Out: "b", Found: true, Call: 2, Return: 3}), Ok, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := Linearizability(mustValid(t, tt.h), nil)
			if res.Verdict != tt.want {
				t.Fatalf("verdict = %s (%+v), want %s", res.Verdict, res.Keys, tt.want)
			}
			if tt.want != Illegal {
				return
			}
			for _, kr := range res.Keys {
				if kr.Verdict != Illegal {
					continue
				}
				if kr.FailedOp == nil || *kr.FailedOp != tt.failed {
					t.Errorf("failed op = %v, want %d (reason %q)", kr.FailedOp, tt.failed, kr.Reason)
				}
				if !strings.Contains(kr.Reason, "op ") {
					t.Errorf("reason %q does not name the op", kr.Reason)
				}
			}
		})
	}
}

// hotKey is the pathological case: many clients on one key, every call long
// enough to overlap most others.
func hotKey(seed uint64, ops int) *history.History {
	return genHistory(genConfig{seed: seed, clients: 16, keys: 1, ops: ops, maxGap: 100, maxDur: 10000,
		pRead: 0.5, pDelete: 0.1, pCAS: 0.1, pFail: 0.02, pUnk: 0.05, final: true})
}

func TestBoundsGiveUnknown(t *testing.T) {
	t.Parallel()
	hot := hotKey(1, 2000)
	tests := []struct {
		name  string
		opts  *Options
		cause Cause
	}{
		{"memory", &Options{MaxConfigs: 50}, CauseConfigs},
		{"work", &Options{MaxSteps: 100}, CauseSteps},
		{"concurrency", &Options{MaxConcurrency: 4}, CauseConcurrency},
		{"time", &Options{Timeout: time.Second, now: jumpingClock()}, CauseTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			kr := keyVerdict(t, hot, "k0", tt.opts)
			if kr.Verdict != Unknown || kr.Cause != tt.cause {
				t.Fatalf("verdict %s, cause %q, want unknown because of %q (%s)", kr.Verdict, kr.Cause, tt.cause, kr.Reason)
			}
			if kr.Reason == "" {
				t.Error("no reason given")
			}
			if tt.opts.MaxConfigs > 0 && kr.PeakConfigs > tt.opts.MaxConfigs {
				t.Errorf("peak configurations %d, over the bound %d", kr.PeakConfigs, tt.opts.MaxConfigs)
			}
		})
	}
}

// jumpingClock returns a clock that advances an hour on every reading.
func jumpingClock() func() time.Time {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	return func() time.Time {
		now = now.Add(time.Hour)
		return now
	}
}

// TestHotKeyBounded: 16 clients hammering one key with long, overlapping
// calls. Whatever the verdict, the search never holds more configurations
// than allowed, and a linearizable history is never called Illegal.
func TestHotKeyBounded(t *testing.T) {
	t.Parallel()
	const maxConfigs = 20000
	for _, tt := range []struct {
		name    string
		corrupt bool
	}{{"linearizable", false}, {"one stale read", true}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := hotKey(7, 3000)
			if tt.corrupt {
				staleRead(t, h)
			}
			r := All(mustValid(t, h), &Options{MaxConfigs: maxConfigs, Workers: 1})
			kr := r.Linearizability.Keys[0]
			if kr.PeakConfigs > maxConfigs {
				t.Errorf("peak configurations %d, over the bound %d", kr.PeakConfigs, maxConfigs)
			}
			switch {
			case !tt.corrupt && kr.Verdict == Illegal:
				t.Errorf("linearizable hot key judged illegal: %s", kr.Reason)
			case tt.corrupt && kr.Verdict != Illegal:
				t.Errorf("stale hot key judged %s (%s)", kr.Verdict, kr.Reason)
			}
			t.Logf("verdict %s, peak %d configurations, %d steps, %d pending at most", kr.Verdict, kr.PeakConfigs, kr.Steps, kr.MaxConcurrency)
		})
	}
}

// staleRead appends, after everything else, a read of the first value ever
// written to key k0 although later writes completed: certainly stale.
func staleRead(tb testing.TB, h *history.History) {
	tb.Helper()
	var first *history.Op
	end := int64(0)
	for i := range h.Ops {
		op := &h.Ops[i]
		end = max(end, op.Return)
		if first == nil && op.Key == "k0" && op.Kind == history.Set && op.Outcome == history.OK {
			first = op
		}
	}
	if first == nil {
		tb.Fatal("no OK set to read stale")
	}
	h.Ops = append(h.Ops, history.Op{ID: len(h.Ops), Client: 99, Key: "k0", Kind: history.Get,
		Out: first.Value, Found: true, Call: end + 10, Return: end + 20, Outcome: history.OK})
}

// TestLinearizableHistoriesPass: histories made by simulating a register are
// linearizable, so they pass, with no anomalies and a perfect Polaris figure.
func TestLinearizableHistoriesPass(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		cfg := genConfig{
			seed:    rapid.Uint64().Draw(t, "seed"),
			clients: rapid.IntRange(1, 16).Draw(t, "clients"),
			keys:    rapid.IntRange(1, 20).Draw(t, "keys"),
			ops:     rapid.IntRange(1, 400).Draw(t, "ops"),
			hotKey:  rapid.Float64Range(0, 1).Draw(t, "hotKey"),
			maxGap:  rapid.Int64Range(0, 1000).Draw(t, "gap"),
			maxDur:  rapid.Int64Range(1, 2000).Draw(t, "dur"),
			pRead:   rapid.Float64Range(0, 0.8).Draw(t, "pRead"),
			pDelete: rapid.Float64Range(0, 0.2).Draw(t, "pDelete"),
			pCAS:    rapid.Float64Range(0, 0.2).Draw(t, "pCAS"),
			pMany:   rapid.Float64Range(0, 0.5).Draw(t, "pMany"),
			pFail:   rapid.Float64Range(0, 0.2).Draw(t, "pFail"),
			pUnk:    rapid.Float64Range(0, 0.2).Draw(t, "pUnk"),
			final:   rapid.Bool().Draw(t, "final"),
		}
		h := genHistory(cfg)
		if err := h.Validate(); err != nil {
			t.Fatalf("generated history is invalid: %v", err)
		}
		r := All(h, &Options{MaxConfigs: 200000})
		for _, kr := range r.Linearizability.Keys {
			if kr.Verdict == Illegal {
				t.Fatalf("key %s judged illegal: %s", kr.Key, kr.Reason)
			}
		}
		if len(r.Anomalies) > 0 {
			t.Fatalf("anomalies in a linearizable history: %+v", r.Anomalies)
		}
		if r.Verdict == Illegal {
			t.Fatalf("report verdict illegal")
		}
		for _, p := range r.Polaris.Points {
			if p.Share != 1 {
				t.Fatalf("polaris share %v at %v, want 1 (%+v)", p.Share, p.Delta, r.Polaris)
			}
		}
		if r.Polaris.WorstStaleness != 0 {
			t.Fatalf("worst staleness %v, want 0", r.Polaris.WorstStaleness)
		}
	})
}

// TestExplainersAgreeWithSearch: on medium-sized histories, legal or
// corrupted, the explainers never name an anomaly on a key that the search
// finds linearizable (All would then report a checker bug).
func TestExplainersAgreeWithSearch(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		cfg := drawGenConfig(t, 150)
		cfg.clients = rapid.IntRange(1, 8).Draw(t, "moreClients")
		h := genHistory(cfg)
		for n := rapid.IntRange(0, 3).Draw(t, "corruptions"); n > 0; n-- {
			corrupt(t, h)
		}
		if err := h.Validate(); err != nil {
			t.Fatalf("invalid history: %v", err)
		}
		r := All(h, &Options{MaxConfigs: 100000})
		for _, kr := range r.Linearizability.Keys {
			if strings.Contains(kr.Reason, "checker bug") {
				t.Fatalf("key %s: %s\n%+v", kr.Key, kr.Reason, r.Anomalies)
			}
		}
	})
}
