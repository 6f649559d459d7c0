package memstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/memstore/memstore/codec"
	"github.com/memstore/memstore/internal/rediscache"
	"github.com/memstore/memstore/internal/sqlstore"
)

// loaded is one key's state as a read found it: from a cache hit or a DB row.
type loaded struct {
	payload []byte
	version uint64
	found   bool
	hit     bool
	err     error
	join    *flight // no result: wait for this flight of another caller
}

// flight is one in-process load of a key that concurrent Gets may share.
//
// Sharing is where "strong" caches break. A caller that joins a flight after
// the flight's Redis GET was sent, or after its DB read began, may be handed
// a value that a write completed before the caller started has replaced:
//
//	leader: GET (miss) ... DB read (old row)
//	writer:                                  begin, commit, end  (returns)
//	joiner:                                                       Get starts, joins, takes old row
//
// So a joiner takes a shared result only if it is provably fresh for it:
// a hit whose GET was sent after the joiner started, or a DB row read after
// the joiner started, or a DB row whose fill then succeeded (the lease was
// held from before the read to after it, so no write began in between and
// the row was current when the joiner started). Otherwise the joiner runs
// its own load. The flight closes to joiners before its fill is sent: a
// joiner arriving after the fill could see a write complete in between.
type flight struct {
	done    chan struct{}
	open    bool      // guarded by Store.mu
	getSent time.Time // when the last Redis get was sent
	dbRead  time.Time // when the DB read began (zero: none)
	filled  bool      // the fill of the DB row was installed
	res     loaded
}

// acceptable reports whether a caller that started at start may take f's
// result. The leader's fields are written before done is closed and read
// after, so no lock is needed.
func (f *flight) acceptable(start time.Time) bool {
	switch {
	case f.res.err != nil:
		return !isCtxErr(f.res.err) // the leader gave up; try ourselves
	case f.res.hit:
		return f.getSent.After(start)
	default:
		return f.filled || f.dbRead.After(start)
	}
}

// Get returns the value of key, or an error wrapping ErrNotFound.
func (s *Store[T]) Get(ctx context.Context, key string) (T, error) {
	ctx, ob := s.observe(ctx, opGet)
	v, _, err := s.get(ctx, "get", key)
	ob.end(err)
	return v, err
}

// GetVersioned returns the value of key and its row version, for
// CompareAndSet. A missing key returns an error wrapping ErrNotFound and,
// still, a version: the one CompareAndSet must be given to create the key.
// That is 0 for a key that never existed, and the version of its tombstone
// for a deleted one, so versions keep growing across deletes and a
// compare-and-set that raced with another create loses.
func (s *Store[T]) GetVersioned(ctx context.Context, key string) (T, uint64, error) {
	ctx, ob := s.observe(ctx, opGet)
	v, ver, err := s.get(ctx, "get", key)
	ob.end(err)
	return v, ver, err
}

// Refresh drops key's cached entry and reloads it from the DB.
func (s *Store[T]) Refresh(ctx context.Context, key string) (_ T, err error) {
	ctx, ob := s.observe(ctx, opRefresh)
	defer func() { ob.end(err) }()
	var zero T
	if err := s.checkKey("refresh", key); err != nil {
		return zero, s.count(err)
	}
	if s.brk.allow() {
		err := s.step(ctx, StepRedisDel, key, func() error {
			rctx, cancel := s.redisCtx(ctx)
			defer cancel()
			return s.cache.Drop(rctx, key, nil)
		})
		// Redis down: the DB read below is the reload, and nothing is cached.
		if err != nil && !s.redisOK(ctx, err) {
			return zero, s.count(&OpError{Op: "refresh", Key: key, Err: classify(ctx, err)})
		}
	}
	v, _, err := s.get(ctx, "refresh", key)
	return v, err
}

func (s *Store[T]) get(ctx context.Context, op, key string) (T, uint64, error) {
	var zero T
	if err := s.checkKey(op, key); err != nil {
		return zero, 0, s.count(err)
	}
	if err := ctx.Err(); err != nil {
		return zero, 0, s.count(&OpError{Op: op, Key: key, Err: err})
	}
	start := time.Now()
	for {
		s.mu.Lock()
		f := s.flights[key]
		if f != nil && f.open {
			s.mu.Unlock()
			select {
			case <-f.done:
			case <-ctx.Done():
				return zero, 0, s.count(&OpError{Op: op, Key: key, Err: ctx.Err()})
			}
			if f.acceptable(start) {
				s.st.coalesced.Add(1)
				return s.result(op, key, f.res)
			}
			continue
		}
		s.mu.Unlock()
		l, f := s.load(ctx, key)
		if l.join != nil {
			continue // another caller leads the DB read now: join it above
		}
		if f != nil {
			f.res = l
			s.mu.Lock()
			f.open = false
			if s.flights[key] == f {
				delete(s.flights, key)
			}
			s.mu.Unlock()
			close(f.done)
		}
		return s.result(op, key, l)
	}
}

