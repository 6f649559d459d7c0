package memstore

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/memstore/memstore/internal/rediscache"
)

// A Redis outage must not take the service down with it: the database is
// the truth, so a Get can always read it instead (filling nothing). Two
// things bound what an outage costs a call:
//
//   - the Redis budget: every Redis round trip of a call runs under a
//     deadline of Options.RedisBudget, and never more than half of what the
//     call's context has left, so the database read keeps room to finish;
//   - the breaker, shared by the store's calls: after BreakerThreshold
//     consecutive Redis failures spanning two budgets with no answer in
//     between it opens (a latency spike fails the calls caught in it, but
//     is answered again before that), and while it is open calls do not
//     wait on Redis at all. Gets read the database; writes fail at once with
//     ErrUnavailable (or, under WriteProceed, commit without an intent). A
//     probe pings Redis every ProbeInterval, and the first answer closes it.
//
// After an outage the intent-loss rules still hold: a Redis that restarted
// lost its markers, and the stripes are fenced before anything is filled
// (fence.go); a Redis that was only unreachable kept values that are still
// current, because no write committed while it was away (writes failed
// without an intent), except under WriteProceed.

// errBreakerOpen stands for a Redis call not made because the breaker is open.
var errBreakerOpen = errors.New("memstore: redis breaker open")

// breaker is the store's circuit breaker on Redis. A store on Redis Cluster
// has one breaker for the whole cluster: go-redis already routes around a
// failed node once the cluster has failed it over, and a node it cannot
// reach makes calls on that node's slots fail fast through the budget.
type breaker struct {
	threshold int32
	quiet     time.Duration // how long with no answer before it may open
	fails     atomic.Int32  // consecutive failures while closed
	since     atomic.Int64  // when the current run of failures began, unix ns
	open      atomic.Bool

	mu       sync.Mutex
	openedAt time.Time
	cause    error
	stop     chan struct{} // closes the probe loop of this opening

	opens, reads, writes atomic.Uint64
}

// allow reports whether a call may go to Redis.
func (b *breaker) allow() bool { return !b.open.Load() }

// success records a Redis call that got an answer.
func (b *breaker) success() {
	if b.fails.Load() != 0 {
		b.fails.Store(0)
	}
}

// failure records a Redis call that failed or overran its budget, and
// reports whether the failures so far make an outage: at least threshold
// in a row, over at least quiet with no answer in between. A latency spike
// or a burst that queues for connections fails the calls caught in it, but
// an answer comes within quiet and resets the count; an outage gives none.
func (b *breaker) failure() (tripped bool) {
	now := time.Now().UnixNano()
	if b.fails.Add(1) == 1 {
		b.since.Store(now)
	}
	return b.fails.Load() >= b.threshold && time.Duration(now-b.since.Load()) >= b.quiet
}

// redisOK records the outcome of one Redis round trip made for ctx: nil or
// a reply is a success, an outage a failure (opening the breaker at the
// threshold), and the caller's own context ending, or a hook's error,
// neither. It reports whether err was an outage, after which a read goes to
// the database instead.
func (s *Store[T]) redisOK(ctx context.Context, err error) (outage bool) {
	switch {
	case err == nil:
		s.brk.success()
		return false
	case ctx.Err() != nil, errors.As(err, new(hookError)):
		return false
	case errors.Is(err, rediscache.ErrReplicas):
		// Redis answered; a shard's replicas did not keep up. An outage
		// for this write, not for the store's other calls: the breaker
		// stays shut.
		s.brk.success()
		return true
	case isCtxErr(err), rediscache.IsUnavailable(err):
		// A deadline that is not the caller's is the Redis budget's.
		s.st.errRedis.Add(1)
		if s.brk.failure() {
			s.openBreaker(err)
		}
		return true
	}
	s.brk.success() // Redis answered, with an error that reveals a bug
	return false
}

func (s *Store[T]) openBreaker(cause error) {
	b := &s.brk
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open.Load() {
		return
	}
	select {
	case <-s.stop:
		return // closing: no new probe loop
	default:
	}
	b.open.Store(true)
	b.opens.Add(1)
	b.openedAt, b.cause = time.Now(), cause
	b.reads.Store(0)
	b.writes.Store(0)
	b.stop = make(chan struct{})
	s.opts.Logger.Warn("memstore: redis unavailable; reads go to the database, writes fail until it answers",
		"err", cause, "probe_every", s.opts.ProbeInterval)
	s.bg.Add(1)
	go s.probe(b.stop)
}

// probe pings Redis every ProbeInterval until it answers, then closes the
// breaker.
func (s *Store[T]) probe(stop <-chan struct{}) {
	defer s.bg.Done()
	t := time.NewTicker(s.opts.ProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.RedisBudget)
		err := s.cache.Ping(ctx)
		cancel()
		if err == nil {
			s.closeBreaker()
			return
		}
	}
}

func (s *Store[T]) closeBreaker() {
	b := &s.brk
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.open.Load() {
		return
	}
	b.fails.Store(0)
	b.open.Store(false)
	close(b.stop)
	s.opts.Logger.Info("memstore: redis answers again; reads fill the cache again",
		"after", time.Since(b.openedAt).Round(time.Millisecond),
		"reads_from_db", b.reads.Load(), "writes_refused", b.writes.Load())
}
