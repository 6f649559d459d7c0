package fault

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite"
)

// Errors the SQL faults return.
var (
	// ErrDBUnreachable is what every new connection, statement,
	// transaction and commit returns while DBFail is injected. It is a plain
	// error, not driver.ErrBadConn: database/sql retries a bad connection on
	// other connections, which would only delay the same answer.
	ErrDBUnreachable = errors.New("fault: db unreachable")
	// ErrCommitLost is what Commit returns while DBFailCommits is injected,
	// after the transaction HAS been committed: the reply to a commit lost
	// on the way back, the one outcome a client cannot tell from a failure.
	ErrCommitLost = errors.New("fault: connection lost after commit (the transaction was committed)")
)

// SQLFaults is a database/sql pool whose connections pass through a
// wrapping driver that the DB nemeses switch: DBFail, DBFailCommits and
// DBLatency. Healthy, the wrapper behaves exactly as the driver it wraps:
// it forwards every optional interface the driver implements (contexts,
// pings, session resets, validation, argument checking) and falls back as
// database/sql would where the driver has none, and DB().Driver() is the
// wrapped driver, so code that detects the SQL dialect from it still does.
//
// Give every store instance its own SQLFaults to fail one instance's
// database and not another's.
type SQLFaults struct {
	base driver.Connector
	db   *sql.DB

	fail        atomic.Bool
	failCommits atomic.Bool
	latency     atomic.Int64 // time.Duration per statement
}

// NewSQLFaults wraps c. See SQLiteConnector and PostgresConnector.
func NewSQLFaults(c driver.Connector) *SQLFaults {
	f := &SQLFaults{base: c}
	f.db = sql.OpenDB(f.Connector())
	return f
}

// DB is the pool over the wrapped driver, for the store under test. Close
// closes it.
func (f *SQLFaults) DB() *sql.DB { return f.db }

// Connector returns a connector over the wrapped driver, for another pool
// (sql.OpenDB) that the same nemeses fail.
func (f *SQLFaults) Connector() driver.Connector { return &connector{f: f} }

// Close closes DB.
func (f *SQLFaults) Close() error { return f.db.Close() }

// SQLiteConnector opens the SQLite database dsn names (as
// memtest.SQLiteDSN writes it) with the pure-Go driver modernc.org/sqlite.
func SQLiteConnector(dsn string) (driver.Connector, error) {
	return sqlite.NewConnector(dsn)
}

// PostgresConnector connects to the PostgreSQL database dsn names (URL or
// key=value) with pgx's database/sql driver. To go through a Proxy, pass
// the DSN PostgresDSNVia returns.
func PostgresConnector(dsn string) (driver.Connector, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	return stdlib.GetConnector(*cfg), nil
}

// DBFail makes the database unreachable: while injected, every new
// connection, statement, prepared statement execution, transaction begin
// and commit fails at once with ErrDBUnreachable, and nothing reaches the
// database. A transaction open at Inject fails at its next statement, and
// its Commit rolls it back for real and fails, so nothing half-written is
// left; Rollback always goes through. Heal lets everything through again on
// the same connections.
func DBFail(f *SQLFaults) Nemesis {
	return &toggle{
		name:   "db-fail",
		inject: func(context.Context) error { f.fail.Store(true); return nil },
		heal:   func(context.Context) error { f.fail.Store(false); return nil },
	}
}

// DBFailCommits makes commit outcomes unknown: while injected, Commit
// commits the transaction for real, then returns ErrCommitLost as if the
// connection had dropped before the reply. A store that reports such a
// write as failed, or leaves its cache unrepaired, is caught by the checker.
// Statements other than commits work.
func DBFailCommits(f *SQLFaults) Nemesis {
	return &toggle{
		name:   "db-fail-commits",
		inject: func(context.Context) error { f.failCommits.Store(true); return nil },
		heal:   func(context.Context) error { f.failCommits.Store(false); return nil },
	}
}

// DBLatency makes the database slow: while injected, every new connection,
// statement, transaction begin and commit waits d before it is sent. The
// wait ends early with the caller's context error when its context ends, as
// a slow network would let the caller give up.
func DBLatency(f *SQLFaults, d time.Duration) Nemesis {
	return &toggle{
		name:   "db-latency",
		inject: func(context.Context) error { f.latency.Store(int64(d)); return nil },
		heal:   func(context.Context) error { f.latency.Store(0); return nil },
	}
}

// before is the fault every operation passes first: fail, or wait.
func (f *SQLFaults) before(ctx context.Context) error {
	if f.fail.Load() {
		return ErrDBUnreachable
	}
	if d := time.Duration(f.latency.Load()); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if f.fail.Load() { // injected while we waited
			return ErrDBUnreachable
		}
	}
	return nil
}

type connector struct{ f *SQLFaults }

var _ io.Closer = (*connector)(nil)

func (c *connector) Connect(ctx context.Context) (driver.Conn, error) {
	if err := c.f.before(ctx); err != nil {
		return nil, err
	}
	ci, err := c.f.base.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return wrapConn(c.f, ci), nil
}

