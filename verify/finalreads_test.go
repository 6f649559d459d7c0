package verify_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/memstore/memstore"
	"github.com/memstore/memstore/strategies"
	"github.com/memstore/memstore/verify"
)

// reorderedSets is write-db-set-cache with its flaw forced once: in the
// workload, the writer whose DB write landed first waits before its cache
// SET until a second writer's SET is done (calls are told apart by their
// contexts), so the cache keeps the first value while the DB holds the
// second. The two writes overlap, so every read that the cache
// answers agrees on a value some order allows; only a read that reaches the
// DB contradicts it.
func reorderedSets() (strategies.Factory, func(verify.Progress)) {
	var (
		armed   atomic.Bool
		claimed atomic.Bool
		once    sync.Once
		second  = make(chan struct{})
		mu      sync.Mutex
		first   context.Context // the call whose DB write landed first
	)
	force := func(ctx context.Context, ev memstore.HookEvent) {
		if !armed.Load() {
			return
		}
		if ev.Step == memstore.StepDBWrite && ev.Phase == memstore.After {
			mu.Lock()
			if first == nil {
				first = ctx
			}
			mu.Unlock()
			return
		}
		if ev.Step != strategies.StepRedisSet {
			return
		}
		mu.Lock()
		isFirst := first == ctx
		mu.Unlock()
		switch {
		case ev.Phase == memstore.Before && isFirst && claimed.CompareAndSwap(false, true):
			select {
			case <-second:
			case <-time.After(5 * time.Second):
			case <-ctx.Done():
			}
			armed.Store(false)
		case ev.Phase == memstore.After && !isFirst:
			once.Do(func() { close(second) })
		}
	}
	base := strategies.WriteDBSetCache()
	f := base
	f.Name = "reordered-sets"
	f.New = func(ctx context.Context, c strategies.Config) (strategies.Store, error) {
		h := c.Hook
		c.Hook = func(ctx context.Context, ev memstore.HookEvent) error {
			force(ctx, ev)
			if h != nil {
				return h(ctx, ev)
			}
			return nil
		}
		return base.New(ctx, c)
	}
	progress := func(p verify.Progress) {
		if p.Phase == "workload" && !claimed.Load() {
			armed.Store(true)
		}
	}
	return f, progress
}

// The final phase (a convergence snapshot, then read, evict, read again)
// exposes a wrong value that every reader agreed on; without it the same
// history passes.
func TestFinalReadsExposeAgreedStaleCache(t *testing.T) {
	t.Parallel()
	for _, final := range []bool{true, false} {
		f, progress := reorderedSets()
		r := run(t, verify.Config{
			Store: f, Keys: 1, Mix: verify.Mix{Set: 1}, Clients: 2, Instances: 1, Ops: 2,
			Duration: 10 * time.Second, Warmup: time.Nanosecond, Faults: []string{"none"},
			NoDelay: true, NoEvict: true, NoReadWindows: true, NoFinalReads: !final,
			StampedeKeys: 1, StampedeReaders: 2, Quiet: 10 * time.Millisecond,
			Progress: progress,
		})
		if !final {
			if r.Caught() {
				t.Errorf("without final reads: caught by %v; the workload alone should not see it", r.Fired())
			}
			continue
		}
		for _, c := range []string{verify.CheckConvergence, verify.CheckLinearizability} {
			if !r.FiredCheck(c) {
				t.Errorf("with final reads: %s did not fire (fired: %v)", c, r.Fired())
			}
		}
	}
}
