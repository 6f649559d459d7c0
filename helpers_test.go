package memstore_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/memstore/memstore"
	"github.com/memstore/memstore/internal/inspect"
	"github.com/memstore/memstore/memtest"
)

func TestMain(m *testing.M) {
	// Fault tests kill Redis on purpose; go-redis's dial-failure log lines
	// would only bury the test output.
	redis.SetLogger(quiet{})
	os.Exit(memtest.Main(m))
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

// backend is one of the databases every store test runs on.
type backend struct {
	name string
	open func(testing.TB) *sql.DB
}

var backends = []backend{
	{"sqlite", memtest.SQLite},
	{"postgres", func(t testing.TB) *sql.DB {
		p := memtest.Postgres(t)
		postgresMu.Lock()
		postgresDSN[p.Name()] = p.DSN()
		postgresMu.Unlock()
		return p.DB()
	}},
}

// postgresDSN maps the test databases' names to their DSNs, for reopen.
var (
	postgresMu  sync.Mutex
	postgresDSN = map[string]string{}
)

// eachDB runs f as a parallel subtest on SQLite and on PostgreSQL, each with
// its own private Redis.
func eachDB(t *testing.T, f func(t *testing.T, e *env)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			e := &env{t: t, redis: memtest.RedisWith(t, &memtest.RedisOptions{Private: true}), db: b.open(t)}
			e.rdb = e.client()
			f(t, e)
		})
	}
}

// eachRedis runs f as eachDB does, and again on SQLite and PostgreSQL over a
// Redis Cluster (subtests "cluster/sqlite", "cluster/postgres"): the test
// binary's shared cluster, three masters and their replicas, under a key
// prefix of the test's own. f must reach Redis through e.rdb, e.admin and
// the helpers only (e.redis is nil on the cluster).
func eachRedis(t *testing.T, f func(t *testing.T, e *env)) {
	t.Helper()
	eachDB(t, f)
	for _, b := range backends {
		t.Run("cluster/"+b.name, func(t *testing.T) {
			t.Parallel()
			e := &env{t: t, cluster: memtest.Cluster(t), db: b.open(t)}
			e.rdb = e.client()
			f(t, e)
		})
	}
}

type env struct {
	t       testing.TB
	redis   *memtest.RedisServer  // nil on a cluster
	cluster *memtest.RedisCluster // nil on a standalone server
	rdb     redis.UniversalClient
	db      *sql.DB
}

// admin is a client of the test's Redis, for looking at what it holds.
func (e *env) admin() redis.UniversalClient {
	if e.cluster != nil {
		return e.cluster.Client()
	}
	return e.redis.Client()
}

// client returns a new Redis client that honours contexts and gives up
// quickly, as a production client for memstore should.
func (e *env) client() redis.UniversalClient {
	if e.cluster != nil {
		return e.cluster.NewClient(func(o *redis.ClusterOptions) {
			o.ReadTimeout = 300 * time.Millisecond
			o.WriteTimeout = 300 * time.Millisecond
			o.DialTimeout = 300 * time.Millisecond
			o.MaxRetries = -1
		})
	}
	return e.redis.NewClient(func(o *redis.Options) {
		o.ContextTimeoutEnabled = true
		o.ReadTimeout = 300 * time.Millisecond
		o.WriteTimeout = 300 * time.Millisecond
		o.DialTimeout = 300 * time.Millisecond
		o.MaxRetries = -1
	})
}

var nsClean = regexp.MustCompile(`[^a-zA-Z0-9_]+`)

// store opens a store in a namespace named after the test, with the
// background reconciler off unless opts turn it on.
func store[T any](e *env, opts *memstore.Options[T]) *memstore.Store[T] {
	e.t.Helper()
	return storeOn(e, e.rdb, opts)
}

func storeOn[T any](e *env, rdb redis.UniversalClient, opts *memstore.Options[T]) *memstore.Store[T] {
	e.t.Helper()
	var o memstore.Options[T]
	if opts != nil {
		o = *opts
	} else {
		o.DisableReconciler = true
	}
	if o.Namespace == "" {
		o.Namespace = nsClean.ReplaceAllString(e.t.Name(), "_")
		if e.cluster != nil {
			o.Namespace = e.cluster.Prefix() + o.Namespace
		}
	}
	o.AutoMigrate = true
	s, err := memstore.New(rdb, e.db, &o)
	if err != nil {
		e.t.Fatalf("memstore.New: %v", err)
	}
	e.t.Cleanup(func() { s.Close() })
	return s
}

// cached returns the raw cache entry of key, if any.
func cached[T any](t testing.TB, e *env, s *memstore.Store[T], key string) ([]byte, bool) {
	t.Helper()
	c, err := inspect.ReadCache(context.Background(), e.admin(), s.Namespace(), key)
	if err != nil {
		t.Fatalf("reading the cache entry of %q: %v", key, err)
	}
	return c.Raw, c.Raw != nil
}

func mustGet[T comparable](t testing.TB, s *memstore.Store[T], key string, want T) {
	t.Helper()
	got, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	if got != want {
		t.Fatalf("Get(%q) = %v, want %v", key, got, want)
	}
}

// mustSet sets key and waits for the write's end (Store.Sync), so that the
// next read may fill the cache. Tests of the window between a write's
// commit and its end call Set themselves.
func mustSet[T any](t testing.TB, s *memstore.Store[T], key string, v T) {
	t.Helper()
	if err := s.Set(context.Background(), key, v); err != nil {
		t.Fatalf("Set(%q): %v", key, err)
	}
	mustSync(t, s)
}

// mustSync waits for s's background work (Store.Sync), within 10s.
func mustSync[T any](t testing.TB, s *memstore.Store[T]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Sync(ctx); err != nil {
		t.Fatalf("Sync: %v", err)
	}
}

func wantErr(t testing.TB, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("err = %v, want %v", err, target)
	}
}
