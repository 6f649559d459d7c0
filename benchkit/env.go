package benchkit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/redis/go-redis/v9"

	"github.com/memstore/memstore/codec"
	"github.com/memstore/memstore/internal/randhex"
	"github.com/memstore/memstore/internal/sqlstore"
	"github.com/memstore/memstore/internal/testenv"
	"github.com/memstore/memstore/memtest"
)

// EnvOptions configure NewEnv. The zero value means the defaults: a private
// redis-server and a SQLite file, both in a new temporary directory.
type EnvOptions struct {
	// Redis names a Redis to use instead of a private one: a redis:// URL,
	// or a cluster as redis+cluster://host:port,host:port or a seed list
	// host:port,host:port. Every key of the run is under a random prefix,
	// deleted by Close.
	Redis string
	// Cluster asks for a private Redis Cluster (three masters, each with a
	// replica) instead of a private redis-server, when Redis is empty.
	Cluster bool
	// DB is where the rows live: empty for a SQLite file in the temporary
	// directory; a file path for SQLite; a postgres:// URL; or "postgres"
	// for a private PostgreSQL cluster (initdb in the temporary directory).
	// Rows of the run are under a random namespace prefix, deleted by Close.
	DB string
	// ValueSize is the length of the stored value in bytes. Default 128.
	ValueSize int
	// HotKeys is how many keys the hit, set and batch rows cycle through.
	// Default 256.
	HotKeys int
	// ColdKeys is how many cold keys a stampede row reads, one per round.
	// Default 20.
	ColdKeys int
	// Callers is how many goroutines read each cold key at once in a
	// stampede row, spread over two store instances. Default 200.
	Callers int
	// MissKeys is how many never-cached keys the get-miss row may read in
	// one measurement (they are made cold again after each). A measurement
	// that uses them all ends early. Default 50000.
	MissKeys int
}

func (o EnvOptions) withDefaults() EnvOptions {
	if o.ValueSize <= 0 {
		o.ValueSize = 128
	}
	if o.HotKeys <= 0 {
		o.HotKeys = 256
	}
	if o.ColdKeys <= 0 {
		o.ColdKeys = 20
	}
	if o.Callers <= 0 {
		o.Callers = 200
	}
	if o.MissKeys <= 0 {
		o.MissKeys = 50000
	}
	return o
}

// Env is what every row of a run shares: one Redis (a server or a cluster)
// and one database, built by internal/testenv.
type Env struct {
	// DB is the database every store of the run uses.
	DB *sql.DB
	// Opts are the options in force, defaults filled in.
	Opts EnvOptions

	testenv.Closers // OnClose, Close
	dialect         sqlstore.Dialect
	redis           *testenv.Redis
	prefix          string
	dbDesc          string
}

// NewEnv starts (or connects to) the Redis and the database of a run.
// The caller must Close it.
func NewEnv(ctx context.Context, opts *EnvOptions) (_ *Env, err error) {
	var o EnvOptions
	if opts != nil {
		o = *opts
	}
	e := &Env{Opts: o.withDefaults(), prefix: "bench-" + randhex.String(4)}
	defer func() {
		if err != nil {
			err = errors.Join(err, e.Close())
		}
	}()
	te, err := testenv.New(ctx, testenv.Spec{Redis: o.Redis, Cluster: o.Cluster, DB: o.DB, TempPrefix: "memstore-bench-"})
	if err != nil {
		return nil, err
	}
	e.OnClose(te.Close)
	e.redis = te.Redis
	if !e.redis.Started {
		e.OnClose(e.cleanRedis)
	}
	if err := e.Client().Ping(ctx).Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", e.redis, err)
	}
	// One pool for every store of the run, as an application has.
	if e.DB, err = sql.Open(te.DB.Driver(), te.DB.DSN()); err != nil {
		return nil, err
	}
	// As many idle connections as the rows have goroutines: database/sql's
	// default of 2 would reconnect to PostgreSQL under load (memtest.IdleConns).
	e.DB.SetMaxIdleConns(memtest.IdleConns)
	e.OnClose(e.DB.Close)
	switch {
	case o.DB == "postgres":
		e.dbDesc = "private PostgreSQL cluster"
	case te.DB.Dialect == testenv.Postgres:
		e.dbDesc = "PostgreSQL"
	default:
		e.dbDesc = "SQLite " + te.DB.Arg
	}
	e.dialect = sqlstore.Detect(e.DB)
	if !te.DB.Owned {
		e.OnClose(e.cleanDB) // runs before the pool is closed
	}
	if err := e.DB.PingContext(ctx); err != nil {
		return nil, err
	}
	return e, nil
}