// Driver is the wrapped driver: sqlstore.Detect and the like look at its
// type.
func (c *connector) Driver() driver.Driver { return c.f.base.Driver() }

// Close closes the wrapped connector if it has a Close (sql.DB.Close calls
// it).
func (c *connector) Close() error {
	if cl, ok := c.f.base.(io.Closer); ok {
		return cl.Close()
	}
	return nil
}

// wrapConn wraps ci in the conn type that has the same SessionResetter and
// Validator as ci. Their presence, not only their answers, changes what
// database/sql does: with both, a transaction whose context ends keeps its
// connection; without, the connection is discarded. Every other optional
// interface can be always present, falling back as database/sql would.
func wrapConn(f *SQLFaults, ci driver.Conn) driver.Conn {
	c := &conn{f: f, ci: ci}
	_, r := ci.(driver.SessionResetter)
	_, v := ci.(driver.Validator)
	switch {
	case r && v:
		return connRV{c}
	case r:
		return connR{c}
	case v:
		return connV{c}
	default:
		return c
	}
}

type conn struct {
	f  *SQLFaults
	ci driver.Conn
}

var (
	_ driver.Conn               = (*conn)(nil)
	_ driver.ConnBeginTx        = (*conn)(nil)
	_ driver.ConnPrepareContext = (*conn)(nil)
	_ driver.ExecerContext      = (*conn)(nil)
	_ driver.QueryerContext     = (*conn)(nil)
	_ driver.Pinger             = (*conn)(nil)
	_ driver.NamedValueChecker  = (*conn)(nil)
	_ driver.SessionResetter    = connR{}
	_ driver.Validator          = connV{}
	_ driver.SessionResetter    = connRV{}
	_ driver.Validator          = connRV{}
)

type (
	connR  struct{ *conn }
	connV  struct{ *conn }
	connRV struct{ *conn }
)

// Session resets and validation are the pool's own bookkeeping; they pass
// through unfaulted, and the next statement meets the fault.
func (c connR) ResetSession(ctx context.Context) error {
	return c.ci.(driver.SessionResetter).ResetSession(ctx)
}
func (c connV) IsValid() bool { return c.ci.(driver.Validator).IsValid() }
func (c connRV) ResetSession(ctx context.Context) error {
	return c.ci.(driver.SessionResetter).ResetSession(ctx)
}
func (c connRV) IsValid() bool { return c.ci.(driver.Validator).IsValid() }

// Unwrap returns the driver's connection (modernc.org/sqlite's Limit
// looks for it).
func (c *conn) Unwrap() driver.Conn { return c.ci }

func (c *conn) Close() error { return c.ci.Close() }

func (c *conn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *conn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	if err := c.f.before(ctx); err != nil {
		return nil, err
	}
	var (
		si  driver.Stmt
		err error
	)
	if cp, ok := c.ci.(driver.ConnPrepareContext); ok {
		si, err = cp.PrepareContext(ctx, query)
	} else if si, err = c.ci.Prepare(query); err == nil && ctx.Err() != nil {
		si.Close()
		return nil, ctx.Err()
	}
	if err != nil {
		return nil, err
	}
	s := &stmt{c: c, si: si}
	//lint:ignore SA1019 forwarded for drivers that still use it
	if _, ok := si.(driver.ColumnConverter); ok {
		return stmtCC{s}, nil
	}
	return s, nil
}

func (c *conn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if err := c.f.before(ctx); err != nil {
		return nil, err
	}
	var (
		txi driver.Tx
		err error
	)
	if cb, ok := c.ci.(driver.ConnBeginTx); ok {
		txi, err = cb.BeginTx(ctx, opts)
	} else {
		// database/sql's own fallback for drivers without BeginTx.
		if opts.Isolation != driver.IsolationLevel(sql.LevelDefault) {
			return nil, errors.New("sql: driver does not support non-default isolation level")
		}
		if opts.ReadOnly {
			return nil, errors.New("sql: driver does not support read-only transactions")
		}
		//lint:ignore SA1019 the fallback for drivers without BeginTx
		if txi, err = c.ci.Begin(); err == nil && ctx.Err() != nil {
			txi.Rollback()
			return nil, ctx.Err()
		}
	}
	if err != nil {
		return nil, err
	}
	return &tx{f: c.f, ctx: ctx, txi: txi}, nil
}

func (c *conn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	ec, hasCtx := c.ci.(driver.ExecerContext)
	e, has := c.ci.(driver.Execer) //lint:ignore SA1019 the fallback database/sql uses
	if !hasCtx && !has {
		// database/sql prepares instead, and the prepared statement meets
		// the fault (twice for DBLatency: once to prepare, once to run).
		return nil, driver.ErrSkip
	}
	if err := c.f.before(ctx); err != nil {
		return nil, err
	}
	if hasCtx {
		return ec.ExecContext(ctx, query, args)
	}
	vals, err := namedValueToValue(args)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return e.Exec(query, vals)
}

