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
				if s.redisOK(ctx, errs[i]) {
					break // Redis is away: the rest of this batch would fail too
				}
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

// reconcileLoop runs Reconcile every ReconcileInterval, except while the
// breaker is open (the breaker logs the outage; the loop would only fail).
// It logs a failing pass once, then at most every reconcileLogEvery.
func (s *Store[T]) reconcileLoop() {
	defer close(s.stopped)
	t := time.NewTicker(s.opts.ReconcileInterval)
	defer t.Stop()
	var logged time.Time
	failed := 0
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		if !s.brk.allow() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.ReconcileInterval+5*time.Second)
		_, err := s.Reconcile(ctx)
		cancel()
		switch {
		case err == nil && failed > 0:
			s.opts.Logger.Info("memstore: reconcile works again", "failed_passes", failed)
			failed = 0
		case err != nil:
			failed++
			if time.Since(logged) >= reconcileLogEvery {
				s.opts.Logger.Warn("memstore: reconcile", "err", err, "failed_passes", failed)
				logged = time.Now()
			}
		}
	}
}

// reconcileLogEvery rate-limits the reconciler's failure lines.
const reconcileLogEvery = 30 * time.Second