// String describes the servers, for reports.
func (e *Env) String() string {
	rd := e.redis.String()
	if e.redis.Started {
		rd = "private " + rd
	}
	return rd + "; " + e.dbDesc
}

// Cluster reports whether the run's Redis is a Redis Cluster.
func (e *Env) Cluster() bool { return e.redis.IsCluster() }

// Client returns a new Redis client with a pool of its own and testenv's
// options (ContextTimeoutEnabled, as memstore wants): a *redis.ClusterClient
// on a cluster. Close closes it.
func (e *Env) Client() redis.UniversalClient {
	c := e.redis.NewClient("")
	e.OnClose(c.Close)
	return c
}

// Namespace returns a namespace (key prefix and row scope) of this run.
func (e *Env) Namespace(name string) string { return e.prefix + "-" + name }

// Dialect names the database dialect ("sqlite", "postgres").
func (e *Env) Dialect() string { return e.dialect.String() }

// Value returns the value every row stores: Opts.ValueSize bytes of text.
func (e *Env) Value() string { return value(e.Opts.ValueSize) }

// RawValue returns a value as long as memstore's cache entry of Value (the
// codec header and Value), so the raw rows move the same bytes.
func (e *Env) RawValue() string { return value(codec.HeaderSize + e.Opts.ValueSize) }

func value(n int) string {
	const text = "the quick brown fox jumps over the lazy dog; "
	return strings.Repeat(text, n/len(text)+1)[:n]
}

// cleanRedis deletes the run's keys from a Redis it did not start.
func (e *Env) cleanRedis() error {
	c := e.redis.NewClient("")
	defer c.Close()
	_, err := testenv.DeletePattern(context.Background(), c, e.prefix+"*")
	return err
}

// cleanDB deletes the run's rows from a database it did not create.
func (e *Env) cleanDB() error {
	ctx := context.Background()
	for _, t := range []string{"memstore_entries", "memstore_reconciled", "memstore_fences", "strategy_entries", tableName} {
		// A table the run did not create is not there: nothing to delete.
		_, _ = e.DB.ExecContext(ctx, e.rebind(`DELETE FROM `+t+` WHERE ns LIKE ?`), e.prefix+"-%")
	}
	return nil
}

func (e *Env) rebind(q string) string { return sqlstore.Rebind(e.dialect, q) }

const tableName = "benchkit_rows"

// Table is a plain key-value table in the run's database, for stores that
// bring no database side of their own (the peer libraries): their loaders
// read it, and it counts the reads.
type Table struct {
	db         *sql.DB
	ns         string
	qGet, qPut string
	loads      atomic.Int64
}

// Table returns the table of namespace name, creating the shared table if
// needed.
func (e *Env) Table(ctx context.Context, name string) (*Table, error) {
	_, err := e.DB.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+tableName+` (
  ns TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (ns, key))`)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", tableName, err)
	}
	return &Table{
		db:   e.DB,
		ns:   e.Namespace(name),
		qGet: e.rebind(`SELECT value FROM ` + tableName + ` WHERE ns = ? AND key = ?`),
		qPut: e.rebind(`INSERT INTO ` + tableName + ` (ns, key, value) VALUES (?, ?, ?)
ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value`),
	}, nil
}

// Load reads key's value and counts one DB load. A missing row is
// sql.ErrNoRows.
func (t *Table) Load(ctx context.Context, key string) (string, error) {
	var v string
	err := t.db.QueryRowContext(ctx, t.qGet, t.ns, key).Scan(&v)
	if err == nil {
		t.loads.Add(1)
	}
	return v, err
}

// Put writes key's value.
func (t *Table) Put(ctx context.Context, key, value string) error {
	_, err := t.db.ExecContext(ctx, t.qPut, t.ns, key, value)
	return err
}

// Loads returns how many rows Load has read.
func (t *Table) Loads() int64 { return t.loads.Load() }
