package memstore

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/memstore/memstore/internal/rediscache"
	"github.com/memstore/memstore/internal/sqlstore"
)

// Set stores v under key. When Set returns nil, every later Get anywhere
// returns v (or a newer value). An error wrapping ErrOutcomeUnknown means
// the database may or may not have applied the write (its commit's reply
// was lost); reads stay correct either way. Any other error means nothing
// was written.
func (s *Store[T]) Set(ctx context.Context, key string, v T, opts ...SetOption) (err error) {
	ctx, ob := s.observe(ctx, opSet)
	defer func() { ob.end(err) }()
	w, err := s.encode("set", key, v, opts)
	if err != nil {
		return s.count(err)
	}
	_, err = s.write(ctx, "set", []sqlstore.Write{w})
	return err
}

// Delete removes key. It writes a tombstone row, so versions keep growing
// and CompareAndSet stays exact across deletes.
func (s *Store[T]) Delete(ctx context.Context, key string) (err error) {
	ctx, ob := s.observe(ctx, opDelete)
	defer func() { ob.end(err) }()
	if err := s.checkKey("delete", key); err != nil {
		return s.count(err)
	}
	_, err = s.write(ctx, "delete", []sqlstore.Write{{Key: key, Delete: true}})
	return err
}

// CompareAndSet stores v only if key's row version is still expect (as
// returned by GetVersioned; 0 for a key that never existed). It returns the
// new version, or an error wrapping ErrConflict.
func (s *Store[T]) CompareAndSet(ctx context.Context, key string, v T, expect uint64, opts ...SetOption) (_ uint64, err error) {
	ctx, ob := s.observe(ctx, opCAS)
	defer func() { ob.end(err) }()
	w, err := s.encode("cas", key, v, opts)
	if err != nil {
		return 0, s.count(err)
	}
	w.Expect = &expect
	vers, err := s.write(ctx, "cas", []sqlstore.Write{w})
	if err != nil {
		return 0, err
	}
	return vers[0], nil
}

// SetMany stores every entry in one DB transaction, with the Redis steps
// pipelined. It is all or nothing in the DB.
func (s *Store[T]) SetMany(ctx context.Context, entries map[string]T, opts ...SetOption) (err error) {
	ctx, ob := s.observe(ctx, opSetMany)
	defer func() { ob.end(err) }()
	keys := make([]string, 0, len(entries))
	for k := range entries {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	ws := make([]sqlstore.Write, len(keys))
	for i, k := range keys {
		w, err := s.encode("setmany", k, entries[k], opts)
		if err != nil {
			return s.count(err)
		}
		ws[i] = w
	}
	_, err = s.write(ctx, "setmany", ws)
	return err
}

// DeleteMany removes every key in one DB transaction.
func (s *Store[T]) DeleteMany(ctx context.Context, keys []string) (err error) {
	ctx, ob := s.observe(ctx, opDeleteMany)
	defer func() { ob.end(err) }()
	keys = dedupe(keys)
	sort.Strings(keys)
	ws := make([]sqlstore.Write, len(keys))
	for i, k := range keys {
		if err := s.checkKey("deletemany", k); err != nil {
			return s.count(err)
		}
		ws[i] = sqlstore.Write{Key: k, Delete: true}
	}
	_, err = s.write(ctx, "deletemany", ws)
	return err
}

func (s *Store[T]) encode(op, key string, v T, opts []SetOption) (sqlstore.Write, error) {
	if err := s.checkKey(op, key); err != nil {
		return sqlstore.Write{}, err
	}
	var so setOptions
	for _, o := range opts {
		o(&so)
	}
	if err := so.check(); err != nil {
		return sqlstore.Write{}, &OpError{Op: op, Key: key, Err: err}
	}
	b, err := s.codec.Encode(v)
	if err != nil {
		return sqlstore.Write{}, &OpError{Op: op, Key: key, Err: errors.Join(ErrCodec, err)}
	}
	if len(b) > s.opts.MaxValueSize {
		return sqlstore.Write{}, &OpError{Op: op, Key: key, Err: fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(b), s.opts.MaxValueSize)}
	}
	return sqlstore.Write{Key: key, Value: b, Format: uint8(s.codec.Format()), TTL: so.ttl}, nil
}