func (c *conn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	qc, hasCtx := c.ci.(driver.QueryerContext)
	q, has := c.ci.(driver.Queryer) //lint:ignore SA1019 the fallback database/sql uses
	if !hasCtx && !has {
		return nil, driver.ErrSkip
	}
	if err := c.f.before(ctx); err != nil {
		return nil, err
	}
	if hasCtx {
		return qc.QueryContext(ctx, query, args)
	}
	vals, err := namedValueToValue(args)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return q.Query(query, vals)
}

// Ping fails with the fault; a driver without Pinger is taken as alive, as
// database/sql does.
func (c *conn) Ping(ctx context.Context) error {
	if err := c.f.before(ctx); err != nil {
		return err
	}
	if p, ok := c.ci.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

// CheckNamedValue forwards to the driver's checker. Without one, ErrSkip
// sends database/sql to the checks it would have run anyway. pgx needs this:
// its checker accepts types (slices, maps, its own) that the default one
// refuses.
func (c *conn) CheckNamedValue(nv *driver.NamedValue) error {
	if nvc, ok := c.ci.(driver.NamedValueChecker); ok {
		return nvc.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

func namedValueToValue(named []driver.NamedValue) ([]driver.Value, error) {
	vals := make([]driver.Value, len(named))
	for i, nv := range named {
		if nv.Name != "" {
			return nil, errors.New("sql: driver does not support the use of Named Parameters")
		}
		vals[i] = nv.Value
	}
	return vals, nil
}

type stmt struct {
	c  *conn
	si driver.Stmt
}

var (
	_ driver.Stmt              = (*stmt)(nil)
	_ driver.StmtExecContext   = (*stmt)(nil)
	_ driver.StmtQueryContext  = (*stmt)(nil)
	_ driver.NamedValueChecker = (*stmt)(nil)
	_ driver.ColumnConverter   = stmtCC{} //lint:ignore SA1019 forwarded for drivers that still use it
)

// stmtCC is a stmt whose driver statement has a ColumnConverter; as with
// the connection's interfaces, its presence changes database/sql's
// argument checks.
type stmtCC struct{ *stmt }

func (s stmtCC) ColumnConverter(idx int) driver.ValueConverter {
	return s.si.(driver.ColumnConverter).ColumnConverter(idx) //lint:ignore SA1019 forwarded
}

func (s *stmt) Close() error  { return s.si.Close() }
func (s *stmt) NumInput() int { return s.si.NumInput() }

func (s *stmt) Exec(args []driver.Value) (driver.Result, error) {
	if err := s.c.f.before(context.Background()); err != nil {
		return nil, err
	}
	return s.si.Exec(args) //lint:ignore SA1019 forwarded
}

func (s *stmt) Query(args []driver.Value) (driver.Rows, error) {
	if err := s.c.f.before(context.Background()); err != nil {
		return nil, err
	}
	return s.si.Query(args) //lint:ignore SA1019 forwarded
}

func (s *stmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	if err := s.c.f.before(ctx); err != nil {
		return nil, err
	}
	if ec, ok := s.si.(driver.StmtExecContext); ok {
		return ec.ExecContext(ctx, args)
	}
	vals, err := namedValueToValue(args)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.si.Exec(vals) //lint:ignore SA1019 the fallback database/sql uses
}

func (s *stmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	if err := s.c.f.before(ctx); err != nil {
		return nil, err
	}
	if qc, ok := s.si.(driver.StmtQueryContext); ok {
		return qc.QueryContext(ctx, args)
	}
	vals, err := namedValueToValue(args)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.si.Query(vals) //lint:ignore SA1019 the fallback database/sql uses
}

// CheckNamedValue follows database/sql's order: the statement's checker,
// else the connection's, else the default checks.
func (s *stmt) CheckNamedValue(nv *driver.NamedValue) error {
	if nvc, ok := s.si.(driver.NamedValueChecker); ok {
		return nvc.CheckNamedValue(nv)
	}
	return s.c.CheckNamedValue(nv)
}

type tx struct {
	f   *SQLFaults
	ctx context.Context // the caller's, from BeginTx
	txi driver.Tx
}

// Commit meets the faults: unreachable, it rolls the transaction back for
// real and fails; slow, it waits (and rolls back if the caller's context
// ends); with commits failing, it commits and then reports ErrCommitLost.
func (t *tx) Commit() error {
	if err := t.f.before(t.ctx); err != nil {
		if rerr := t.txi.Rollback(); rerr != nil {
			// The connection may still be inside the transaction: have
			// database/sql discard it rather than hand it to the next caller.
			return errors.Join(err, rerr, driver.ErrBadConn)
		}
		return err
	}
	if err := t.txi.Commit(); err != nil {
		return err
	}
	if t.f.failCommits.Load() {
		return ErrCommitLost
	}
	return nil
}

// Rollback always goes through: an unreachable database aborts the
// transaction anyway, and a connection left inside one would poison the
// pool after Heal.
func (t *tx) Rollback() error { return t.txi.Rollback() }
