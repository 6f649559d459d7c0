package memstore

import (
	"context"
	"sync/atomic"
	"time"
)

// Every Redis round trip of a call runs under a deadline: the Redis budget
// (Options.RedisBudget), and never more than half of what the call's
// context has left. go-redis (with ContextTimeoutEnabled) turns a context's
// deadline into its socket deadlines, so the deadline is what bounds the
// call.
//
// A context.WithDeadline per round trip costs five allocations (the
// context, its timer, the cancel function, the done channel go-redis asks
// for), more than a hit costs otherwise. So the deadlines are shared: they
// are rounded up to the next millisecond, and every round trip whose
// deadline falls in the same millisecond shares one context derived from
// context.Background, created by the first of them. A round trip's own
// context wraps it and the caller's context: values (tracing) come from the
// caller's, the deadline and Done from the shared one, and Err from
// whichever ended first. A caller's cancellation is noticed by go-redis at
// its next socket deadline, within the budget: go-redis does not watch a
// context's Done during socket I/O in any case.

// deadlineGrain is how finely shared deadlines are rounded.
const deadlineGrain = time.Millisecond

// deadlines hands out the shared deadline contexts of one store.
type deadlines struct {
	cur atomic.Pointer[sharedDeadline]
}

type sharedDeadline struct {
	at  int64 // the deadline, in grains since the epoch
	ctx context.Context
	// cancel is never called: the context's own timer ends it at its
	// deadline, and calls of a past grain may still be using it.
	cancel context.CancelFunc
}

// at returns a context that ends at the grain of d (rounded up).
func (dl *deadlines) at(d time.Time) context.Context {
	g := (d.UnixNano() + int64(deadlineGrain) - 1) / int64(deadlineGrain)
	if c := dl.cur.Load(); c != nil && c.at == g {
		return c.ctx
	}
	ctx, cancel := context.WithDeadline(context.Background(), time.Unix(0, g*int64(deadlineGrain)))
	next := &sharedDeadline{at: g, ctx: ctx, cancel: cancel}
	if c := dl.cur.Load(); c == nil || c.at < g {
		dl.cur.Store(next)
	}
	return ctx
}

// budgeted is one round trip's context: the caller's values, the shared
// deadline.
type budgeted struct {
	context.Context // the caller's: Value
	shared          context.Context
}

func (c *budgeted) Deadline() (time.Time, bool) { return c.shared.Deadline() }
func (c *budgeted) Done() <-chan struct{}       { return c.shared.Done() }
func (c *budgeted) Err() error {
	if err := c.Context.Err(); err != nil {
		return err
	}
	return c.shared.Err()
}

// redisCtx is the context of one Redis round trip of a read.
func (s *Store[T]) redisCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return s.budgetCtx(ctx, s.opts.RedisBudget)
}

// writeCtx is batchCtx for the begin of a write of n keys, which has no
// fallback: Redis gets writeBudgets times as long (at most half of what ctx
// has left) before the write fails.
func (s *Store[T]) writeCtx(ctx context.Context, n int) (context.Context, context.CancelFunc) {
	return s.budgetCtx(ctx, writeBudgets*s.opts.RedisBudget*time.Duration(1+n/50))
}

// writeBudgets is how many Redis budgets a write's begin may take.
const writeBudgets = 4

// batchCtx is redisCtx for a pipelined round trip of n commands: a budget,
// and one more for every 50 commands the server runs and the client parses.
func (s *Store[T]) batchCtx(ctx context.Context, n int) (context.Context, context.CancelFunc) {
	return s.budgetCtx(ctx, s.opts.RedisBudget*time.Duration(1+n/50))
}

// budgetCtx bounds ctx by budget and by half of what it has left. The
// cancel function is there for callers to defer; shared deadlines need
// none.
func (s *Store[T]) budgetCtx(ctx context.Context, budget time.Duration) (context.Context, context.CancelFunc) {
	now := time.Now()
	d := now.Add(budget)
	if cd, ok := ctx.Deadline(); ok {
		if half := now.Add(cd.Sub(now) / 2); half.Before(d) {
			d = half
		}
	}
	return &budgeted{Context: ctx, shared: s.deadlines.at(d)}, noCancel
}

func noCancel() {}
