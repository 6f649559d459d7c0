package memstore

import (
	"context"
	"errors"
	"time"

	"github.com/memstore/memstore/internal/rediscache"
)

// Some Redis work need not, or must not, delay the call that causes it:
//
//   - a write's end. Once the DB write has committed, the write's live
//     intent already sends every reader to the database, which holds the
//     committed row; clearing the intent only lets reads fill again. So a
//     write returns right after its commit, and its end follows.
//   - clearing the intents of a write that gave up, or a lease whose DB read
//     failed, when the call has no time left or Redis is failing.
//
// That work goes to a bounded queue served by one goroutine, in pipelined
// batches (concurrent writes share one round trip for their ends), and
// Close drains the queue. A full queue drops the task: an intent then
// expires within IntentTTL, a lease within LeaseTTL, and a committed
// write's intent is cleared by the outbox reconciler within ReconcileAge;
// none of that is ever wrong, only slower to fill. No goroutine is started
// per call, and the queue holds at most cleanupQueue tasks.

type taskKind uint8

const (
	taskEnd     taskKind = iota // clear a write's intent
	taskUnlease                 // give up a fill lease
	taskBarrier                 // Sync: close done once the tasks before it ran
)

type task struct {
	kind taskKind
	op   rediscache.Op
	ctx  context.Context // the call's values, for hooks (nil without a hook)
	done chan struct{}   // taskBarrier
}

// Sync waits until the background work of every call that returned before
// it has run: the ends of writes (after which reads fill the cache again)
// and the cleanup of calls that gave up. It is for tests and hand-overs
// that want the cache warm at once; reads are correct without it. It fails
// with the context's error if ctx ends first, as it does while Redis is
// unreachable (the work waits for Redis).
func (s *Store[T]) Sync(ctx context.Context) error {
	b := task{kind: taskBarrier, done: make(chan struct{})}
	select {
	case s.tasks <- b:
	case <-ctx.Done():
		return &OpError{Op: "sync", Err: ctx.Err()}
	case <-s.stop:
		return &OpError{Op: "sync", Err: errors.New("store closed")}
	}
	select {
	case s.flush <- struct{}{}: // cut a lingering batch short
	default:
	}
	select {
	case <-b.done:
		return nil
	case <-ctx.Done():
		return &OpError{Op: "sync", Err: ctx.Err()}
	}
}

const (
	// endLinger is the longest a write's end waits for others to share its
	// round trip: with the write's own, how long a key stays uncached
	// after a write (reads go to the database meanwhile).
	endLinger    = time.Millisecond
	cleanupQueue = 4096 // tasks waiting at most
	cleanupBatch = 256  // tasks per pipelined round trip
	// cleanupTimeout bounds one batch's round trip, and Close's drain.
	cleanupTimeout = 2 * time.Second
)

// later queues tasks for the cleanup goroutine, dropping what does not fit.
// ctx is the call's: its values reach the hooks, its deadline does not.
func (s *Store[T]) later(ctx context.Context, kind taskKind, ops ...rediscache.Op) {
	var hctx context.Context
	if s.opts.Hook != nil {
		hctx = context.WithoutCancel(ctx)
	}
	for _, op := range ops {
		select {
		case s.tasks <- task{kind: kind, op: op, ctx: hctx}:
		default:
			s.st.droppedTasks.Add(1)
		}
	}
}

// clear clears the intents of a write that committed nothing. A write
// whose commit is unknown keeps them (see Store.write).
// At once while the call has time and Redis answers, otherwise later.
func (s *Store[T]) clear(ctx context.Context, ops []rediscache.Op) {
	if ctx.Err() == nil && s.brk.allow() {
		rctx, cancel := s.batchCtx(ctx, len(ops))
		errs := s.cache.EndMany(rctx, ops)
		cancel()
		var failed []rediscache.Op
		for i, err := range errs {
			if err != nil {
				failed = append(failed, ops[i])
			}
		}
		if len(failed) == 0 {
			return
		}
		s.redisOK(ctx, errs[0])
		ops = failed
	}
	s.later(ctx, taskEnd, ops...)
}

