package verify

import (
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/memstore/memstore"
	"github.com/memstore/memstore/fault"
	"github.com/memstore/memstore/history"
	"github.com/memstore/memstore/memtest"
	"github.com/memstore/memstore/strategies"
)

// env is the infrastructure of one run: the Redis server (or URL), the DB,
// the namespace, and the store instances built over them.
type env struct {
	cfg *Config

	rs        *memtest.RedisServer // nil when only a URL is known
	ownRedis  bool                 // rs was started here: close it
	redisURL  string               // for worker processes
	redisBase *redis.Options
	admin     redis.UniversalClient // no proxy, no faults: for fault control and snapshots

	dbDriver string // "sqlite" or "pgx"
	dbDSN    string
	dbArg    string // what workers are given: a path or a URL
	tmpDir   string // removed by close

	namespace string
	loads     *loadCounter

	// Set by the engine: where the watchdog reports, and its clock.
	onHang func(Hang)
	clock  func() time.Duration

	mu      sync.Mutex
	closers []func() error
	notes   []string
}

// instance is one store instance with its own Redis client and DB handle.
type instance struct {
	id    int
	store strategies.Store
	rdb   redis.UniversalClient // nil for an --exec adapter
	db    *sql.DB               // nil for an --exec adapter
	proc  *proc                 // the adapter process of an --exec store; nil otherwise
}

func (e *env) note(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	msg := fmt.Sprintf(format, args...)
	for _, n := range e.notes {
		if n == msg {
			return
		}
	}
	e.notes = append(e.notes, msg)
}

func (e *env) getNotes() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string{}, e.notes...)
}

func (e *env) onClose(f func() error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closers = append(e.closers, f)
}

// close releases everything, last opened first.
func (e *env) close() error {
	e.mu.Lock()
	cl := e.closers
	e.closers = nil
	e.mu.Unlock()
	var errs []error
	for i := len(cl) - 1; i >= 0; i-- {
		errs = append(errs, cl[i]())
	}
	return errors.Join(errs...)
}

func newEnv(ctx context.Context, cfg *Config) (_ *env, err error) {
	e := &env{cfg: cfg, loads: newLoadCounter()}
	defer func() {
		if err != nil {
			_ = e.close()
		}
	}()
	needTmp := cfg.DB == "" || (cfg.Redis == nil && cfg.RedisURL == "")
	if needTmp {
		if e.tmpDir, err = os.MkdirTemp("", "memstore-verify-"); err != nil {
			return nil, err
		}
		dir := e.tmpDir
		e.onClose(func() error { return os.RemoveAll(dir) })
	}

	// Redis.
	switch {
	case cfg.Redis != nil:
		e.rs = cfg.Redis
		e.redisBase = cfg.Redis.Options()
		e.redisURL = cfg.Redis.URL()
	case cfg.RedisURL != "":
		if e.redisBase, err = redis.ParseURL(cfg.RedisURL); err != nil {
			return nil, fmt.Errorf("verify: Redis URL: %w", err)
		}
		e.redisURL = cfg.RedisURL
	default:
		dir := filepath.Join(e.tmpDir, "redis")
		if err := os.Mkdir(dir, 0o755); err != nil {
			return nil, err
		}
		rs, err := memtest.StartRedis(ctx, dir, nil)
		if err != nil {
			return nil, fmt.Errorf("verify: %w", err)
		}
		e.rs, e.ownRedis = rs, true
		e.onClose(rs.Close)
		e.redisBase = rs.Options()
		e.redisURL = rs.URL()
	}
	e.admin = redis.NewClient(e.redisOptions(""))
	admin := e.admin
	e.onClose(admin.Close)
	if err := e.admin.Ping(ctx).Err(); err != nil {
		return nil, fmt.Errorf("verify: Redis at %s: %w", e.redisBase.Addr, err)
	}

	// DB.
	switch {
	case strings.HasPrefix(cfg.DB, "postgres://"), strings.HasPrefix(cfg.DB, "postgresql://"):
		e.dbDriver, e.dbDSN, e.dbArg = "pgx", cfg.DB, cfg.DB
	default:
		path := cfg.DB
		if path == "" {
			path = filepath.Join(e.tmpDir, "verify.db")
		}
		if path, err = filepath.Abs(path); err != nil {
			return nil, err
		}
		// Create the file in WAL mode once, before instances open it.
		db, err := memtest.OpenSQLite(path)
		if err != nil {
			return nil, fmt.Errorf("verify: %w", err)
		}
		db.Close()
		e.dbDriver, e.dbDSN, e.dbArg = "sqlite", sqliteDSN(path), path
	}

	// Namespace: distinct per run, under the shared server's prefix if any.
	e.namespace = cfg.Namespace
	if e.namespace == "" {
		e.namespace = "verify-" + cfg.Store.Name + "-" + randomHex(4)
	}
	if e.rs != nil && e.rs.Prefix() != "" && !strings.HasPrefix(e.namespace, e.rs.Prefix()) {
		e.namespace = e.rs.Prefix() + e.namespace
	}
	return e, nil
}

