package memstore

import (
	"context"
	"errors"
	"time"

	"github.com/memstore/memstore/internal/rediscache"
)

// reconcileBatch is how many written rows one pass repairs per round trip.
const reconcileBatch = 256

// Reconcile re-applies the end of every write committed between the last
// pass and Options.ReconcileAge ago: it clears the write's intent if it is
// still recorded (its writer died, or Redis was away, before the end ran)
// and drops a cached value older than the committed version (a Redis that
// failed over to a replica which missed the write). Re-applying an end
// that already ran changes nothing. It returns how many stale entries it
// dropped.
//
// The rows are their own outbox: each keeps its last write's token and
// time, indexed. A namespace's progress is recorded in the database, so a
// restarted store, or another process's, picks up where the last pass
// ended. Only the last write of a row is known: if several writes of one
// key all lost their ends before a pass, the earlier ones' intents expire
// after IntentTTL instead.
func (s *Store[T]) Reconcile(ctx context.Context) (int, error) {
	// The database's clock, which stamped the rows: no two hosts' clocks
	// are compared.
	now, from, found, err := s.db.Reconciled(ctx)
	if err != nil {
		return 0, &OpError{Op: "reconcile", Err: classify(ctx, err)}
	}
	upto := now - s.opts.ReconcileAge.Milliseconds()
	if !found {
		// Never reconciled: writes older than an intent's life need no end.
		from = upto - s.opts.IntentTTL.Milliseconds()
	}
	if from >= upto {
		return 0, nil
	}
	dropped := 0
	after, afterKey := from, ""
	for {
		rows, err := s.db.Written(ctx, after, afterKey, upto, reconcileBatch)
		if err != nil {
			return dropped, &OpError{Op: "reconcile", Err: classify(ctx, err)}
		}
		ops := make([]rediscache.Op, len(rows))
		for i, r := range rows {
			ops[i] = rediscache.Op{Key: r.Key, Token: r.Token, Version: r.Version}
		}
		var oks []bool
		var errs []error
		if len(ops) > 0 {
			oks, errs = s.cache.RepairMany(ctx, ops)
		}
		for i, r := range rows {
			if errs[i] != nil {
				s.redisOK(ctx, errs[i])
				// Keep the failed row (and the rest) for the next pass.
				if r.At-1 > from {
					_ = s.db.SetReconciled(ctx, r.At-1)
				}
				return dropped, &OpError{Op: "reconcile", Err: errors.Join(ErrUnavailable, errs[i])}
			}
			s.st.reconciled.Add(1)
			if oks[i] {
				dropped++
				s.st.repairs.Add(1)
			}
		}
		if len(rows) < reconcileBatch {
			break
		}
		after, afterKey = rows[len(rows)-1].At, rows[len(rows)-1].Key
	}
	if err := s.db.SetReconciled(ctx, upto); err != nil {
		return dropped, &OpError{Op: "reconcile", Err: classify(ctx, err)}
	}
	return dropped, nil
}

// reconcileLoop runs Reconcile every ReconcileInterval, except while the
// breaker is open (the breaker logs the outage; the loop would only fail).
// It logs a failing pass once, then at most every reconcileLogEvery. Each
// tick also looks at the database pool (pool.go).
func (s *Store[T]) reconcileLoop() {
	defer close(s.stopped)
	t := time.NewTicker(s.opts.ReconcileInterval)
	defer t.Stop()
	var logged time.Time
	var pool poolWatch
	failed := 0
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.watchPool(&pool, time.Now())
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