// cleanupLoop serves the queue until the store closes, then drains it
// within cleanupTimeout.
func (s *Store[T]) cleanupLoop() {
	defer s.bg.Done()
	batch := make([]task, 0, cleanupBatch)
	linger := time.NewTimer(endLinger)
	linger.Stop()
	for {
		var t task
		select {
		case t = <-s.tasks:
			batch = append(batch[:0], t)
		case <-s.stop:
			s.drainTasks(batch[:0])
			return
		}
		// Linger a little for more: a writer writing one key after
		// another then shares one round trip for several ends, instead of
		// a round trip per write competing with the next write's begin.
		// The loop sleeps the linger out and then takes what queued
		// meanwhile, rather than wake for every task: on a host where a
		// wake-up costs a system call, that was a write's share of the
		// end. A Sync flushes at once.
		if t.kind != taskBarrier {
			linger.Reset(endLinger)
			select {
			case <-linger.C:
			case <-s.flush:
			case <-s.stop:
			}
			if !linger.Stop() {
				select {
				case <-linger.C:
				default:
				}
			}
		}
	gather:
		for len(batch) < cleanupBatch {
			select {
			case t := <-s.tasks:
				batch = append(batch, t)
			default:
				break gather
			}
		}
		for !s.brk.allow() {
			// Redis is away: hold the batch (and so the queue) until the
			// breaker closes, rather than spend it on failures.
			select {
			case <-s.stop:
				s.drainTasks(batch)
				return
			case <-time.After(s.opts.ProbeInterval):
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		s.runTasks(ctx, batch)
		cancel()
	}
}

// drainTasks runs the tasks left at Close, within cleanupTimeout.
func (s *Store[T]) drainTasks(batch []task) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	for {
		for len(batch) < cleanupBatch {
			select {
			case t := <-s.tasks:
				batch = append(batch, t)
				continue
			default:
			}
			break
		}
		if len(batch) == 0 || ctx.Err() != nil {
			return
		}
		s.runTasks(ctx, batch)
		batch = batch[:0]
	}
}

// runTasks runs a batch: the ends in one pipeline, the unleases in another.
// A task whose Before hook fails is skipped, as if its process had died
// with the task queued.
func (s *Store[T]) runTasks(ctx context.Context, batch []task) {
	var ends, unleases []rediscache.Op
	var endTasks, barriers []task
	defer func() {
		for _, b := range barriers {
			close(b.done)
		}
	}()
	for _, t := range batch {
		if t.kind == taskBarrier {
			barriers = append(barriers, t)
			continue
		}
		if t.kind == taskEnd {
			if s.opts.Hook != nil && s.bgHook(t, Before, nil) != nil {
				continue
			}
			ends = append(ends, t.op)
			endTasks = append(endTasks, t)
		} else {
			unleases = append(unleases, t.op)
		}
	}
	var errs []error
	if len(ends) > 0 {
		endErrs := s.cache.EndMany(ctx, ends)
		if s.opts.Hook != nil {
			for i, t := range endTasks {
				_ = s.bgHook(t, After, endErrs[i])
			}
		}
		errs = append(errs, endErrs...)
	}
	if len(unleases) > 0 {
		errs = append(errs, s.cache.UnleaseMany(ctx, unleases)...)
	}
	for _, err := range errs {
		if s.redisOK(ctx, err) {
			return
		}
	}
}

// bgHook runs the hook of a background task's step.
func (s *Store[T]) bgHook(t task, ph Phase, err error) error {
	return s.opts.Hook(t.ctx, HookEvent{Step: StepRedisEnd, Phase: ph, Key: t.op.Key, Err: err, Background: true})
}
