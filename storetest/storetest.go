// Package storetest is the conformance suite for cache+DB stores: any
// implementation of strategies.KV over Redis and a SQL database can run it
// from its own tests, as testing/fstest.TestFS checks a file system.
//
// A store author writes a Harness in a few lines, building one instance of
// the store over the Redis client, database and namespace the suite hands
// it, and calls Run from a test:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, storetest.Harness{
//			Name: "mystore",
//			New: func(ctx context.Context, env storetest.Env) (storetest.Store, error) {
//				return mystore.New(env.Redis, env.DB, env.Namespace)
//			},
//		})
//	}
//
// Run runs every subtest twice, on SQLite and on PostgreSQL (a harness
// opts out of PostgreSQL with Harness.SkipPostgres and a reason), each
// subtest in parallel with the others on a private redis-server and a
// database of its own (package memtest), so that a fault one subtest
// injects (Redis killed, flushed) reaches no other. It checks exact round
// trips of awkward values, deletes and misses, TTLs (honoured: an entry
// gone once its short TTL passed, a TTL of seconds still cached; and
// bounding memory, not correctness), bad input, convergence of cache and
// DB after concurrent writes, a stampede on a cold key, and
// linearizability per key under a concurrent workload, with no fault and
// with each fault of package verify in turn. Check runs the same subtests
// outside a test, one after another on SQLite, and returns every problem
// at once.
//
// A failing workload's history is saved where it can be found after the
// run (Harness.HistoryDir; else go test -artifacts' directory; else a
// directory under os.TempDir() that is kept), and the failure says where.
//
// A store that can drop a key's cache entry implements Evicter; one that
// can show both tiers of a key implements Inspector; one that must release
// resources implements io.Closer. The suite finds them by type assertion
// and does without them otherwise (less strictly: no eviction during the
// workload, no convergence snapshot).
package storetest

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/memstore/memstore"
	"github.com/memstore/memstore/fault"
	"github.com/memstore/memstore/internal/testenv"
	"github.com/memstore/memstore/memtest"
	"github.com/memstore/memstore/strategies"
	"github.com/memstore/memstore/verify"
)

// Store is one instance of the store under test.
type Store interface {
	strategies.KV
}

// Evicter is implemented by a store that can drop one key's cache entry, as
// Redis eviction would. The suite evicts keys during its workloads and
// before its final reads; without it, some broken stores go unseen.
type Evicter interface {
	Evict(ctx context.Context, key string) error
}

// Syncer is implemented by a store that does work in the background after
// a write returns (memstore clears the write's intent). Sync waits for it;
// the suite calls it where a subtest needs a settled key, such as a cold
// key for the stampede count.
type Syncer interface {
	Sync(ctx context.Context) error
}

// settle waits for st's background work, if it has any (Syncer).
func settle(ctx context.Context, st Store) error {
	if sy, ok := st.(Syncer); ok {
		if err := sy.Sync(ctx); err != nil {
			return fmt.Errorf("calling Sync: %w", err)
		}
	}
	return nil
}

// Inspector is implemented by a store that can show what each tier holds
// for a key, decoded, for the convergence checks.
type Inspector interface {
	Inspect(ctx context.Context, key string) (Snapshot, error)
}

// Snapshot is one key's state in both tiers (see strategies.Snapshot).
//
// Cached means what a reader would be served from the cache: a value, or a
// cached "not found". An entry that readers pass over (expired by the
// store's own clock, a lease or lock marker, a tombstone that sends reads
// to the DB) is not cached, whatever Redis holds. Reporting such an entry
// as cached makes the convergence checks fire falsely; reporting a served
// entry as not cached hides a stale cache from them.
type Snapshot = strategies.Snapshot

// Env is what a store instance is built over. Every instance the suite asks
// for in one subtest shares Redis, DB and Namespace, and must see the same
// data; each gets a Redis client and DB handle of its own.
type Env struct {
	// Redis is a client of the suite's redis-server, with short timeouts
	// and ContextTimeoutEnabled set.
	Redis redis.UniversalClient
	// RedisAddr is the host:port Redis is reached at, and RedisURL the
	// same as redis://host:port/db, for stores that dial by address (a
	// proxy's under the network faults: use these, not the server's).
	RedisAddr string
	RedisURL  string
	// DB is the suite's database: SQLite or PostgreSQL (Dialect).
	DB *sql.DB
	// Dialect is "sqlite" or "postgres".
	Dialect string
	// Namespace must scope every Redis key and DB row the instance uses.
	Namespace string
	// Hook, if the store supports hooks (like memstore.Options.Hook),
	// should be installed: the suite counts DB loads through it (the
	// memstore.StepDBLoad events) and injects delays that widen race
	// windows. Nil when the subtest needs none.
	Hook memstore.Hook
	// TTL is the cache TTL to use; zero means the store's default.
	TTL time.Duration
	// Migrate is set on the first instance of each subtest: create the
	// schema.
	Migrate bool
}

