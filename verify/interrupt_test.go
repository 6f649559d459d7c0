package verify_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/memstore/memstore/memtest"
	"github.com/memstore/memstore/strategies"
	"github.com/memstore/memstore/verify"
)

// A run cancelled in its workload (Ctrl-C in memstore check) heals its
// faults and returns the history so far, checked and marked Interrupted,
// with the context's error: never a pass.
func TestRunInterrupted(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var faultErrs, errs int
	cfg := verify.Config{
		Store:    strategies.DBOnly(),
		Redis:    memtest.RedisWith(t, &memtest.RedisOptions{Private: true}),
		DB:       filepath.Join(t.TempDir(), "verify.db"),
		Duration: time.Minute,
		Faults:   []string{verify.FaultDBFail},
		Progress: func(p verify.Progress) {
			faultErrs, errs = p.FaultErrors, p.Errors
			if p.Phase == "workload" && p.Elapsed > 1500*time.Millisecond {
				cancel()
			}
		},
	}
	start := time.Now()
	r, err := verify.Run(ctx, cfg)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("an interrupted run took %v to return", took)
	}
	if r == nil || !r.Interrupted || r.Passed() || r.Ops == 0 || r.History == nil {
		t.Fatalf("result %+v: want the history so far, Interrupted, not passed", r)
	}
	if faultErrs > errs {
		t.Errorf("progress: %d errors in faults of %d errors", faultErrs, errs)
	}
	t.Logf("%s; progress: %d errors, %d in faults", r.Summary(), errs, faultErrs)
}