// lead registers a flight for key that later callers may join. A hit never
// gets here: it needs no flight, so the hit path takes no allocation or
// wait beyond the one script call. With join set, a flight of another
// caller that is still open is returned instead, and joined is true: the
// caller waits for it (get decides, by flight.acceptable, whether its
// result may be taken) rather than doing the same work.
func (s *Store[T]) lead(key string, getSent time.Time, join bool) (f *flight, joined bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g := s.flights[key]; join && g != nil && g.open {
		return g, true
	}
	f = &flight{done: make(chan struct{}), open: true, getSent: getSent}
	s.flights[key] = f
	return f, false
}

// fallback reads the DB for a caller that could not use Redis (the breaker
// is open, or its round trip failed), filling nothing. Callers caught by
// one Redis spike all come back at once: the first leads the DB read, and
// the others join its flight, so a hot key costs the DB one read per
// process, not one per caller.
func (s *Store[T]) fallback(ctx context.Context, key string, sent time.Time) (loaded, *flight) {
	f, joined := s.lead(key, sent, true)
	if joined {
		return loaded{join: f}, nil
	}
	return s.loadDB(ctx, key, f, ""), f
}

// result decodes a loaded state for one caller. Each caller decodes its own
// copy, so callers never share mutable values.
func (s *Store[T]) result(op, key string, l loaded) (T, uint64, error) {
	var zero T
	if l.err != nil {
		return zero, 0, s.count(&OpError{Op: op, Key: key, Err: l.err})
	}
	if !l.found {
		return zero, l.version, &OpError{Op: op, Key: key, Err: ErrNotFound}
	}
	v, err := s.decode(l.payload)
	if err != nil {
		return zero, 0, s.count(&OpError{Op: op, Key: key, Err: errors.Join(ErrCodec, err)})
	}
	return v, l.version, nil
}

// maxCorrupt bounds how often one Get drops a bad cache entry and retries
// before it reads the DB without filling.
const maxCorrupt = 3

// load is one caller's read: a plain GET, and on a miss the Lua get, then
// a hit, a wait for another reader's lease, or a DB read (filled under our
// own lease). Past a hit it leads a flight that other callers in this
// process may join; it returns that flight (nil for a plain hit) for get to
// close. Every Redis round trip runs under the Redis budget; one that fails
// or overruns it sends the read to the DB, filling nothing, and so does an
// open breaker, at once.
func (s *Store[T]) load(ctx context.Context, key string) (loaded, *flight) {
	if !s.brk.allow() {
		s.brk.reads.Add(1)
		return s.fallback(ctx, key, time.Now())
	}
	// The hit path: one plain GET, no Lua, no token, no flight.
	if err := s.before(ctx, StepRedisGet, key); err != nil {
		return loaded{err: err}, nil
	}
	sent := time.Now()
	rctx, cancel := s.redisCtx(ctx)
	raw, ok, err := s.cache.Hit(rctx, key)
	cancel()
	err = s.after(ctx, StepRedisGet, key, err)
	switch {
	case s.redisOK(ctx, err):
		s.opts.Logger.Debug("memstore: redis unavailable, reading the DB", "key", key, "err", err)
		return s.fallback(ctx, key, sent)
	case err != nil:
		return loaded{err: classify(ctx, err)}, nil
	case ok:
		if l, err := s.open(raw); err == nil {
			s.st.hits.Add(1)
			return l, nil
		}
		// Bad entries are handled below, by the script path.
	}
	return s.miss(ctx, key)
}

