package memstore

import (
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/memstore/memstore/codec"
	"github.com/memstore/memstore/internal/sqlstore"
)

// Dialect names the SQL flavour of the database.
type Dialect uint8

// The dialects. The zero value detects the dialect from the *sql.DB's driver.
const (
	DetectDialect Dialect = Dialect(sqlstore.Unknown)
	SQLite        Dialect = Dialect(sqlstore.SQLite)
	Postgres      Dialect = Dialect(sqlstore.Postgres)
)

// String returns "sqlite", "postgres" or "unknown".
func (d Dialect) String() string { return sqlstore.Dialect(d).String() }

// WritePolicy says what a write does when Redis cannot record its intent.
type WritePolicy uint8

const (
	// WriteFailFast fails the write with ErrUnavailable and changes nothing.
	WriteFailFast WritePolicy = iota
	// WriteProceed commits to the database anyway and leaves the cache
	// repair to the outbox reconciler. Reads stay correct once Redis is
	// reachable again and the reconciler has run; until then a stale cached
	// value may be served if Redis kept one.
	WriteProceed
)

// Options configure a Store. The zero value of every field means its
// default; a nil *Options means all defaults.
type Options[T any] struct {
	// Namespace prefixes every Redis key and scopes every DB row, so many
	// stores can share one Redis and one database. Default "memstore".
	//
	// The rule: a namespace is valid UTF-8 without a NUL byte (the key
	// rule, see MaxKeySize) and holds neither '{' nor '}'; New refuses any
	// other. A key is cached at "<namespace>:{<key>}", so the first brace
	// always opens the key's hash tag: no two (namespace, key) pairs share
	// a Redis key, whatever braces the keys hold, and a key's Redis Cluster
	// slot is the same in every namespace.
	Namespace string
	// Dialect of the database. Default: detected from the driver.
	Dialect Dialect
	// Codec encodes values. Default codec.JSON[T]().
	Codec codec.Codec[T]
	// TTL of cached entries. It bounds memory, not correctness. Default 10m.
	TTL time.Duration
	// Jitter is the largest random amount added to each TTL, to spread
	// expiries. Default TTL/10; set DisableJitter for exact TTLs.
	Jitter        time.Duration
	DisableJitter bool
	// LeaseTTL is how long a fill lease lives: a reader that holds it this
	// long without filling loses it. Default 2s. Keep it above your slowest
	// DB read and below ReconcileAge.
	LeaseTTL time.Duration
	// LeaseWait is how long a reader waits for another process's lease
	// before it takes the lease over and loads the DB itself. Default 1s.
	LeaseWait time.Duration
	// IntentTTL is how long a write intent blocks fills if its writer dies.
	// A writer that has not committed when a quarter of it is left aborts
	// instead. Default 30s.
	IntentTTL time.Duration
	// WritePolicy when Redis is unreachable at the start of a write.
	// Default WriteFailFast.
	WritePolicy WritePolicy
	// RedisBudget is the longest one Redis round trip of a read may take;
	// past it the read goes to the database instead (and fills nothing). A
	// write, which has no such fallback, gives Redis four budgets to record
	// its intent, retrying once if its context has room, then fails with
	// ErrUnavailable, having written nothing. Either is never more than
	// half of what the call's context has left, so the database keeps room
	// to answer. Default 50ms: far above a healthy round trip (measured on
	// a 2-core host under a load average of 5: p99.9 19ms, p99.99 43ms, 1
	// in 200,000 above 50ms), far below a request deadline.
	//
	// Readers that fall back coordinate only within a process, so a cold
	// key costs one DB load while Redis answers within the budget, and up
	// to one per process and overrun past it. Setting up a new connection
	// (go-redis's handshake) counts toward the round trip that needed it:
	// a burst on a cold pool of a starved host can overrun, and a pool
	// kept warm (go-redis MinIdleConns) avoids that.
	RedisBudget time.Duration
	// BreakerThreshold is how many consecutive Redis failures (outages or
	// budget overruns, across all of the store's calls), spanning at least
	// two budgets with no answer in between, open the breaker.
	// While it is open no call waits on Redis: Gets read the database,
	// writes fail at once with ErrUnavailable (or proceed, under
	// WriteProceed). Default 3.
	BreakerThreshold int
	// ProbeInterval is how often an open breaker pings Redis; the first
	// answer closes it, and fills resume. Default 500ms.
	ProbeInterval time.Duration
	// ReconcileInterval is how often the background reconciler runs.
	// Default 1s. DisableReconciler turns the background loop off
	// (Reconcile can still be called).
	ReconcileInterval time.Duration
	DisableReconciler bool
	// ReconcileAge is how old an outbox row must be before the reconciler
	// re-applies its invalidation: the bound on how long a crashed writer's
	// cache repair can take. Default 5s.
	ReconcileAge time.Duration
	// AutoMigrate creates the schema in New. Default false: call Migrate.
	AutoMigrate bool
	// Hook, if set, runs before and after every Redis script and DB
	// statement (see Hook). Nil in production.
	Hook Hook
	// Logger receives warnings (outages, repairs). Default: discard.
	Logger *slog.Logger
	// MaxKeySize is the longest key in bytes. Default 1024. Every key is
	// valid UTF-8 without a NUL byte, on every backend; others fail with
	// ErrInvalidKey before any I/O.
	MaxKeySize int
	// MaxValueSize is the largest encoded value in bytes. Default 1 MiB.
	MaxValueSize int

	// MeterProvider receives the store's metrics, TracerProvider its spans
	// (see otel.go for the instruments). Default: OpenTelemetry's global
	// providers (otel.GetMeterProvider, otel.GetTracerProvider), which
	// record nothing until the application sets them.
	MeterProvider  metric.MeterProvider
	TracerProvider trace.TracerProvider
	// ReplicaAcks is how many replicas must have a write's intent (Redis
	// WAIT, on the key's master) before the write touches the database:
	// a failover to a replica that lacks the intent would lose it, and
	// the older cached value the write dropped would be served again.
	// Default: 1 on a *redis.ClusterClient or a Sentinel failover client,
	// none on a plain client. DisableReplicaAcks turns it off. A write
	// whose intent is not acknowledged within two RedisBudgets fails with
	// ErrUnavailable, nothing written.
	ReplicaAcks        int
	DisableReplicaAcks bool
}

