package fault

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Event is one fault window of a Cycle: Name was injected at Start and
// healed by End. Both carry the monotonic clock reading of time.Now, so
// End.Sub(Start) and their offsets from a history's start are exact. Err
// joins what Inject and Heal returned; a failed Inject is still healed, and
// its window is the time that took.
type Event struct {
	Name       string
	Start, End time.Time
	Err        error
}

// Bounds of one Inject and one Heal in a Cycle.
const (
	injectTimeout = 30 * time.Second
	healTimeout   = 30 * time.Second
)

// Cycle runs fault cycles until ctx ends: wait gap, inject a nemesis chosen
// with rng (uniformly; nil means a randomly seeded one), hold it for hold,
// heal it, and report the window to onEvent (which may be nil), called from
// Cycle's goroutine. When ctx ends, during a gap or a hold, Cycle heals
// every nemesis, under a context that outlives ctx, so the system is whole
// again when it returns; its error joins the heals that failed then. Every
// Inject and Heal is bounded by a timeout of 30 s.
func Cycle(ctx context.Context, nemeses []Nemesis, rng *rand.Rand, hold, gap time.Duration, onEvent func(Event)) error {
	if len(nemeses) == 0 {
		return errors.New("fault: Cycle with no nemeses")
	}
	if rng == nil {
		rng = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	if onEvent == nil {
		onEvent = func(Event) {}
	}
	for sleep(ctx, gap) {
		n := nemeses[rng.IntN(len(nemeses))]
		ev := Event{Name: n.Name(), Start: time.Now()}
		ictx, cancel := context.WithTimeout(ctx, injectTimeout)
		ierr := n.Inject(ictx)
		cancel()
		if ierr == nil {
			sleep(ctx, hold)
		}
		herr := heal(ctx, n)
		ev.End = time.Now()
		ev.Err = errors.Join(ierr, herr)
		onEvent(ev)
	}
	var errs []error
	for _, n := range nemeses {
		if err := heal(ctx, n); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n.Name(), err))
		}
	}
	return errors.Join(errs...)
}

// heal heals n even when ctx has ended, within healTimeout.
func heal(ctx context.Context, n Nemesis) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), healTimeout)
	defer cancel()
	return n.Heal(ctx)
}

// sleep waits d and reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