// miss runs the get script until it answers a hit, a lease or an intent.
func (s *Store[T]) miss(ctx context.Context, key string) (loaded, *flight) {
	token := newToken()
	force := false
	var f *flight
	var waitStart time.Time
	backoff := 500 * time.Microsecond
	corrupt, fences := 0, 0
	fromDB := func(sent time.Time) (loaded, *flight) {
		if f == nil {
			return s.fallback(ctx, key, sent)
		}
		return s.loadDB(ctx, key, f, ""), f
	}
	for {
		if err := s.before(ctx, StepRedisGet, key); err != nil {
			return loaded{err: err}, f
		}
		sent := time.Now()
		rctx, cancel := s.redisCtx(ctx)
		r, err := s.cache.Get(rctx, key, token, force)
		cancel()
		err = s.after(ctx, StepRedisGet, key, err)
		if s.redisOK(ctx, err) {
			// Redis is unreachable: the DB answers, and nothing is filled.
			s.opts.Logger.Debug("memstore: redis unavailable, reading the DB", "key", key, "err", err)
			return fromDB(sent)
		}
		if err != nil {
			return loaded{err: classify(ctx, err)}, f
		}
		if f != nil {
			f.getSent = sent
		}
		switch r.Kind {
		case rediscache.Hit:
			l, err := s.open(r.Value)
			if err == nil {
				s.st.hits.Add(1)
				return l, f
			}
			// A corrupt or foreign entry is never decoded: drop exactly
			// those bytes and load again.
			s.st.corrupt.Add(1)
			s.opts.Logger.Warn("memstore: dropping bad cache entry", "key", key, "err", err)
			rctx, cancel := s.redisCtx(ctx)
			_ = s.cache.Drop(rctx, key, r.Value)
			cancel()
			if corrupt++; corrupt >= maxCorrupt {
				return fromDB(sent)
			}
			continue
		case rediscache.Intent:
			return fromDB(sent)
		case rediscache.Pending:
			// Redis lost the stripe's marker: fence the stripe (fence.go),
			// then look again. The DB answers meanwhile if fencing fails:
			// reading it is always safe, filling is not.
			ok, err := s.fence(ctx, key, s.cache.Stripe(key), r.Incarnation)
			switch {
			case ctx.Err() != nil:
				return loaded{err: ctx.Err()}, f
			case errors.As(err, new(hookError)):
				return loaded{err: err}, f
			case err != nil || (!ok && fences >= maxFenceRounds):
				return fromDB(sent)
			}
			fences++
			continue
		}
		if f == nil {
			// Busy: a caller in this process that waits for the same
			// lease already polls Redis; wait for it instead. A lease is
			// ours to load under, whatever else is in flight.
			var joined bool
			if f, joined = s.lead(key, sent, r.Kind != rediscache.Lease); joined {
				return loaded{join: f}, nil
			}
		}
		if r.Kind == rediscache.Lease {
			return s.loadDB(ctx, key, f, token), f
		}
		// Busy: another process is loading this key. Wait for its fill
		// rather than load the DB too. When the wait runs out, take the
		// lease over before reading, so the stalled holder's fill is
		// refused and cannot install an older row after ours. The wait
		// leaves half of what the context has left for the DB read.
		if waitStart.IsZero() {
			waitStart = time.Now()
			s.st.leaseWaits.Add(1)
		}
		if s.waitedOut(ctx, waitStart) {
			force = true
			s.st.takeovers.Add(1)
			continue
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return loaded{err: ctx.Err()}, f
		}
		backoff = min(backoff*2, 8*time.Millisecond)
	}
}

// waitedOut reports whether a wait for another reader's lease that began
// at start has lasted long enough: LeaseWait, or half of what ctx had left
// when the wait began, whichever is first.
func (s *Store[T]) waitedOut(ctx context.Context, start time.Time) bool {
	limit := s.opts.LeaseWait
	if d, ok := ctx.Deadline(); ok {
		limit = min(limit, d.Sub(start)/2)
	}
	return time.Since(start) >= limit
}

// open checks a cached entry's header and format.
func (s *Store[T]) open(raw []byte) (loaded, error) {
	h, payload, err := codec.Open(raw)
	if err != nil {
		return loaded{}, err
	}
	if h.Format != s.codec.Format() && !h.NotFound {
		return loaded{}, fmt.Errorf("%w: entry format %d, store codec %d", codec.ErrCorrupt, h.Format, s.codec.Format())
	}
	return loaded{payload: payload, version: h.Version, found: !h.NotFound, hit: true}, nil
}

