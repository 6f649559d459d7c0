package memstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/singleflight"

	"github.com/memstore/memstore/codec"
	"github.com/memstore/memstore/internal/rediscache"
	"github.com/memstore/memstore/internal/sqlstore"
)

// Store is a typed, linearizable-per-key memory store over Redis and a SQL
// database. It is safe for concurrent use. See the package documentation for
// the protocol and its guarantees.
type Store[T any] struct {
	opts    Options[T]
	codec   codec.Codec[T]
	keeping codec.KeepingDecoder[T] // codec, if it implements it
	cache   *rediscache.Cache
	db      *sqlstore.DB

	mu        sync.Mutex
	flights   map[string]*flight
	fences    singleflight.Group // one fence per stripe and marker at a time (fence.go)
	bg        sync.WaitGroup     // detached work that Close waits for
	brk       breaker            // breaker.go
	deadlines deadlines          // budget.go
	tasks     chan task          // cleanup.go
	flush     chan struct{}      // cleanup.go: Sync ends the linger
	tel       *telemetry         // otel.go

	st stats

	stop      chan struct{}
	stopped   chan struct{}
	closeOnce sync.Once
}

// New returns a store over the caller's Redis client and database.
//
// The go-redis client must have ContextTimeoutEnabled set: without it
// go-redis ignores a call's deadline and waits for its own ReadTimeout, so
// no call could honour its context. New refuses a *redis.Client or
// *redis.ClusterClient without it. New starts the background reconciler
// unless Options.DisableReconciler is set; Close stops it.
//
// On PostgreSQL, give db as many idle connections as it has concurrent
// callers (db.SetMaxIdleConns): database/sql keeps 2, so past two
// concurrent statements it closes a connection at every release and opens
// one for the next statement, and the store's statements, prepared once
// per connection, are prepared again on each. At 16 writers, 32 idle
// connections made the store's Sets 3 to 4 times as fast as the default
// did (benchkit and memtest use 32). The reconciler's loop warns through
// Options.Logger when the pool closes 50 or more idle connections a second.
func New[T any](rdb redis.UniversalClient, db *sql.DB, opts *Options[T]) (*Store[T], error) {
	if rdb == nil || db == nil {
		return nil, errors.New("memstore: New needs a Redis client and a *sql.DB")
	}
	if !contextTimeouts(rdb) {
		return nil, errors.New("memstore: New: the go-redis client has ContextTimeoutEnabled off, so go-redis would ignore each call's deadline and wait its ReadTimeout instead; set ContextTimeoutEnabled: true in its options")
	}
	var o Options[T]
	if opts != nil {
		o = *opts
	}
	o = o.withDefaults()
	if err := checkNamespace(o.Namespace); err != nil {
		return nil, fmt.Errorf("memstore: Options.Namespace %q: %w", o.Namespace, err)
	}
	sdb, err := sqlstore.New(db, sqlstore.Dialect(o.Dialect), o.Namespace)
	if err != nil {
		return nil, err
	}
	s := &Store[T]{
		opts:    o,
		codec:   o.Codec,
		cache:   rediscache.New(rdb, o.Namespace, o.LeaseTTL),
		db:      sdb,
		flights: make(map[string]*flight),
		tasks:   make(chan task, cleanupQueue),
		flush:   make(chan struct{}, 1),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	s.keeping, _ = o.Codec.(codec.KeepingDecoder[T])
	if s.opts.ReplicaAcks == 0 && rediscache.Replicated(rdb) {
		s.opts.ReplicaAcks = 1
	}
	if s.opts.DisableReplicaAcks {
		s.opts.ReplicaAcks = 0
	}
	s.brk.threshold = int32(o.BreakerThreshold)
	s.brk.quiet = 2 * o.RedisBudget
	if s.tel, err = newTelemetry(o.Namespace, o.MeterProvider, o.TracerProvider, &s.st, &s.brk, func() int { return len(s.tasks) }); err != nil {
		return nil, fmt.Errorf("memstore: OpenTelemetry instruments: %w", err)
	}
	if o.AutoMigrate {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.Migrate(ctx); err != nil {
			return nil, err
		}
	}
	s.bg.Add(1)
	go s.cleanupLoop()
	if o.DisableReconciler {
		close(s.stopped)
	} else {
		go s.reconcileLoop()
	}
	return s, nil
}

// contextTimeouts reports whether a go-redis client honours contexts'
// deadlines (clients of other types are taken on trust).
func contextTimeouts(rdb redis.UniversalClient) bool {
	switch c := rdb.(type) {
	case *redis.Client:
		return c.Options().ContextTimeoutEnabled
	case *redis.ClusterClient:
		return c.Options().ContextTimeoutEnabled
	}
	return true
}

// Migrate creates the store's tables if they do not exist.
func (s *Store[T]) Migrate(ctx context.Context) error {
	if err := s.db.Migrate(ctx); err != nil {
		return &OpError{Op: "migrate", Err: errors.Join(ErrUnavailable, err)}
	}
	return nil
}

// Close stops the background reconciler and the breaker's probe, and waits
// for the store's queued cleanup (at most a few seconds). It does not close
// the Redis client or the database, which belong to the caller.
func (s *Store[T]) Close() error {
	s.closeOnce.Do(func() { close(s.stop) })
	<-s.stopped
	s.bg.Wait()
	s.tel.close()
	return nil
}

// Namespace returns the store's namespace.
func (s *Store[T]) Namespace() string { return s.opts.Namespace }

// Dialect returns the SQL dialect in use.
func (s *Store[T]) Dialect() Dialect { return Dialect(s.db.Dialect()) }

// checkKey applies the key rule, the same on every backend: a key is 1 to
// Options.MaxKeySize bytes of valid UTF-8 without a NUL byte (PostgreSQL's
// text can hold nothing else).
func (s *Store[T]) checkKey(op, key string) error {
	bad := func(why string) error {
		shown := key
		if len(shown) > 32 {
			shown = strings.ToValidUTF8(shown[:32], "") + "…"
		}
		return &OpError{Op: op, Key: shown, Err: fmt.Errorf("%w: %s", ErrInvalidKey, why)}
	}
	switch {
	case key == "":
		return bad("empty key")
	case len(key) > s.opts.MaxKeySize:
		return bad(fmt.Sprintf("%d bytes, limit %d", len(key), s.opts.MaxKeySize))
	}
	if err := checkName(key); err != nil {
		return bad(err.Error())
	}
	return nil
}

// checkNamespace applies the namespace rule (Options.Namespace): the key
// rule's text rule, and no brace, so that no two (namespace, key) pairs
// share a Redis key (internal/rediscache layout.go).
func checkNamespace(ns string) error {
	if err := checkName(ns); err != nil {
		return err
	}
	return rediscache.CheckNamespace(ns)
}

// checkName is the text rule keys and namespaces share.
func checkName(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("not valid UTF-8")
	}
	if strings.IndexByte(s, 0) >= 0 {
		return errors.New("holds a NUL byte")
	}
	return nil
}

