package verify

import (
	"context"
	"fmt"
	"sync"

	"github.com/memstore/memstore"
	"github.com/memstore/memstore/history"
)

// stepOp identifies the recorded call a context belongs to, for the step
// events its store's hooks report.
type stepOp struct {
	client int
	key    string

	mu   sync.Mutex
	open map[memstore.Step]*history.PendingEvent
}

type stepKey struct{}

func withStepOp(ctx context.Context, client int, key string) context.Context {
	return context.WithValue(ctx, stepKey{}, &stepOp{client: client, key: key})
}

// recordStep opens a step event at a Before hook and closes it at the
// After. Hooks outside a recorded call (the engine's own evictions,
// snapshots) are not recorded.
func recordStep(ctx context.Context, rec *history.Recorder, ev memstore.HookEvent) {
	op, ok := ctx.Value(stepKey{}).(*stepOp)
	if !ok || ev.Key != op.key {
		return
	}
	op.mu.Lock()
	defer op.mu.Unlock()
	if ev.Phase == memstore.Before {
		if op.open == nil {
			op.open = make(map[memstore.Step]*history.PendingEvent)
		}
		op.open[ev.Step] = rec.BeginEvent(history.Step, string(ev.Step), fmt.Sprintf("client %d key %s", op.client, op.key))
		return
	}
	if p := op.open[ev.Step]; p != nil {
		p.End()
		delete(op.open, ev.Step)
	}
}

// steps is the recorder of step events, nil when Config.NoSteps.
func (e *engine) steps() *history.Recorder {
	if e.cfg.NoSteps {
		return nil
	}
	return e.rec
}
