package verify

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/memstore/memstore/history"
	"github.com/memstore/memstore/strategies"
)

// request is one call a client makes; response is what came back, already
// classified. They are also the worker protocol's lines (see WorkerMain).
type request struct {
	ID    uint64       `json:"id"`
	Kind  history.Kind `json:"kind"`
	Key   string       `json:"key"`
	Value string       `json:"value,omitempty"`
}

type response struct {
	ID    uint64 `json:"id"`
	Value string `json:"value,omitempty"`
	Found bool   `json:"found,omitempty"`
	Err   string `json:"err,omitempty"`
	// ErrKind is the outcome of a call that returned an error: "failed"
	// or "unknown"; empty for ok (a read of a missing key is ok, found
	// false).
	ErrKind history.Outcome `json:"errkind,omitempty"`
	Ready   bool            `json:"ready,omitempty"` // the worker's first line

	// An adapter's answers (exec.go): a get answer that lacked "found",
	// an inspect answer's snapshot.
	foundMissing bool
	snap         *strategies.Snapshot
}

func (r response) outcome() history.Outcome {
	if r.ErrKind == "" {
		return history.OK
	}
	return r.ErrKind
}

type errString string

func (e errString) Error() string { return string(e) }

func (r response) err() error {
	if r.Err == "" {
		return nil
	}
	return errString(r.Err)
}

// target runs calls: a store instance in this process, or a worker process.
type target interface {
	do(ctx context.Context, r request) response
	recorder() *history.Recorder
	name() string
}

// gen makes one client's reproducible stream of operations.
type gen struct {
	rng  *rand.Rand
	zipf *rand.Zipf
	keys []string
	mix  Mix
}

func newGen(cfg *Config, keys []string, stream uint64) *gen {
	g := &gen{rng: newRand(cfg.Seed, stream), keys: keys, mix: cfg.Mix}
	if cfg.Skew == Zipf && len(keys) > 1 {
		g.zipf = rand.NewZipf(g.rng, 1.1, 1, uint64(len(keys)-1))
	}
	return g
}

func (g *gen) next() (history.Kind, string) {
	var key string
	if g.zipf != nil {
		key = g.keys[g.zipf.Uint64()]
	} else {
		key = g.keys[g.rng.IntN(len(g.keys))]
	}
	n := g.rng.IntN(g.mix.total())
	switch {
	case n < g.mix.Get:
		return history.Get, key
	case n < g.mix.Get+g.mix.Set:
		return history.Set, key
	}
	return history.Delete, key
}

// call runs one operation through t and records it in t's recorder. Written
// values must be unique in the history: callers build them from their
// client ID and a counter.
func (e *engine) call(ctx context.Context, t target, client int, r request, final bool) response {
	seq, faulted := e.faultSeq.Load(), e.faulted.Load()
	p := t.recorder().Begin(client, r.Key, r.Kind, history.Input{Value: r.Value, Final: final})
	octx, cancel := context.WithTimeout(withStepOp(ctx, client, r.Key), e.cfg.OpTimeout)
	resp := t.do(octx, r)
	cancel()
	out := history.Output{Value: resp.Value, Found: resp.Found}
	p.End(out, resp.outcome(), resp.err())
	e.ops.Add(1)
	if resp.Err != "" {
		e.errs.Add(1)
		if faulted || e.faultSeq.Load() != seq {
			e.faultErrs.Add(1)
		}
	}
	return resp
}

// client issues operations one at a time until stop is closed, the op
// budget is spent or ctx ends. pace is a pause between operations (the
// warm-up's light load).
func (e *engine) client(ctx context.Context, t target, client int, stop <-chan struct{}, basePace time.Duration, budget bool) {
	g := newGen(&e.cfg, e.keys, uint64(1000+client))
	pace := basePace
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		default:
		}
		if budget && e.cfg.Ops > 0 && e.started.Add(1) > int64(e.cfg.Ops) {
			e.stopWorkload()
			return
		}
		kind, key := g.next()
		r := request{Kind: kind, Key: key}
		if kind == history.Set {
			r.Value = fmt.Sprintf("c%d-%d", client, n)
		}
		var resp response
		if kind.IsWrite() {
			e.gate.RLock()
			resp = e.call(ctx, t, client, r, false)
			e.gate.RUnlock()
		} else {
			resp = e.call(ctx, t, client, r, false)
		}
		if resp.Err != "" && pace == 0 {
			// A fault makes calls fail at once: back off a little, so
			// that the history records the outage, not a flood of it.
			pace = errorPause
		}
		if pace > 0 && !waitStop(ctx, stop, pace) {
			return
		}
		pace = basePace
	}
}

// errorPause is how long a client waits after a call that failed.
const errorPause = 5 * time.Millisecond

// readWindows pauses the workload's writes every ReadWindowEvery for
// ReadWindow and evicts every key in the middle of the pause (see
// Config.NoReadWindows). Each window is recorded as an event.
func (e *engine) readWindows(ctx context.Context, stop <-chan struct{}) {
	rng := newRand(e.cfg.Seed, 17)
	for {
		if !waitStop(ctx, stop, e.cfg.ReadWindowEvery) {
			return
		}
		e.gate.Lock()
		ev := e.rec.BeginEvent("window", "read window", "writes paused, every key evicted in the middle")
		waitStop(ctx, nil, e.cfg.ReadWindow/3)
		for _, k := range e.keys {
			in := e.instances[rng.IntN(len(e.instances))]
			cctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
			_ = in.store.Evict(cctx, k)
			cancel()
		}
		waitStop(ctx, nil, e.cfg.ReadWindow-e.cfg.ReadWindow/3)
		ev.End()
		e.gate.Unlock()
	}
}

// waitStop sleeps for d; it reports false if stop closed or ctx ended first.
func waitStop(ctx context.Context, stop <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-stop:
		return false
	case <-ctx.Done():
		return false
	}
}