// loadDB reads the row and, if token holds a lease, offers it to the cache.
func (s *Store[T]) loadDB(ctx context.Context, key string, f *flight, token string) loaded {
	s.st.misses.Add(1)
	var row sqlstore.Row
	err := s.before(ctx, StepDBLoad, key)
	if err == nil {
		f.dbRead = time.Now()
		row, err = s.db.Load(ctx, key)
		err = s.after(ctx, StepDBLoad, key, err)
	}
	if err != nil {
		if token != "" {
			// Let waiters in other processes go on soon; never cache a
			// failure (nothing negative is cached on a DB outage).
			s.later(ctx, taskUnlease, rediscache.Op{Key: key, Token: token})
		}
		return loaded{err: classify(ctx, err)}
	}
	s.st.dbLoads.Add(1)
	l, err := s.fromRow(row)
	if err != nil {
		if token != "" {
			s.later(ctx, taskUnlease, rediscache.Op{Key: key, Token: token})
		}
		return loaded{err: err}
	}
	if token == "" {
		return l
	}
	sealed := s.seal(l)
	s.mu.Lock()
	f.open = false
	s.mu.Unlock()
	var ok bool
	err = s.before(ctx, StepRedisFill, key)
	if err == nil {
		rctx, cancel := s.redisCtx(ctx)
		ok, err = s.cache.Fill(rctx, key, token, sealed, s.ttl(row.TTL))
		cancel()
		err = s.after(ctx, StepRedisFill, key, err)
	}
	if errors.As(err, new(hookError)) {
		return loaded{err: err}
	}
	s.redisOK(ctx, err)
	if ok {
		f.filled = true
		s.st.fills.Add(1)
	} else {
		s.st.rejected.Add(1)
	}
	// The row is returned whether or not the fill landed: it was read after
	// this caller started, so it is at least as new as every write that
	// completed before.
	return l
}

// fromRow is a read's state from a DB row: absent for a missing or deleted
// row, an error for a row another codec wrote.
func (s *Store[T]) fromRow(row sqlstore.Row) (loaded, error) {
	l := loaded{payload: row.Value, version: row.Version, found: row.Found && !row.Tombstone}
	if l.found && row.Format != uint8(s.codec.Format()) {
		return loaded{}, fmt.Errorf("%w: row format %d, store codec %d", ErrCodec, row.Format, s.codec.Format())
	}
	return l, nil
}

// GetMany returns the values of keys that exist. Each key gets the
// decision Get makes, in bulk: one script call per stripe answers every
// key (a hit, or a lease for a miss), in one pipelined round trip per Redis
// node; the misses are loaded from the DB in one query and the leased ones
// filled in one more pipeline. A key the bulk path cannot settle (another
// reader's lease, a pending marker, a corrupt entry) goes through Get. On
// error, the map holds the keys that did load.
func (s *Store[T]) GetMany(ctx context.Context, keys []string) (_ map[string]T, err error) {
	ctx, ob := s.observe(ctx, opGetMany)
	defer func() { ob.end(err) }()
	out := make(map[string]T, len(keys))
	keys = dedupe(keys)
	for _, k := range keys {
		if err := s.checkKey("getmany", k); err != nil {
			return out, s.count(err)
		}
	}
	if err := ctx.Err(); err != nil {
		return out, s.count(&OpError{Op: "getmany", Err: err})
	}
	token := newToken()
	var res []rediscache.Result
	var errs []error
	if s.brk.allow() {
		err := s.stepMany(ctx, StepRedisGet, keys, func() error {
			rctx, cancel := s.batchCtx(ctx, len(keys))
			defer cancel()
			res, errs = s.cache.GetMany(rctx, keys, token)
			return nil
		})
		if err != nil {
			return out, s.count(&OpError{Op: "getmany", Err: err})
		}
	} else {
		s.brk.reads.Add(uint64(len(keys)))
		res, errs = make([]rediscache.Result, len(keys)), make([]error, len(keys))
		for i := range errs {
			errs[i] = errBreakerOpen
		}
	}
	var errsOut []error
	var leased, unfilled, single []string
	for i, k := range keys {
		switch {
		case errs[i] == errBreakerOpen:
			unfilled = append(unfilled, k)
		case errs[i] != nil:
			if !s.redisOK(ctx, errs[i]) {
				errsOut = append(errsOut, &OpError{Op: "getmany", Key: k, Err: classify(ctx, errs[i])})
				continue
			}
			unfilled = append(unfilled, k)
		case res[i].Kind == rediscache.Hit:
			l, err := s.open(res[i].Value)
			if err != nil {
				single = append(single, k) // Get drops the bad entry
				continue
			}
			s.st.hits.Add(1)
			if err := s.put(out, "getmany", k, l); err != nil {
				errsOut = append(errsOut, err)
			}
		case res[i].Kind == rediscache.Lease:
			leased = append(leased, k)
		case res[i].Kind == rediscache.Intent:
			unfilled = append(unfilled, k)
		default: // Busy, or Pending: Get waits, or fences the stripe
			single = append(single, k)
		}
	}
	if len(leased)+len(unfilled) > 0 {
		if err := s.loadMany(ctx, token, leased, unfilled, out); err != nil {
			errsOut = append(errsOut, err)
		}
	}
	for _, k := range single {
		v, _, err := s.get(ctx, "getmany", k)
		switch {
		case err == nil:
			out[k] = v
		case !errors.Is(err, ErrNotFound):
			errsOut = append(errsOut, err)
		}
	}
	return out, errors.Join(errsOut...)
}

