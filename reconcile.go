package memstore

import (
	"context"
	"errors"
	"time"

	"github.com/memstore/memstore/internal/rediscache"
	"github.com/memstore/memstore/internal/sqlstore"
)

// reconcileBatch is how many outbox rows one pass repairs per round trip.
const reconcileBatch = 256

// Reconcile re-applies the cache invalidation of every outbox row older than
// Options.ReconcileAge, then removes those rows. A write whose end never
// reached Redis (its writer crashed, or Redis was down) is repaired here: its
// intent is cleared and any cached value older than its version is dropped.
// Re-applying a repair that is not needed drops nothing. It returns how many
// stale entries were dropped.
func (s *Store[T]) Reconcile(ctx context.Context) (int, error) {
	cutoff := time.Now().Add(-s.opts.ReconcileAge)
	dropped := 0
	for {
		rows, err := s.db.Pending(ctx, cutoff, reconcileBatch)
		if err != nil {
			return dropped, &OpError{Op: "reconcile", Err: classify(ctx, err)}
		}
		if len(rows) == 0 {
			return dropped, nil
		}
		ops := make([]rediscache.Op, len(rows))
		for i, r := range rows {
			ops[i] = rediscache.Op{Key: r.Key, Token: r.Token, Version: r.Version}
		}
		oks, errs := s.cache.RepairMany(ctx, ops)
		var done []sqlstore.OutboxRow
		for i, r := range rows {
			if errs[i] != nil {
				continue
			}
			done = append(done, r)
			if oks[i] {
				dropped++
				s.st.repairs.Add(1)
			}
		}
		if err := s.db.DeleteOutbox(ctx, done); err != nil {
			return dropped, &OpError{Op: "reconcile", Err: classify(ctx, err)}
		}
		s.st.outboxRows.Add(uint64(len(done)))
		if len(done) < len(rows) {
			// Redis failed some repairs: keep those rows for the next pass.
			return dropped, &OpError{Op: "reconcile", Err: errors.Join(ErrUnavailable, errors.Join(errs...))}
		}
		if len(rows) < reconcileBatch {
			return dropped, nil
		}
	}
}

func (s *Store[T]) reconcileLoop() {
	defer close(s.stopped)
	t := time.NewTicker(s.opts.ReconcileInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.ReconcileInterval+5*time.Second)
		if _, err := s.Reconcile(ctx); err != nil {
			s.opts.Logger.Warn("memstore: reconcile", "err", err)
		}
		cancel()
	}
}