// hook runs the user's hook, if any, at one point.
func (s *Store[T]) hook(ctx context.Context, step Step, ph Phase, key string, err error) error {
	if s.opts.Hook == nil {
		return nil
	}
	return s.opts.Hook(ctx, HookEvent{Step: step, Phase: ph, Key: key, Err: err})
}

// before and after run the hook around one step. They cost one nil check
// when no hook is set. after passes the step's own error through unless the
// hook replaces it.
func (s *Store[T]) before(ctx context.Context, st Step, key string) error {
	s.traceStep(ctx, st, Before, nil)
	if s.opts.Hook == nil {
		return nil
	}
	if err := s.hook(ctx, st, Before, key, nil); err != nil {
		return hookError{err}
	}
	return nil
}

func (s *Store[T]) after(ctx context.Context, st Step, key string, err error) error {
	s.traceStep(ctx, st, After, err)
	if s.opts.Hook == nil {
		return err
	}
	if herr := s.hook(ctx, st, After, key, err); herr != nil {
		return hookError{herr}
	}
	return err
}

// step runs f between the before and after hooks of st.
func (s *Store[T]) step(ctx context.Context, st Step, key string, f func() error) error {
	if err := s.before(ctx, st, key); err != nil {
		return err
	}
	return s.after(ctx, st, key, f())
}

// hookError marks an error a hook injected, so it is reported as is rather
// than classified as an outage.
type hookError struct{ err error }

func (e hookError) Error() string { return "hook: " + e.err.Error() }
func (e hookError) Unwrap() error { return e.err }

func (s *Store[T]) ttl(perEntry time.Duration) time.Duration {
	d := s.opts.TTL
	if perEntry > 0 {
		d = perEntry
	}
	if s.opts.Jitter > 0 {
		j := s.opts.Jitter
		if perEntry > 0 {
			j = time.Duration(float64(j) * float64(perEntry) / float64(s.opts.TTL))
		}
		if j > 0 {
			d += rand.N(j + 1)
		}
	}
	return d
}