func (o Options[T]) withDefaults() Options[T] {
	if o.Namespace == "" {
		o.Namespace = "memstore"
	}
	if o.Codec == nil {
		o.Codec = codec.JSON[T]()
	}
	if o.TTL <= 0 {
		o.TTL = 10 * time.Minute
	}
	if o.Jitter <= 0 && !o.DisableJitter {
		o.Jitter = o.TTL / 10
	}
	if o.DisableJitter {
		o.Jitter = 0
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 2 * time.Second
	}
	if o.LeaseWait <= 0 {
		o.LeaseWait = time.Second
	}
	if o.IntentTTL <= 0 {
		o.IntentTTL = 30 * time.Second
	}
	if o.RedisBudget <= 0 {
		o.RedisBudget = 50 * time.Millisecond
	}
	if o.BreakerThreshold <= 0 {
		o.BreakerThreshold = 3
	}
	if o.ProbeInterval <= 0 {
		o.ProbeInterval = 500 * time.Millisecond
	}
	if o.ReconcileInterval <= 0 {
		o.ReconcileInterval = time.Second
	}
	if o.ReconcileAge <= 0 {
		o.ReconcileAge = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxKeySize <= 0 {
		o.MaxKeySize = 1024
	}
	if o.MaxValueSize <= 0 {
		o.MaxValueSize = 1 << 20
	}
	return o
}

// SetOption changes one write.
type SetOption func(*setOptions)

type setOptions struct {
	ttl time.Duration
}

// WithTTL sets the cache TTL of this entry, kept with the row so every later
// fill uses it. It does not expire the value itself: the DB keeps it. d is
// 1ms or more (Redis keeps TTLs in milliseconds); 0 means the store's TTL.
// Anything else fails the write with ErrInvalidOption, writing nothing.
func WithTTL(d time.Duration) SetOption {
	return func(o *setOptions) { o.ttl = d }
}

func (o setOptions) check() error {
	if o.ttl < 0 || o.ttl > 0 && o.ttl < time.Millisecond {
		return fmt.Errorf("%w: WithTTL(%v): a TTL is 0 (the store's) or at least 1ms", ErrInvalidOption, o.ttl)
	}
	return nil
}
