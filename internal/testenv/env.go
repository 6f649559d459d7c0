package testenv

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, for postgres:// URLs

	"github.com/memstore/memstore/memtest"
)

// Closers is a stack of cleanups, run last pushed first. The zero value is
// ready; its methods are safe for concurrent use.
type Closers struct {
	mu sync.Mutex
	fs []func() error
}

// OnClose pushes f.
func (c *Closers) OnClose(f func() error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fs = append(c.fs, f)
}

// Close runs every cleanup, last pushed first, and joins their errors.
// Calling it again runs only what was pushed since.
func (c *Closers) Close() error {
	c.mu.Lock()
	fs := c.fs
	c.fs = nil
	c.mu.Unlock()
	var errs []error
	for i := len(fs) - 1; i >= 0; i-- {
		errs = append(errs, fs[i]())
	}
	return errors.Join(errs...)
}

// DB is the database of an environment, which each store instance opens a
// handle of its own to.
type DB struct {
	// Dialect is "sqlite" or "postgres".
	Dialect string
	// Arg names the database for another process: the SQLite file's
	// absolute path, or the postgres:// URL.
	Arg string
	// Owned reports whether the environment created the database, so
	// that nothing of another user's is in it.
	Owned bool
}

// Dialects of DB.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// IsPostgresURL reports whether s is a postgres:// URL.
func IsPostgresURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// NamedDB is the database arg names: a postgres:// URL, or a SQLite file
// path (created in WAL mode if new).
func NamedDB(arg string) (*DB, error) {
	if IsPostgresURL(arg) {
		return &DB{Dialect: Postgres, Arg: arg}, nil
	}
	path, err := filepath.Abs(arg)
	if err != nil {
		return nil, err
	}
	// Create the file in WAL mode once, before instances open it.
	db, err := memtest.OpenSQLite(path)
	if err != nil {
		return nil, err
	}
	db.Close()
	return &DB{Dialect: SQLite, Arg: path}, nil
}

// Driver is the database/sql driver name: "sqlite" or "pgx".
func (d *DB) Driver() string {
	if d.Dialect == Postgres {
		return "pgx"
	}
	return "sqlite"
}

// DSN is the driver's data source name. SQLite gets memtest's settings
// without a sync to disk at every commit: an environment's data is
// throwaway, and a faster DB means more operations, so more chances to meet
// a race. Durability is not what the tools test.
func (d *DB) DSN() string {
	if d.Dialect == Postgres {
		return d.Arg
	}
	return memtest.SQLiteDSN(d.Arg) + "&_pragma=synchronous(NORMAL)"
}

// Open opens a new handle, tuned by Tune.
func (d *DB) Open() (*sql.DB, error) {
	db, err := sql.Open(d.Driver(), d.DSN())
	if err != nil {
		return nil, err
	}
	d.Tune(db)
	return db, nil
}

// Tune sets what an instance's handle needs. SQLite has one writer at a
// time; a connection that finds the lock taken sleeps in SQLite's busy
// handler (up to 100ms a time). One connection per handle queues the
// instance's statements in Go instead, which keeps a loaded machine from
// turning a run into sleeps. A PostgreSQL pool keeps memtest.IdleConns
// idle connections, not database/sql's 2, or it reconnects under load.
func (d *DB) Tune(db *sql.DB) {
	if d.Dialect == SQLite {
		db.SetMaxOpenConns(1)
		return
	}
	db.SetMaxIdleConns(memtest.IdleConns)
}

// Spec says what an environment is made of. The zero value is a private
// redis-server and a SQLite file in a new temporary directory.
type Spec struct {
	// Redis names a Redis to use (see Parse); empty: a private one.
	Redis string
	// Server is a memtest server to use; it wins over Redis. The
	// environment does not close it.
	Server *memtest.RedisServer
	// ClusterFixture is a memtest cluster to use; it wins over Redis. The
	// environment does not close it.
	ClusterFixture *memtest.RedisCluster
	// Cluster asks for a private Redis Cluster (memtest.StartCluster with
	// ClusterOptions) instead of a private redis-server, when no Redis is
	// named.
	Cluster        bool
	ClusterOptions *memtest.ClusterOptions
	// DB is a SQLite file path, a postgres:// URL, "postgres" for a private
	// PostgreSQL cluster, or empty for a SQLite file in the temporary
	// directory.
	DB string
	// TempPrefix names the temporary directory (os.MkdirTemp's pattern).
	// Default "memstore-env-".
	TempPrefix string
}

// Env is an environment: a Redis, a database, a temporary directory and
// the closers that release them.
type Env struct {
	Closers
	Redis *Redis
	DB    *DB
	// Dir is the temporary directory, removed by Close.
	Dir string
}

// New builds the environment of spec. The caller must Close it; on error
// everything already started is released.
func New(ctx context.Context, spec Spec) (_ *Env, err error) {
	e := &Env{}
	defer func() {
		if err != nil {
			err = errors.Join(err, e.Close())
		}
	}()
	prefix := spec.TempPrefix
	if prefix == "" {
		prefix = "memstore-env-"
	}
	if e.Dir, err = os.MkdirTemp("", prefix); err != nil {
		return nil, err
	}
	dir := e.Dir
	e.OnClose(func() error { return os.RemoveAll(dir) })
	if e.Redis, err = e.startRedis(ctx, spec); err != nil {
		return nil, err
	}
	if e.DB, err = e.openDB(ctx, spec.DB); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *Env) startRedis(ctx context.Context, spec Spec) (*Redis, error) {
	switch {
	case spec.Server != nil:
		return Standalone(spec.Server), nil
	case spec.ClusterFixture != nil:
		return OfCluster(spec.ClusterFixture), nil
	case spec.Redis != "":
		r, err := Parse(spec.Redis)
		if err != nil {
			return nil, fmt.Errorf("redis %q: %w", spec.Redis, err)
		}
		return r, nil
	case spec.Cluster:
		dir := filepath.Join(e.Dir, "redis-cluster")
		if err := os.Mkdir(dir, 0o755); err != nil {
			return nil, err
		}
		o := memtest.ClusterOptions{Private: true}
		if spec.ClusterOptions != nil {
			o = *spec.ClusterOptions
			o.Private = true
		}
		c, err := memtest.StartCluster(ctx, dir, &o)
		if err != nil {
			return nil, err
		}
		e.OnClose(c.Close)
		r := OfCluster(c)
		r.Started = true
		return r, nil
	}
	dir := filepath.Join(e.Dir, "redis")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	rs, err := memtest.StartRedis(ctx, dir, nil)
	if err != nil {
		return nil, err
	}
	e.OnClose(rs.Close)
	r := Standalone(rs)
	r.Started = true
	return r, nil
}

func (e *Env) openDB(ctx context.Context, arg string) (*DB, error) {
	switch arg {
	case "":
		d, err := NamedDB(filepath.Join(e.Dir, "env.db"))
		if d != nil {
			d.Owned = true
		}
		return d, err
	case "postgres":
		// A directory of its own: the server runs as the postgres user,
		// who cannot enter the (root-only) temporary directory.
		c, err := memtest.StartPostgres(ctx, "")
		if err != nil {
			return nil, err
		}
		e.OnClose(c.Close)
		pdb, err := c.CreateDB(ctx, "env")
		if err != nil {
			return nil, err
		}
		e.OnClose(pdb.Close) // closes the pool, drops the database
		return &DB{Dialect: Postgres, Arg: pdb.DSN(), Owned: true}, nil
	}
	return NamedDB(arg)
}