// newToken returns a fresh random token: one per fill and one per write,
// never per process or connection, so a stale holder can never mistake a
// newer lease or intent for its own.
func newToken() string { return rediscache.Token() }

// classify turns a Redis or DB error into the store's error vocabulary.
func classify(ctx context.Context, err error) error {
	var he hookError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &he):
		return err
	case ctx.Err() != nil:
		return errors.Join(ctx.Err(), err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return errors.Join(ErrUnavailable, err)
}

func isCtxErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// Stats are counters since the store was created.
type Stats struct {
	Hits           uint64 // Get answered from Redis
	Misses         uint64 // Get that had to load the DB
	DBLoads        uint64 // rows read from the DB for a Get
	Coalesced      uint64 // Gets that shared another caller's load in this process
	LeaseWaits     uint64 // Gets that waited for another reader's lease
	LeaseTakeovers uint64 // waits that ran out and took the lease over
	Fills          uint64 // fills installed
	RejectedFills  uint64 // fills refused (a write began, or the lease was lost)
	Intents        uint64 // write intents recorded
	Repairs        uint64 // stale cache entries dropped by the reconciler
	Reconciled     uint64 // committed writes whose end the reconciler re-applied
	Corrupt        uint64 // cache entries dropped for a bad header, checksum or format
	Fences         uint64 // stripes moved to a new generation after Redis lost their marker
	FencedWrites   uint64 // writes that began again because their stripe was fenced meanwhile
	// The breaker (see Options.BreakerThreshold): whether it is open now,
	// how often it opened, and, over its current or last opening, the Gets
	// it sent straight to the DB and the writes it refused (or let proceed).
	BreakerOpen   bool
	BreakerOpens  uint64
	BreakerReads  uint64
	BreakerWrites uint64
	DroppedTasks  uint64 // cleanup tasks dropped because the queue was full
	// Errors counts failed calls by kind: "redis" (Redis unreachable; reads
	// fell back to the DB), "db", "codec", "invalid", "conflict", "unknown"
	// (the write may have committed; cache repair pending), "canceled".
	Errors map[string]uint64
}

type stats struct {
	hits, misses, dbLoads, coalesced, leaseWaits, takeovers     atomic.Uint64
	fills, rejected, intents, repairs, reconciled, corrupt      atomic.Uint64
	fences, fencedWrites, droppedTasks                          atomic.Uint64
	errRedis, errDB, errCodec, errInvalid, errConflict, errUnkn atomic.Uint64
	errCanceled                                                 atomic.Uint64
}

// Stats returns a snapshot of the store's counters.
func (s *Store[T]) Stats() Stats {
	st := &s.st
	return Stats{
		Hits: st.hits.Load(), Misses: st.misses.Load(), DBLoads: st.dbLoads.Load(),
		Coalesced: st.coalesced.Load(), LeaseWaits: st.leaseWaits.Load(), LeaseTakeovers: st.takeovers.Load(),
		Fills: st.fills.Load(), RejectedFills: st.rejected.Load(), Intents: st.intents.Load(),
		Repairs: st.repairs.Load(), Reconciled: st.reconciled.Load(), Corrupt: st.corrupt.Load(),
		Fences: st.fences.Load(), FencedWrites: st.fencedWrites.Load(),
		BreakerOpen: !s.brk.allow(), BreakerOpens: s.brk.opens.Load(),
		BreakerReads: s.brk.reads.Load(), BreakerWrites: s.brk.writes.Load(),
		DroppedTasks: st.droppedTasks.Load(),
		Errors: map[string]uint64{
			"redis": st.errRedis.Load(), "db": st.errDB.Load(), "codec": st.errCodec.Load(),
			"invalid": st.errInvalid.Load(), "conflict": st.errConflict.Load(), "unknown": st.errUnkn.Load(),
			"canceled": st.errCanceled.Load(),
		},
	}
}

// count records a failed call's error kind and returns err.
func (s *Store[T]) count(err error) error {
	switch {
	case err == nil:
	case errors.Is(err, ErrInvalidKey), errors.Is(err, ErrTooLarge), errors.Is(err, ErrInvalidOption):
		s.st.errInvalid.Add(1)
	case errors.Is(err, ErrCodec):
		s.st.errCodec.Add(1)
	case errors.Is(err, ErrConflict):
		s.st.errConflict.Add(1)
	case errors.Is(err, ErrOutcomeUnknown):
		s.st.errUnkn.Add(1)
	case isCtxErr(err):
		s.st.errCanceled.Add(1)
	case errors.Is(err, ErrUnavailable):
		s.st.errDB.Add(1)
	}
	return err
}
