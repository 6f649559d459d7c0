package check

import (
	"fmt"
	"math/rand/v2"
	"sort"

	"github.com/memstore/memstore/history"
)

// genConfig describes a random workload run against a simulated,
// linearizable register per key.
type genConfig struct {
	seed    uint64
	clients int
	keys    int
	ops     int
	hotKey  float64 // share of ops on key 0
	maxGap  int64   // ns between a client's calls
	maxDur  int64   // ns a call takes
	pRead   float64 // shares of reads, deletes and CAS; the rest are sets
	pDelete float64
	pCAS    float64
	// casAnyValue: a CAS expects a random recent value written to the key
	// (which may be one nobody read). Otherwise, as a real workload does, it
	// expects what its client last read of the key.
	casAnyValue bool
	pMany       float64 // share of reads that are GetMany over 2-3 keys
	pFail       float64 // share of ops that fail
	pUnk        float64 // share of ops whose outcome is unknown
	final       bool    // end with a final read of every key
}

type genOp struct {
	op    history.Op
	point int64 // when it takes effect; -1: never
}

// genHistory simulates cfg: every op takes effect at a random point inside
// its interval (an unknown write: at a random later point, or never), in
// point order on a register per key, so the history is linearizable by
// construction.
func genHistory(cfg genConfig) *history.History {
	rng := rand.New(rand.NewPCG(cfg.seed, cfg.seed^0x9e3779b97f4a7c15))
	clientT := make([]int64, cfg.clients)
	var gops []genOp
	group := 0
	nextVal := 0
	written := make(map[string][]string) // key -> values written so far (for CAS expectations)
	keyName := func() string {
		if cfg.keys <= 1 || rng.Float64() < cfg.hotKey {
			return "k0"
		}
		return fmt.Sprintf("k%d", rng.IntN(cfg.keys))
	}
	for n := 0; n < cfg.ops; {
		c := rng.IntN(cfg.clients)
		call := clientT[c] + rng.Int64N(cfg.maxGap+1)
		ret := call + 1 + rng.Int64N(cfg.maxDur)
		clientT[c] = ret + 1
		outcome := history.OK
		switch x := rng.Float64(); {
		case x < cfg.pFail:
			outcome = history.Failed
		case x < cfg.pFail+cfg.pUnk:
			outcome = history.Unknown
		}
		point := func(write bool) int64 {
			switch {
			case outcome == history.Failed && write:
				return -1
			case outcome == history.Unknown && write:
				if rng.IntN(3) == 0 {
					return -1 // never applies
				}
				return call + rng.Int64N(4*cfg.maxDur+1) // may apply after the call returned
			}
			return call + rng.Int64N(ret-call+1)
		}
		base := history.Op{Client: c, Call: call, Return: ret, Outcome: outcome}
		if outcome != history.OK {
			base.Err = "injected"
		}
		x := rng.Float64()
		switch {
		case x < cfg.pRead && rng.Float64() < cfg.pMany && cfg.keys > 1:
			group++
			keys := map[string]bool{}
			for try := 0; try < 6 && len(keys) < 3; try++ {
				keys[keyName()] = true
			}
			sorted := make([]string, 0, len(keys))
			for k := range keys {
				sorted = append(sorted, k)
			}
			sort.Strings(sorted)
			for _, k := range sorted {
				op := base
				op.Kind, op.Key, op.Group = history.GetMany, k, group
				gops = append(gops, genOp{op, point(false)})
				n++
			}
		case x < cfg.pRead:
			op := base
			op.Kind, op.Key = history.Get, keyName()
			if rng.IntN(4) == 0 {
				op.Kind = history.Refresh
			}
			gops = append(gops, genOp{op, point(false)})
			n++
		case x < cfg.pRead+cfg.pDelete:
			op := base
			op.Kind, op.Key = history.Delete, keyName()
			gops = append(gops, genOp{op, point(true)})
			n++
		default:
			op := base
			op.Kind, op.Key = history.Set, keyName()
			nextVal++
			op.Value = fmt.Sprintf("v%d", nextVal)
			if x < cfg.pRead+cfg.pDelete+cfg.pCAS {
				op.Kind = history.CAS
				if w := written[op.Key]; cfg.casAnyValue && len(w) > 0 && rng.IntN(4) != 0 {
					op.Expect, op.ExpectFound = w[len(w)-1-rng.IntN(min(len(w), 3))], true
				}
			}
			written[op.Key] = append(written[op.Key], op.Value)
			gops = append(gops, genOp{op, point(true)})
			n++
		}
	}
	if cfg.final {
		end := int64(0)
		for _, t := range clientT {
			end = max(end, t)
		}
		end += 4*cfg.maxDur + 10
		for k := 0; k < max(cfg.keys, 1); k++ {
			op := history.Op{Client: 0, Key: fmt.Sprintf("k%d", k), Kind: history.Get, Final: true,
				Call: end + int64(k)*10, Return: end + int64(k)*10 + 5, Outcome: history.OK}
			gops = append(gops, genOp{op, op.Call + 1})
		}
	}
	simulate(gops, rng, !cfg.casAnyValue)
	sort.SliceStable(gops, func(i, j int) bool { return gops[i].op.Call < gops[j].op.Call })
	h := &history.History{Header: history.Header{Version: history.FormatVersion, Store: "sim", Seed: int64(cfg.seed)}}
	for i, g := range gops {
		g.op.ID = i
		h.Ops = append(h.Ops, g.op)
	}
	return h
}

// simulate applies the ops in point order to a register per key and fills
// in what each read saw and whether each CAS applied.
func simulate(gops []genOp, rng *rand.Rand, casFromReads bool) {
	order := make([]int, 0, len(gops))
	for i, g := range gops {
		if g.point >= 0 {
			order = append(order, i)
		}
	}
	sort.SliceStable(order, func(a, b int) bool { return gops[order[a]].point < gops[order[b]].point })
	type reg struct {
		v     string
		found bool
	}
	state := make(map[string]reg)
	type clientKey struct {
		client int
		key    string
	}
	lastRead := make(map[clientKey]reg)
	for _, i := range order {
		op := &gops[i].op
		s := state[op.Key]
		switch op.Kind {
		case history.Get, history.Refresh, history.GetMany:
			if op.Outcome == history.OK {
				op.Out, op.Found = s.v, s.found
				lastRead[clientKey{op.Client, op.Key}] = s
			}
		case history.Set:
			state[op.Key] = reg{op.Value, true}
		case history.Delete:
			state[op.Key] = reg{}
		case history.CAS:
			if casFromReads {
				// The client's ops are sequential and points keep
				// their order, so this is what it read before.
				r := lastRead[clientKey{op.Client, op.Key}]
				op.Expect, op.ExpectFound = r.v, r.found
			}
			if s.found == op.ExpectFound && s.v == op.Expect {
				state[op.Key] = reg{op.Value, true}
			} else if op.Outcome == history.OK {
				op.Conflict = true
			}
		}
	}
	// Failed and unknown reads and never-applied ops get noise: the checker
	// must ignore it.
	for i := range gops {
		op := &gops[i].op
		if op.Kind.IsRead() && op.Outcome != history.OK {
			op.Out, op.Found = fmt.Sprintf("noise%d", rng.IntN(1000)), true
		}
		if op.Kind == history.CAS && op.Outcome == history.Failed {
			op.Conflict = false
		}
	}
}
