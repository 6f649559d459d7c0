package verify

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/memstore/memstore"
	"github.com/memstore/memstore/fault"
	"github.com/memstore/memstore/history"
	"github.com/memstore/memstore/internal/randhex"
	"github.com/memstore/memstore/internal/testenv"
	"github.com/memstore/memstore/memtest"
	"github.com/memstore/memstore/strategies"
)

// env is the infrastructure of one run: the Redis (a server, a cluster or a
// URL), the DB, the namespace, and the store instances built over them.
// testenv builds the Redis and the DB; env adds what a run needs on top.
type env struct {
	cfg *Config

	redis *testenv.Redis
	// cproxies are the proxies a cluster's nodes announce, when network
	// faults are on and the cluster is the run's (or given with them).
	cproxies *fault.ClusterProxies
	admin    redis.UniversalClient // no proxy, no faults: for fault control and snapshots

	db *testenv.DB

	namespace string
	loads     *loadCounter

	// Set by the engine: where the watchdog reports, and its clock.
	onHang func(Hang)
	clock  func() time.Duration

	testenv.Closers
	mu    sync.Mutex
	notes []string
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

func (e *env) onClose(f func() error) { e.Closers.OnClose(f) }

// close releases everything, last opened first.
func (e *env) close() error { return e.Closers.Close() }

func newEnv(ctx context.Context, cfg *Config) (_ *env, err error) {
	e := &env{cfg: cfg, loads: newLoadCounter()}
	defer func() {
		if err != nil {
			_ = e.close()
		}
	}()
	spec := testenv.Spec{
		Redis:          cfg.RedisURL,
		Server:         cfg.Redis,
		ClusterFixture: cfg.RedisCluster,
		Cluster:        cfg.Cluster,
		DB:             cfg.DB,
		TempPrefix:     "memstore-verify-",
	}
	faults := cfg.Faults
	if faults == nil { // RunAll's shared environment: no defaults yet
		faults = DefaultClusterFaults()
	}
	network := slices.ContainsFunc(faults, isNetworkFault) || slices.Contains(faults, FaultNodePartition)
	if cfg.RedisCluster != nil {
		e.cproxies = cfg.ClusterProxies
	} else if cfg.Cluster && cfg.Redis == nil && cfg.RedisURL == "" && network {
		// The nodes announce proxies, so that every client (and every
		// replica) reaches them through a proxy a network fault can cut.
		// The proxies close after the cluster.
		e.cproxies = &fault.ClusterProxies{}
		e.onClose(e.cproxies.Close)
		spec.ClusterOptions = &memtest.ClusterOptions{Announce: e.cproxies.Announce}
	}
	te, err := testenv.New(ctx, spec)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	e.onClose(te.Close)
	e.redis, e.db = te.Redis, te.DB
	e.admin = e.adminClient()
	admin := e.admin
	e.onClose(admin.Close)
	if err := e.admin.Ping(ctx).Err(); err != nil {
		return nil, fmt.Errorf("verify: %s: %w", e.redis, err)
	}

	// Namespace: distinct per run, under the shared server's prefix if any.
	e.namespace = cfg.Namespace
	if e.namespace == "" {
		e.namespace = "verify-" + cfg.Store.Name + "-" + randhex.String(4)
	}
	if p := e.redis.Prefix(); p != "" && !strings.HasPrefix(e.namespace, p) {
		e.namespace = p + e.namespace
	}
	return e, nil
}

// adminClient is a client that no fault touches: on a cluster whose nodes
// announce proxies, it dials each node directly instead.
func (e *env) adminClient() redis.UniversalClient {
	if e.cproxies == nil {
		return e.redis.NewClient("")
	}
	o := e.redis.Options("").Cluster()
	cp := e.cproxies
	o.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
		for _, p := range cp.All() {
			if p.Addr() == addr {
				addr = p.Upstream()
				break
			}
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	return redis.NewClusterClient(o)
}

// cluster reports whether the run's Redis is a Redis Cluster.
func (e *env) cluster() bool { return e.redis.IsCluster() }

// processFaults reports whether the run may kill, pause and reconfigure the
// Redis servers.
func (e *env) processFaults() bool { return e.redis.Private() }

// redisURL names the run's Redis for another process; addr, when not
// empty, is a proxy in front of a standalone server.
func (e *env) redisURL(addr string) string { return e.redis.URL(addr) }

// connector opens the run's database: a new connector per instance, so
// that each can be wrapped in fault.SQLFaults of its own.
func (e *env) connector() (driver.Connector, error) {
	if e.db.Dialect == testenv.Postgres {
		return fault.PostgresConnector(e.db.DSN())
	}
	return fault.SQLiteConnector(e.db.DSN())
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
		return e.newExecInstance(ctx, id, e.redisURL(o.redisAddr), o)
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
	e.db.Tune(db)
	rdb := e.redis.NewClient(o.redisAddr)
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