// sqliteDSN is memtest's DSN without a sync to disk at every commit: the
// run's data is throwaway, and a faster DB means more operations, so more
// chances to meet a race. Durability is not what the checker tests.
func sqliteDSN(path string) string {
	return memtest.SQLiteDSN(path) + "&_pragma=synchronous(NORMAL)"
}

// processFaults reports whether the run may kill, pause and reconfigure the
// Redis server.
func (e *env) processFaults() bool { return e.rs != nil && !e.rs.Shared() }

// redisOptions returns the options of an instance's client: the server's
// address (or addr, a proxy in front of it), short timeouts so that a
// faulty Redis fails calls quickly, and the call's context bounding every
// command.
func (e *env) redisOptions(addr string) *redis.Options {
	o := *e.redisBase
	if addr != "" {
		o.Addr = addr
	}
	o.ContextTimeoutEnabled = true
	o.DialTimeout = 250 * time.Millisecond
	o.ReadTimeout = 250 * time.Millisecond
	o.WriteTimeout = 250 * time.Millisecond
	o.PoolTimeout = 250 * time.Millisecond
	// One quick retry on a broken connection, as applications run: after
	// a restart or a partition the pool holds dead connections, and a store
	// should not be judged on each of them failing once.
	o.MaxRetries = 1
	o.MinRetryBackoff = time.Millisecond
	o.MaxRetryBackoff = 4 * time.Millisecond
	o.PoolSize = 32
	return &o
}

// connector opens the run's database: a new connector per instance, so
// that each can be wrapped in fault.SQLFaults of its own.
func (e *env) connector() (driver.Connector, error) {
	if e.dbDriver == "pgx" {
		return fault.PostgresConnector(e.dbDSN)
	}
	return fault.SQLiteConnector(e.dbDSN)
}

// instanceOptions say how one instance reaches Redis and the DB.
type instanceOptions struct {
	redisAddr string                                  // "": the server itself
	wrapDB    func(driver.Connector) (*sql.DB, error) // nil: plain
	hook      memstore.Hook                           // nil: none
	migrate   bool                                    // create the schema
	onClose   func()                                  // extra cleanup
	onHang    func(Hang)                              // the watchdog's report; nil: noted
	clock     func() time.Duration                    // since the run's start, for the watchdog
}