// write runs the write protocol for a batch of rows:
//
//  1. begin (Lua): record an intent per key in its stripe's marker and drop
//     the key's value and lease, so no fill that read the old row can land
//     from now on. Begin answers the stripe's generation; a stripe whose
//     marker Redis lost is fenced first (fence.go).
//  2. the DB write: the rows, their versions, an outbox row each, committed
//     only if every stripe is still at the generation begin answered. A
//     stripe fenced meanwhile (Redis lost the intent) writes nothing, and
//     the write begins again.
//  3. end (Lua): clear the intents, after the call returned (cleanup.go).
//     Until then the intents send every reader to the database, which
//     holds the committed rows; an end that never runs is replayed from
//     the outbox by the reconciler.
//
// The DB write must commit while the intents surely live: it runs under
// a deadline of three quarters of IntentTTL from the first begin, and is
// aborted (nothing written) past it.
func (s *Store[T]) write(ctx context.Context, op string, ws []sqlstore.Write) ([]uint64, error) {
	key := ""
	if len(ws) == 1 {
		key = ws[0].Key
	}
	fail := func(err error) ([]uint64, error) {
		return nil, s.count(&OpError{Op: op, Key: key, Err: err})
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	keys := make([]string, len(ws))
	ops := make([]rediscache.Op, len(ws))
	for i := range ws {
		ws[i].Token = newToken()
		keys[i] = ws[i].Key
		ops[i] = rediscache.Op{Key: ws[i].Key, Token: ws[i].Token}
	}

	began := time.Now()
	commitBy := began.Add(s.opts.IntentTTL * 3 / 4)
	var marks []rediscache.Mark
	err := errBreakerOpen
	if s.brk.allow() {
		marks, err = s.begin(ctx, keys, ops, nil)
	} else {
		s.brk.writes.Add(1)
	}
	cacheDown := false
	if err != nil {
		unavailable := err == errBreakerOpen || s.redisOK(ctx, err)
		if !unavailable || s.opts.WritePolicy == WriteFailFast {
			// Nothing is committed. Clear whatever intents did land so
			// reads of those keys can fill again.
			switch {
			case unavailable && err != errBreakerOpen:
				s.later(ctx, taskEnd, ops...) // Redis is failing now: later
			case !unavailable:
				s.clear(ctx, ops)
			}
			if unavailable {
				return fail(errors.Join(ErrUnavailable, fmt.Errorf("redis: cannot record the write intent: %w", err)))
			}
			return fail(classify(ctx, err))
		}
		cacheDown = true
		s.opts.Logger.Debug("memstore: redis unavailable, writing the DB and leaving the repair to the outbox", "op", op, "err", err)
	} else {
		s.brk.success()
		s.st.intents.Add(uint64(len(ops)))
	}

	var vers []uint64
	for round := 0; ; round++ {
		for i := range ws {
			ws[i].Stripe = s.cache.Stripe(ws[i].Key)
			if cacheDown {
				ws[i].Unfenced = true
			} else {
				ws[i].Gen = marks[i].Gen
			}
		}
		err = s.stepMany(ctx, StepDBWrite, keys, func() (err error) {
			vers, err = s.db.Apply(ctx, ws, commitBy)
			return err
		})
		if !errors.Is(err, sqlstore.ErrFenced) || round >= maxFenceRounds {
			break
		}
		// Redis lost the intents of this write, and a reader fenced their
		// stripe: nothing was written. Record them again under the new
		// generation and retry.
		s.st.fencedWrites.Add(1)
		if marks, err = s.begin(ctx, keys, ops, marks); err != nil {
			s.clear(ctx, ops)
			if s.redisOK(ctx, err) {
				return fail(errors.Join(ErrUnavailable, fmt.Errorf("redis: cannot record the write intent: %w", err)))
			}
			return fail(classify(ctx, err))
		}
	}
	if err != nil {
		switch {
		case errors.Is(err, sqlstore.ErrCommitUnknown):
			// The commit may still land after this call returns (a
			// connection lost mid-commit): clearing the intents now would
			// let a reader fill the old row before it. They stay; if the
			// write committed, the reconciler ends it from its row, and if
			// not, they expire after IntentTTL.
			return fail(errors.Join(ErrOutcomeUnknown, err))
		case errors.Is(err, sqlstore.ErrConflict):
			s.clear(ctx, ops)
			return fail(ErrConflict)
		case errors.Is(err, sqlstore.ErrFenced):
			s.clear(ctx, ops)
			return fail(errors.Join(ErrUnavailable, errFenceRounds))
		case errors.As(err, new(hookError)):
			// A hook failing after the statement ran simulates a crash
			// after the commit: leave the intents for the reconciler.
			if vers != nil {
				return fail(errors.Join(ErrOutcomeUnknown, err))
			}
			s.clear(ctx, ops)
			return fail(err)
		case ctx.Err() == nil && time.Now().After(commitBy):
			s.clear(ctx, ops)
			return fail(errors.Join(ErrUnavailable, errors.New("the DB write outlasted the write intent and was aborted")))
		}
		s.clear(ctx, ops)
		return fail(classify(ctx, err))
	}
	if cacheDown {
		return vers, s.count(&OpError{Op: op, Key: key, Err: errors.Join(ErrOutcomeUnknown, errors.New("redis was unreachable at begin"))})
	}
	// The end follows in the background (cleanup.go): the intent sends
	// every reader to the database until then, and the row is committed.
	s.later(ctx, taskEnd, ops...)
	return vers, nil
}

// begin records the intents of ops and returns, per key, the generation
// the write must commit under. A stripe whose marker is pending is fenced,
// and the intents recorded again, until every key has a generation. prev,
// if set, are the marks of a write whose stripes were fenced meanwhile: a
// stripe whose marker still answers the same generation is behind the
// database (fenced for a marker lost since), so it is fenced again.
func (s *Store[T]) begin(ctx context.Context, keys []string, ops []rediscache.Op, prev []rediscache.Mark) ([]rediscache.Mark, error) {
	retried := false
	for round := 0; ; round++ {
		var marks []rediscache.Mark
		err := s.stepMany(ctx, StepRedisBegin, keys, func() error {
			rctx, cancel := s.writeCtx(ctx, len(ops))
			defer cancel()
			var err error
			if len(ops) == 1 {
				var m rediscache.Mark
				m, err = s.cache.Begin(rctx, ops[0].Key, ops[0].Token, s.opts.IntentTTL)
				marks = []rediscache.Mark{m}
			} else {
				var errs []error
				marks, errs = s.cache.BeginMany(rctx, ops, s.opts.IntentTTL)
				err = errors.Join(errs...)
			}
			if err == nil && s.opts.ReplicaAcks > 0 {
				// The intents must survive a failover (Options.ReplicaAcks).
				err = s.cache.AwaitReplicas(rctx, keys, s.opts.ReplicaAcks, 2*s.opts.RedisBudget)
			}
			return err
		})
		if err != nil && !retried && s.retryable(ctx, err) {
			// Begin is idempotent per token: one more try outlasts a
			// latency spike, and an outage opens the breaker meanwhile.
			retried = true
			round--
			continue
		}
		if err != nil {
			return nil, err
		}
		// Stripes to fence: pending markers, and markers behind the DB.
		todo := map[int]string{}
		for i, m := range marks {
			if m.Gen == 0 || prev != nil && prev[i] == m {
				todo[s.cache.Stripe(ops[i].Key)] = m.Incarnation
			}
		}
		if len(todo) == 0 {
			return marks, nil
		}
		if round >= maxFenceRounds {
			return nil, errors.Join(ErrUnavailable, errFenceRounds)
		}
		for stripe, inc := range todo {
			if _, err := s.fence(ctx, keyIn(keys, ops, stripe, s), stripe, inc); err != nil {
				return nil, err
			}
		}
		prev = nil
	}
}

// retryable reports whether a write's idempotent Redis step that failed
// with err may run once more: Redis failed rather than answered, the
// breaker is still closed, and ctx has room for another budget and more.
// It records the failure with the breaker.
func (s *Store[T]) retryable(ctx context.Context, err error) bool {
	if !s.redisOK(ctx, err) || !s.brk.allow() {
		return false
	}
	d, ok := ctx.Deadline()
	return !ok || time.Until(d) > 2*writeBudgets*s.opts.RedisBudget
}

// keyIn names one key of the batch in stripe, for the fence's hooks.
func keyIn[T any](keys []string, ops []rediscache.Op, stripe int, s *Store[T]) string {
	for i := range ops {
		if s.cache.Stripe(ops[i].Key) == stripe {
			return keys[i]
		}
	}
	return ""
}