// loadMany is GetMany's DB read: the rows of leased (filled under token)
// and of unfilled keys, in one query, decoded into out.
func (s *Store[T]) loadMany(ctx context.Context, token string, leased, unfilled []string, out map[string]T) error {
	keys := append(leased[:len(leased):len(leased)], unfilled...)
	var rows map[string]sqlstore.Row
	err := s.stepMany(ctx, StepDBLoad, keys, func() (err error) {
		rows, err = s.db.LoadMany(ctx, keys)
		return err
	})
	if err != nil {
		for _, k := range leased {
			s.later(ctx, taskUnlease, rediscache.Op{Key: k, Token: token})
		}
		return &OpError{Op: "getmany", Err: classify(ctx, err)}
	}
	s.st.misses.Add(uint64(len(keys)))
	s.st.dbLoads.Add(uint64(len(keys)))
	var errs []error
	var fills []rediscache.Op
	for j, k := range keys {
		row := rows[k]
		l, err := s.fromRow(row)
		if err != nil {
			err = s.count(&OpError{Op: "getmany", Key: k, Err: err})
		} else {
			err = s.put(out, "getmany", k, l)
		}
		if err != nil {
			errs = append(errs, err)
			if j < len(leased) {
				s.later(ctx, taskUnlease, rediscache.Op{Key: k, Token: token})
			}
			continue
		}
		if j < len(leased) {
			fills = append(fills, rediscache.Op{Key: k, Token: token, TTL: s.ttl(row.TTL), Sealed: s.seal(l)})
		}
	}
	if len(fills) == 0 {
		return errors.Join(errs...)
	}
	fkeys := make([]string, len(fills))
	for j, f := range fills {
		fkeys[j] = f.Key
	}
	_ = s.stepMany(ctx, StepRedisFill, fkeys, func() error {
		rctx, cancel := s.batchCtx(ctx, len(fills))
		defer cancel()
		oks, ferrs := s.cache.FillMany(rctx, fills)
		s.redisOK(ctx, errors.Join(ferrs...))
		for _, ok := range oks {
			if ok {
				s.st.fills.Add(1)
			} else {
				s.st.rejected.Add(1)
			}
		}
		return nil
	})
	return errors.Join(errs...)
}

// decode decodes a payload. Payloads are views of a Redis reply or a row
// read for this call, never modified or reused after, so a codec that can
// return a value sharing them (codec.KeepingDecoder) may.
func (s *Store[T]) decode(b []byte) (T, error) {
	if s.keeping != nil {
		return s.keeping.DecodeKeeping(b)
	}
	return s.codec.Decode(b)
}

// put decodes l into out (absent keys stay absent).
func (s *Store[T]) put(out map[string]T, op, key string, l loaded) error {
	if !l.found {
		return nil
	}
	v, err := s.decode(l.payload)
	if err != nil {
		return s.count(&OpError{Op: op, Key: key, Err: errors.Join(ErrCodec, err)})
	}
	out[key] = v
	return nil
}

// stepMany runs f between the hooks of st for each key of a batch.
func (s *Store[T]) stepMany(ctx context.Context, st Step, keys []string, f func() error) error {
	f = s.traceFunc(ctx, st, f) // otel.go
	if s.opts.Hook == nil {
		return f()
	}
	for _, k := range keys {
		if err := s.hook(ctx, st, Before, k, nil); err != nil {
			return hookError{err}
		}
	}
	err := f()
	for _, k := range keys {
		if herr := s.hook(ctx, st, After, k, err); herr != nil {
			return hookError{herr}
		}
	}
	return err
}

func dedupe(keys []string) []string {
	seen := make(map[string]struct{}, len(keys))
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		if _, ok := seen[k]; !ok {
			seen[k] = struct{}{}
			out = append(out, k)
		}
	}
	return out
}

// seal builds the cache entry for a loaded row. A missing or deleted row is
// cached as a not-found header, never as a payload a user could also store.
func (s *Store[T]) seal(l loaded) []byte {
	if !l.found {
		return codec.Seal(nil, codec.Header{Version: l.version, NotFound: true}, nil)
	}
	return codec.Seal(nil, codec.Header{Format: s.codec.Format(), Version: l.version}, l.payload)
}