// Harness describes the store under test. Name and New are required; the
// rest is optional.
type Harness struct {
	Name string
	// New builds one instance of the store over env.
	New func(ctx context.Context, env Env) (Store, error)

	// Faults names the faults (verify.FaultNames) that the suite runs the
	// linearizability workload under, one at a time. Nil means
	// DefaultFaults; []string{"none"} runs no fault subtests.
	Faults []string
	// Nemeses are the store's own fault controls (say, a background
	// repairer that can be stalled). Each gets a subtest like the faults
	// above.
	Nemeses []fault.Nemesis
	// Duration of each workload. Default 1s.
	Duration time.Duration
	// Clients is the number of concurrent clients of each workload, and
	// Instances the number of store instances they are spread over
	// (verify.Config). Whether instances are shared decides what a
	// workload can see: one shared instance exercises in-process sharing
	// (a shared connection, a singleflight), many instances the races
	// between processes. Defaults: verify's (8 clients over 3 instances).
	Clients   int
	Instances int
	// SkipPostgres, if set, is why the store cannot run on PostgreSQL:
	// Run then skips the PostgreSQL half with that reason. Default: both
	// halves run.
	SkipPostgres string
	// SkipStampede, if set, is why the store cannot report its DB loads
	// (no hook): the stampede subtest is skipped with that reason. By
	// default a stampede subtest that sees no DB load fails, since a
	// measurement that saw nothing proves nothing.
	SkipStampede string
	// MaxColdLoads, when positive, is the most DB loads the stampede
	// subtest accepts per cold key (memstore makes exactly 1). Zero only
	// reports the count.
	MaxColdLoads int
	// Seed of the workloads. Default 1.
	Seed int64
	// Logf receives Check's reports (Run logs with t.Logf). Default: none.
	Logf func(format string, args ...any)
	// HistoryDir, if set, is where Run and Check save the history of
	// every workload that failed, as JSON lines (history.Write), for
	// `memstore check-history` or check.All to read again; it is created
	// if need be. Default: with go test -artifacts, each subtest's
	// t.ArtifactDir(); otherwise (and for Check) a directory under
	// os.TempDir() that is kept after the run. The failure names the file.
	HistoryDir string
}

// DefaultFaults are the faults a Harness runs under when Faults is nil:
// every fault of package verify that needs no worker process. Those that
// the environment cannot produce are skipped.
func DefaultFaults() []string {
	var fs []string
	for _, f := range verify.FaultNames() {
		if f != verify.FaultKillWorker {
			fs = append(fs, f)
		}
	}
	return fs
}

// FromFactory returns a Harness for one of the stores of package
// strategies (or any strategies.Factory).
func FromFactory(f strategies.Factory) Harness {
	return Harness{
		Name: f.Name,
		New: func(ctx context.Context, env Env) (Store, error) {
			return f.New(ctx, strategies.Config{Redis: env.Redis, DB: env.DB, Namespace: env.Namespace, Hook: env.Hook, TTL: env.TTL, Migrate: env.Migrate})
		},
	}
}

// redisAddr is the address a client dials, and its redis:// URL.
func redisAddr(c redis.UniversalClient) (addr, url string) {
	rc, ok := c.(*redis.Client)
	if !ok {
		return "", ""
	}
	o := rc.Options()
	u := "redis://"
	if o.Password != "" {
		u += neturl.UserPassword(o.Username, o.Password).String() + "@"
	}
	return o.Addr, fmt.Sprintf("%s%s/%d", u, o.Addr, o.DB)
}

// Run runs the suite as subtests of t: "sqlite/<subtest>" and
// "postgres/<subtest>", each in parallel with the others on a private
// redis-server and a database of its own. Each subtest reports what it
// found with t.Error, all problems at once; counts (stampede loads) are
// logged.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if err := h.validate(); err != nil {
		t.Fatal(err)
	}
	h = h.withDefaults()
	for _, dialect := range []string{dialectSQLite, dialectPostgres} {
		t.Run(dialect, func(t *testing.T) {
			if dialect == dialectPostgres && h.SkipPostgres != "" {
				t.Skip("the harness opts out of PostgreSQL: " + h.SkipPostgres)
			}
			t.Parallel()
			for _, st := range subtests(h) {
				t.Run(st.name, func(t *testing.T) {
					t.Parallel()
					s := &suite{h: h, rs: memtest.RedisWith(t, &memtest.RedisOptions{Private: true}), dialect: dialect}
					if dialect == dialectPostgres {
						s.dbArg = memtest.Postgres(t).DSN()
					} else {
						s.dbArg = filepath.Join(t.TempDir(), "storetest.db")
					}
					s.historyDir = func() (string, error) { return testHistoryDir(t, h) }
					if err := st.run(t.Context(), s, t.Logf); err != nil {
						if errors.Is(err, errSkip) {
							t.Skip(strings.TrimPrefix(err.Error(), errSkip.Error()+": "))
						}
						t.Error(err)
					}
				})
			}
		})
	}
}

