package memstore

import (
	"context"
	"errors"
	"strconv"
	"time"
)

// Redis losing data loses write intents: a flush, a restart without
// persistence, a failover to a replica that missed writes, or the eviction
// of a marker. Without its intent, a write in flight is invisible to
// readers, and a reader could read the old row, the write commit, and the
// reader's fill then serve the old row after the write:
//
//	writer: begin (intent) ...................... commit
//	redis:          loses the intent
//	reader:                  miss, lease, read old row ......... fill (stale)
//
// Intents live in a marker per stripe (the namespace, or a hash slot on a
// cluster), never in a key's own hash, so evicting one key loses no intent.
// A lost marker comes back pending: no lease is granted in it until a
// fence, below, has moved the stripe to a new generation in the database.
// Every write commits only if its stripe's generation is still the one its
// intent was recorded under, so once the fence has committed, every write
// that began before the loss has either committed (and the reader's DB read
// sees it) or can no longer commit. The new generation is then recorded in
// the marker, and leases and fills resume. A marker is created under a new
// name (its incarnation) every time, and the database fences a name once:
// a caller that fenced a marker and finds it lost again must not re-create
// it under the name already fenced, or a write recorded in the lost one
// would keep a generation the database still accepts
// (TestIntentLossMarkerRecreatedByOneCaller). The database decides, so no
// clock and no wait bounds it: after a loss, one DB write per stripe, and
// fills resume at once.

// fenceTimeout bounds a fence that callers share (see fence).
const fenceTimeout = 5 * time.Second

// fence moves stripe to a new generation for the pending marker named
// incarnation and records it in the marker. Concurrent callers in this
// process share one fence; each waits for it under its own context, and
// the shared work runs detached, bounded by fenceTimeout, and drained by
// Close. It reports whether the marker took the new generation (false: the
// marker was lost again meanwhile, and the caller should look again).
func (s *Store[T]) fence(ctx context.Context, key string, stripe int, incarnation string) (bool, error) {
	ch := s.fences.DoChan(strconv.Itoa(stripe)+"/"+incarnation, func() (any, error) {
		s.bg.Add(1)
		defer s.bg.Done()
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fenceTimeout)
		defer cancel()
		var gen int64
		err := s.step(fctx, StepDBFence, key, func() (err error) {
			gen, err = s.db.Fence(fctx, stripe, incarnation)
			return err
		})
		if err != nil {
			return false, err
		}
		s.st.fences.Add(1)
		var ok bool
		err = s.step(fctx, StepRedisConfirm, key, func() (err error) {
			ok, err = s.cache.Confirm(fctx, stripe, incarnation, gen)
			return err
		})
		if err == nil {
			s.opts.Logger.Info("memstore: redis lost a marker; stripe fenced", "stripe", stripe, "generation", gen)
		}
		return ok, err
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return false, r.Err
		}
		return r.Val.(bool), nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// maxFenceRounds bounds how often one call fences and looks again before it
// gives up: each round means Redis lost the stripe's marker once more while
// the call ran.
const maxFenceRounds = 3

var errFenceRounds = errors.New("redis kept losing the stripe's marker")