// newInstance builds one store instance with its own Redis client and DB
// handle.
func (e *env) newInstance(ctx context.Context, id int, o instanceOptions) (*instance, error) {
	if o.onHang == nil {
		o.onHang = e.onHang
	}
	if o.onHang == nil {
		o.onHang = func(h Hang) { e.note("%s", h.String()) }
	}
	if o.clock == nil {
		o.clock = e.clock
	}
	if o.clock == nil {
		start := time.Now()
		o.clock = func() time.Duration { return time.Since(start) }
	}
	if e.cfg.Exec != nil {
		u := e.redisURL
		if o.redisAddr != "" {
			var err error
			if u, err = urlVia(e.redisURL, o.redisAddr); err != nil {
				return nil, err
			}
		}
		return e.newExecInstance(ctx, id, u, o)
	}
	conn, err := e.connector()
	if err != nil {
		return nil, fmt.Errorf("verify: open DB: %w", err)
	}
	var db *sql.DB
	if o.wrapDB != nil {
		if db, err = o.wrapDB(conn); err != nil {
			return nil, fmt.Errorf("verify: open DB: %w", err)
		}
	} else {
		db = sql.OpenDB(conn)
	}
	if e.dbDriver == "sqlite" {
		// SQLite has one writer at a time; a connection that finds the
		// lock taken sleeps in SQLite's busy handler (up to 100ms a
		// time). One connection per instance queues the instance's
		// statements in Go instead, which keeps a loaded machine from
		// turning the run into sleeps.
		db.SetMaxOpenConns(1)
	}
	rdb := redis.NewClient(e.redisOptions(o.redisAddr))
	st, err := e.cfg.Store.New(ctx, strategies.Config{
		Redis:     rdb,
		DB:        db,
		Namespace: e.namespace,
		Hook:      o.hook,
		TTL:       e.cfg.TTL,
		Migrate:   o.migrate,
	})
	if err != nil {
		rdb.Close()
		db.Close()
		return nil, fmt.Errorf("verify: new %s instance: %w", e.cfg.Store.Name, err)
	}
	// Every call the engine makes goes through the watchdog.
	w := &watched{st: st, where: fmt.Sprintf("instance %d", id), slack: e.cfg.HangSlack, clock: o.clock, hang: o.onHang}
	in := &instance{id: id, store: w, rdb: rdb, db: db}
	e.onClose(func() error {
		err := w.Close()
		if errors.As(err, new(errHung)) {
			// It may still hold its connections: leave them.
			return fmt.Errorf("instance %d: Close did not return: %w", id, err)
		}
		rdb.Close()
		db.Close()
		if o.onClose != nil {
			o.onClose()
		}
		return err
	})
	return in, nil
}

// loadCounter counts DB loads per key (the Before event of StepDBLoad),
// while enabled.
type loadCounter struct {
	mu      sync.Mutex
	enabled bool
	n       map[string]int
}

func newLoadCounter() *loadCounter { return &loadCounter{n: make(map[string]int)} }

func (l *loadCounter) add(key string) {
	l.mu.Lock()
	if l.enabled {
		l.n[key]++
	}
	l.mu.Unlock()
}

// start clears the counts and starts counting.
func (l *loadCounter) start() {
	l.mu.Lock()
	l.n = make(map[string]int)
	l.enabled = true
	l.mu.Unlock()
}

// stop stops counting and returns the counts.
func (l *loadCounter) stop() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.enabled = false
	return l.n
}

// delayer sleeps a random time at the points where a sleep widens the race
// windows of cache+DB stores: after a DB read (a reader holding an old row),
// around a DB write (a writer between its cache step and its commit), and
// before a cache fill, set or delete (a step that lands late).
type delayer struct {
	max time.Duration
	mu  sync.Mutex
	rng *mrand.Rand
}

func newDelayer(max time.Duration, seed int64, stream uint64) *delayer {
	return &delayer{max: max, rng: newRand(seed, stream)}
}

func delayPoint(ev memstore.HookEvent) bool {
	switch ev.Step {
	case memstore.StepDBLoad:
		return ev.Phase == memstore.After
	case memstore.StepDBWrite:
		return true
	case memstore.StepRedisFill, strategies.StepRedisSet, memstore.StepRedisDel:
		return ev.Phase == memstore.Before
	}
	return false
}

func (d *delayer) delay(ctx context.Context) {
	d.mu.Lock()
	skip := d.rng.IntN(2) == 0
	dur := time.Duration(d.rng.Int64N(int64(d.max) + 1))
	d.mu.Unlock()
	if skip || dur == 0 {
		return
	}
	t := time.NewTimer(dur)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// hook returns the Hook an instance runs: DB loads counted, delays
// injected (d may be nil), and each step of a recorded call recorded in
// steps (nil: not recorded) as a history.Step event. It never fails a
// step.
func hook(d *delayer, loads *loadCounter, steps *history.Recorder) memstore.Hook {
	return func(ctx context.Context, ev memstore.HookEvent) error {
		if loads != nil && ev.Step == memstore.StepDBLoad && ev.Phase == memstore.Before {
			loads.add(ev.Key)
		}
		if steps != nil {
			recordStep(ctx, steps, ev)
		}
		if d != nil && delayPoint(ev) {
			d.delay(ctx)
		}
		return nil
	}
}

// newRand returns a generator seeded from the run's seed and a stream
// number, so every consumer of randomness has its own reproducible stream.
func newRand(seed int64, stream uint64) *mrand.Rand {
	return mrand.New(mrand.NewPCG(uint64(seed), stream*0x9e3779b97f4a7c15+1))
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