const (
	dialectSQLite   = "sqlite"
	dialectPostgres = "postgres"
)

// testHistoryDir is where Run keeps a subtest's failing histories: the
// harness's directory, go test -artifacts' (its -outputdir made first:
// testing does not create it), or one under os.TempDir() that is kept.
func testHistoryDir(t *testing.T, h Harness) (string, error) {
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	if h.HistoryDir != "" {
		dir := filepath.Join(h.HistoryDir, name)
		return dir, os.MkdirAll(dir, 0o755)
	}
	if f := flag.Lookup("test.artifacts"); f != nil && f.Value.String() == "true" {
		if out := flag.Lookup("test.outputdir"); out != nil && out.Value.String() != "" {
			if err := os.MkdirAll(out.Value.String(), 0o755); err != nil {
				return "", err
			}
		}
		return t.ArtifactDir(), nil
	}
	dir := filepath.Join(os.TempDir(), "storetest-histories", name+"-"+time.Now().Format("20060102T150405"))
	return dir, os.MkdirAll(dir, 0o755)
}

// Check runs the suite outside a test, starting its own redis-server and
// SQLite database in a temporary directory, and returns every problem
// found, each prefixed with its subtest's name, joined with errors.Join.
// Nil means the store passed. The subtests run one after another, all on
// SQLite. Harness.Logf, if set, receives what Run would log.
func Check(ctx context.Context, h Harness) error {
	if err := h.validate(); err != nil {
		return err
	}
	logf := h.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	te, err := testenv.New(ctx, testenv.Spec{TempPrefix: "storetest-"})
	if err != nil {
		return err
	}
	defer te.Close()
	h = h.withDefaults()
	s := &suite{h: h, rs: te.Redis.Server, dialect: dialectSQLite, dbArg: te.DB.Arg}
	s.historyDir = func() (string, error) {
		d := h.HistoryDir
		if d == "" {
			d = filepath.Join(os.TempDir(), "storetest-histories", h.Name+"-"+time.Now().Format("20060102T150405"))
		}
		return d, os.MkdirAll(d, 0o755)
	}
	var errs []error
	for _, st := range subtests(h) {
		if err := st.run(ctx, s, logf); err != nil {
			if errors.Is(err, errSkip) {
				logf("%s: %v", st.name, err)
				continue
			}
			errs = append(errs, fmt.Errorf("%s: %w", st.name, err))
		}
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
	}
	return errors.Join(errs...)
}

func (h Harness) validate() error {
	if h.Name == "" || h.New == nil {
		return errors.New("storetest: a Harness needs a Name and a New function")
	}
	return nil
}

func (h Harness) withDefaults() Harness {
	if h.Faults == nil {
		h.Faults = DefaultFaults()
	}
	if h.Duration <= 0 {
		h.Duration = time.Second
	}
	if h.Seed == 0 {
		h.Seed = 1
	}
	return h
}

// errSkip marks a subtest that cannot run here (a fault this build or
// environment cannot produce).
var errSkip = errors.New("skipped")

// adapted makes a Store a strategies.Store for package verify, answering
// errors.ErrUnsupported where an optional interface is missing.
type adapted struct{ Store }

func (a adapted) Evict(ctx context.Context, key string) error {
	if e, ok := a.Store.(Evicter); ok {
		return e.Evict(ctx, key)
	}
	return errors.ErrUnsupported
}

func (a adapted) Inspect(ctx context.Context, key string) (Snapshot, error) {
	if i, ok := a.Store.(Inspector); ok {
		return i.Inspect(ctx, key)
	}
	return Snapshot{}, errors.ErrUnsupported
}

func (a adapted) Close() error {
	if c, ok := a.Store.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

var _ strategies.Store = adapted{}

// factory turns the harness into the strategies.Factory package verify
// runs, over a database of dialect. The store is expected to pass.
func (h Harness) factory(dialect string) strategies.Factory {
	return strategies.Factory{
		Name:       h.Name,
		ExpectPass: true,
		New: func(ctx context.Context, c strategies.Config) (strategies.Store, error) {
			env := Env{Redis: c.Redis, DB: c.DB, Dialect: dialect, Namespace: c.Namespace, Hook: c.Hook, TTL: c.TTL, Migrate: c.Migrate}
			env.RedisAddr, env.RedisURL = redisAddr(c.Redis)
			st, err := h.New(ctx, env)
			if err != nil {
				return nil, err
			}
			if st == nil {
				return nil, errors.New("storetest: New returned a nil Store")
			}
			return adapted{st}, nil
		},
	}
}
