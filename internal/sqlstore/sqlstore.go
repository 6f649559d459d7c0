// Package sqlstore is the database side of memstore: the schema, the row
// queries, the reconciler's scan and the stripe fences, for SQLite
// (modernc.org/sqlite) and PostgreSQL (pgx's database/sql driver) through
// one *sql.DB.
//
// The database is the source of truth. A write is one statement per row
// that upserts (or tombstones) the row and bumps its version, only if the
// row's stripe is still at the fence generation the write began under;
// concurrent writes commit together (on PostgreSQL, plain writes share one
// statement of many rows, each fenced on its own). The
// row is its own outbox entry: it keeps the write's intent token and time,
// indexed, so the reconciler finds every write of a time window and
// re-applies its cache repair, with no outbox table to insert into and
// delete from. The statements are the same text on both dialects, with
// placeholders rebound.
package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Dialect is the SQL flavour of a database.
type Dialect uint8

const (
	Unknown Dialect = iota
	SQLite
	Postgres
)

func (d Dialect) String() string {
	switch d {
	case SQLite:
		return "sqlite"
	case Postgres:
		return "postgres"
	}
	return "unknown"
}

// Detect names the dialect of db from its driver's type.
func Detect(db *sql.DB) Dialect {
	t := reflect.TypeOf(db.Driver())
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	name := strings.ToLower(t.PkgPath() + "." + t.Name())
	switch {
	case strings.Contains(name, "sqlite"):
		return SQLite
	case strings.Contains(name, "pgx"), strings.Contains(name, "pq."), strings.Contains(name, "postgres"):
		return Postgres
	}
	return Unknown
}

var (
	// ErrConflict: a conditional write found another version.
	ErrConflict = errors.New("sqlstore: version conflict")
	// ErrCommitUnknown: the commit was sent but its result was lost; the
	// write may or may not be applied.
	ErrCommitUnknown = errors.New("sqlstore: commit outcome unknown")
	// ErrFenced: a stripe's generation moved on since the write's intent was
	// recorded (Redis lost the intent, and a reader fenced the stripe).
	// Nothing was written.
	ErrFenced = errors.New("sqlstore: stripe fenced since the write began")
)

// Row is one entry as the database holds it.
type Row struct {
	Found     bool // a row exists (possibly a tombstone)
	Value     []byte
	Format    uint8
	Version   uint64
	TTL       time.Duration // per-entry cache TTL; 0 means the store's default
	Tombstone bool
}

// Write is one change in a write transaction.
type Write struct {
	Key    string
	Value  []byte
	Format uint8
	TTL    time.Duration
	Delete bool    // write a tombstone instead of a value
	Expect *uint64 // compare-and-set: apply only if the row's version is *Expect (0: no row yet)
	Token  string  // the intent token, kept in the outbox for the reconciler
	// Stripe and Gen: the write commits only if the stripe's fence
	// generation is still Gen, the one its intent was recorded under.
	// Unfenced skips that check, for a write that could record no intent
	// (Redis unreachable, and the store told to write anyway).
	Stripe   int
	Gen      int64
	Unfenced bool
}

// Written is a committed write, as the reconciler finds it: the row's key,
// version and the intent token of its last write.
type Written struct {
	Key     string
	Version uint64
	Token   string
	At      int64 // the write's time, ms since the epoch (the writer's clock)
}

// DB runs memstore's queries for one namespace.
type DB struct {
	db      *sql.DB
	dialect Dialect
	ns      string
	// writeMu serialises this store's SQLite writes. SQLite has one writer
	// at a time anyway; waiting here is a queue, while waiting in the
	// driver is busy_timeout's sleep-and-poll, whose tail at 16 writers
	// reached seconds. Writes queue in queue, for group commit (group).
	writeMu chan struct{}
	qmu     sync.Mutex
	queue   []*request

	q queries
	// stmts are the hot statements, prepared once (database/sql keeps
	// them per connection): re-parsing every statement was a quarter of a
	// write's CPU on SQLite.
	stmtMu sync.Mutex
	stmts  map[string]*sql.Stmt
	// busyWait is SQLite's busy_timeout, the longest a statement waits for
	// another process's lock; -1 if unknown (see commitCtx).
	busyWait time.Duration
}

// The statements, in ? placeholders, rebound for PostgreSQL by New.
//
// The fence check rides in every write: on PostgreSQL it takes a share lock
// on the stripe's fence row, which a fence (an update of that row) waits
// for, and which waits for a fence in progress and then re-reads the row: a
// write either commits before a fence or sees it and writes nothing. On
// SQLite every write and fence is serialised anyway.
//
// A row's updated_at is the database's clock ({now}) when the statement
// wrote it, after its locks were taken, and the reconciler reads the same
// clock: a write becomes visible within its commit of the time it records,
// so a pass that reaches a time has seen every write stamped before it that
// committed in time (see Reconcile). No host's clock takes part.
const (
	fenceCheck = `(? = 0 OR EXISTS (SELECT 1 FROM memstore_fences WHERE ns = ? AND stripe = ? AND gen = ?%s))`

	// A plain write does not return its version (nobody asks for it, and a
	// RETURNING read back costs SQLite a third of the statement); a write
	// that changed nothing was fenced.
	qUpsert = `INSERT INTO memstore_entries (ns, key, value, format, version, ttl_ms, tombstone, updated_at, token)
SELECT ?, ?, ?, ?, 1, ?, ?, {now}, ? WHERE ` + fenceCheck + upsertSet

	// qUpsertRows is qUpsert for many rows in one statement (PostgreSQL's
	// group commit, applyRound): the rows come as arrays, each with its
	// own stripe and generation (0: unfenced), fenced row by row, and the
	// statement returns the keys it wrote; a key it does not return was
	// fenced.
	qUpsertRows = `INSERT INTO memstore_entries (ns, key, value, format, version, ttl_ms, tombstone, updated_at, token)
SELECT ?, u.key, u.value, u.format, 1, u.ttl_ms, u.tombstone, {now}, u.token
FROM unnest(?::text[], ?::bytea[], ?::int[], ?::bigint[], ?::boolean[], ?::text[], ?::int[], ?::bigint[])
  AS u(key, value, format, ttl_ms, tombstone, token, stripe, gen)
WHERE u.gen = 0 OR EXISTS (SELECT 1 FROM memstore_fences f WHERE f.ns = ? AND f.stripe = u.stripe AND f.gen = u.gen FOR SHARE)` +
		upsertSet + `
RETURNING key`

	upsertSet = `
ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, format = excluded.format,
  version = memstore_entries.version + 1, ttl_ms = excluded.ttl_ms, tombstone = excluded.tombstone,
  updated_at = {now}, token = excluded.token`

	qCasInsert = `INSERT INTO memstore_entries (ns, key, value, format, version, ttl_ms, tombstone, updated_at, token)
SELECT ?, ?, ?, ?, 1, ?, ?, {now}, ? WHERE ` + fenceCheck + `
ON CONFLICT (ns, key) DO NOTHING
RETURNING version`

	qCas = `UPDATE memstore_entries SET value = ?, format = ?, version = version + 1, ttl_ms = ?,
  tombstone = ?, updated_at = {now}, token = ?
WHERE ns = ? AND key = ? AND version = ? AND ` + fenceCheck + `
RETURNING version`

	qFence = `INSERT INTO memstore_fences (ns, stripe, gen, incarnation) VALUES (?, ?, 1, ?)
ON CONFLICT (ns, stripe) DO UPDATE SET
  gen = CASE WHEN memstore_fences.incarnation = excluded.incarnation THEN memstore_fences.gen ELSE memstore_fences.gen + 1 END,
  incarnation = excluded.incarnation
RETURNING gen`

	qGen  = `SELECT gen FROM memstore_fences WHERE ns = ? AND stripe = ?`
	qLoad = `SELECT value, format, version, ttl_ms, tombstone FROM memstore_entries WHERE ns = ? AND key = ?`
	// The writes after a cursor (time, key), in that order, up to a time.
	qWritten = `SELECT key, version, token, updated_at FROM memstore_entries
WHERE ns = ? AND (updated_at > ? OR updated_at = ? AND key > ?) AND updated_at <= ?
ORDER BY updated_at, key LIMIT ?`
	qMark    = `SELECT {now}, (SELECT upto FROM memstore_reconciled WHERE ns = ?)`
	qSetMark = `INSERT INTO memstore_reconciled (ns, upto) VALUES (?, ?)
ON CONFLICT (ns) DO UPDATE SET upto = excluded.upto WHERE memstore_reconciled.upto < excluded.upto`
)

// nowMs is {now}: the database's clock, in ms since the epoch, read when the
// expression is evaluated.
var nowMs = map[Dialect]string{
	SQLite:   `CAST(unixepoch('subsec') * 1000 AS INTEGER)`,
	Postgres: `CAST(floor(extract(epoch FROM clock_timestamp()) * 1000) AS BIGINT)`,
}

type queries struct {
	upsert, upsertRows, casInsert, cas, fence, gen, load, written, mark, setMark string
}

// New returns the queries for namespace ns on db. dialect Unknown detects it.
func New(db *sql.DB, dialect Dialect, ns string) (*DB, error) {
	if dialect == Unknown {
		dialect = Detect(db)
	}
	if dialect == Unknown {
		return nil, fmt.Errorf("sqlstore: cannot tell the SQL dialect of driver %T; set Options.Dialect", db.Driver())
	}
	d := &DB{db: db, dialect: dialect, ns: ns, writeMu: make(chan struct{}, 1), stmts: map[string]*sql.Stmt{}, busyWait: -1}
	if dialect == SQLite {
		var ms int64
		if err := db.QueryRow(`PRAGMA busy_timeout`).Scan(&ms); err == nil && ms >= 0 {
			d.busyWait = time.Duration(ms) * time.Millisecond
		}
	}
	lock := ""
	if dialect == Postgres {
		lock = " FOR SHARE"
	}
	w := func(q string) string {
		return d.rebind(strings.ReplaceAll(strings.Replace(q, "%s", lock, 1), "{now}", nowMs[dialect]))
	}
	d.q = queries{
		upsert: w(qUpsert), upsertRows: w(qUpsertRows), casInsert: w(qCasInsert), cas: w(qCas),
		fence: d.rebind(qFence), gen: d.rebind(qGen), load: d.rebind(qLoad),
		written: d.rebind(qWritten), mark: w(qMark), setMark: d.rebind(qSetMark),
	}
	return d, nil
}

// Dialect reports the dialect in use.
func (d *DB) Dialect() Dialect { return d.dialect }

// IdleClosed is how many connections the pool has closed so far because
// its idle list was full (sql.DBStats.MaxIdleClosed).
func (d *DB) IdleClosed() int64 { return d.db.Stats().MaxIdleClosed }

// rebind turns ? placeholders into $n for PostgreSQL.
func (d *DB) rebind(q string) string { return Rebind(d.dialect, q) }

// Rebind writes a query with ? placeholders in dialect d's style: $1, $2,
// ... for PostgreSQL, unchanged for SQLite.
func Rebind(d Dialect, q string) string {
	if d != Postgres {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// stmt returns q prepared on the pool, preparing it on first use (not in
// New: the tables may not exist before Migrate). The lock is never held
// while preparing: a prepare waits for a pooled connection, and a caller
// inside a transaction that holds SQLite's write lock must not wait behind
// it, or the connections that wait for that write lock would never free
// one (each waits out busy_timeout).
func (d *DB) stmt(ctx context.Context, q string) (*sql.Stmt, error) {
	d.stmtMu.Lock()
	s := d.stmts[q]
	d.stmtMu.Unlock()
	if s != nil {
		return s, nil
	}
	s, err := d.db.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	d.stmtMu.Lock()
	defer d.stmtMu.Unlock()
	if prev := d.stmts[q]; prev != nil {
		s.Close() // another caller prepared it meanwhile
		return prev, nil
	}
	d.stmts[q] = s
	return s, nil
}

// prepared returns q prepared, for tx or for the pool when tx is nil. In a
// transaction, a statement the pool has not prepared yet comes back nil:
// preparing it would wait for a second connection, which a pool of one
// never frees while the transaction holds its own. The caller runs q
// unprepared on tx instead, once.
func (d *DB) prepared(ctx context.Context, tx *sql.Tx, q string) (*sql.Stmt, error) {
	if tx == nil {
		return d.stmt(ctx, q)
	}
	d.stmtMu.Lock()
	s := d.stmts[q]
	d.stmtMu.Unlock()
	if s == nil {
		return nil, nil
	}
	return tx.StmtContext(ctx, s), nil
}

// queryRow runs q, prepared, on tx, or on the pool when tx is nil.
func (d *DB) queryRow(ctx context.Context, tx *sql.Tx, q string, args ...any) (*sql.Row, error) {
	s, err := d.prepared(ctx, tx, q)
	switch {
	case err != nil:
		return nil, err
	case s == nil:
		return tx.QueryRowContext(ctx, q, args...), nil
	}
	return s.QueryRowContext(ctx, args...), nil
}

// query runs q, prepared, on the pool, and calls row for each row of its
// answer.
func (d *DB) query(ctx context.Context, q string, row func(*sql.Rows) error, args ...any) error {
	s, err := d.stmt(ctx, q)
	if err != nil {
		return err
	}
	rs, err := s.QueryContext(ctx, args...)
	if err != nil {
		return err
	}
	defer rs.Close()
	for rs.Next() {
		if err := row(rs); err != nil {
			return err
		}
	}
	return rs.Err()
}

// exec runs q, prepared, on tx, or on the pool when tx is nil, and returns
// the rows it changed.
func (d *DB) exec(ctx context.Context, tx *sql.Tx, q string, args ...any) (int64, error) {
	s, err := d.prepared(ctx, tx, q)
	if err != nil {
		return 0, err
	}
	var res sql.Result
	if s == nil {
		res, err = tx.ExecContext(ctx, q, args...)
	} else {
		res, err = s.ExecContext(ctx, args...)
	}
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// lockWrites takes the SQLite write queue, honouring ctx. It returns the
// release function (a no-op on PostgreSQL, which has row locks).
func (d *DB) lockWrites(ctx context.Context) (func(), error) {
	if d.dialect != SQLite {
		return func() {}, nil
	}
	select {
	case d.writeMu <- struct{}{}:
		return func() { <-d.writeMu }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Migrate creates the tables if they do not exist. It is idempotent.
func (d *DB) Migrate(ctx context.Context) error {
	blob := "BLOB"
	if d.dialect == Postgres {
		blob = "BYTEA"
	}
	stmts := []string{
		`CREATE TABLE IF NOT EXISTS memstore_entries (
  ns TEXT NOT NULL,
  key TEXT NOT NULL,
  value ` + blob + ` NOT NULL,
  format INTEGER NOT NULL,
  version BIGINT NOT NULL,
  ttl_ms BIGINT NOT NULL DEFAULT 0,
  tombstone BOOLEAN NOT NULL DEFAULT FALSE,
  updated_at BIGINT NOT NULL,
  token TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (ns, key))`,
		// The reconciler's scan: the writes of a time window.
		`CREATE INDEX IF NOT EXISTS memstore_entries_written ON memstore_entries (ns, updated_at, key)`,
		`CREATE TABLE IF NOT EXISTS memstore_reconciled (
  ns TEXT NOT NULL PRIMARY KEY,
  upto BIGINT NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS memstore_fences (
  ns TEXT NOT NULL,
  stripe INTEGER NOT NULL,
  gen BIGINT NOT NULL,
  incarnation TEXT NOT NULL,
  PRIMARY KEY (ns, stripe))`,
	}
	for _, s := range stmts {
		if _, err := d.db.ExecContext(ctx, s); err != nil {
			// Two stores migrating one PostgreSQL database at once can race on
			// the catalog; the loser retries once and sees the tables.
			if _, err2 := d.db.ExecContext(ctx, s); err2 != nil {
				return fmt.Errorf("sqlstore: migrate: %w", err)
			}
		}
	}
	return nil
}

// Load reads one row. A missing row is Row{Found: false} and no error.
func (d *DB) Load(ctx context.Context, key string) (Row, error) {
	row, err := d.queryRow(ctx, nil, d.q.load, d.ns, key)
	if err != nil {
		return Row{}, err
	}
	return scanLoad(row)
}

// ReadRow reads one row of namespace ns on db without a DB of its own (for
// tools that look at a key now and then; unprepared).
func ReadRow(ctx context.Context, db *sql.DB, ns, key string) (Row, error) {
	return scanLoad(db.QueryRowContext(ctx, Rebind(Detect(db), qLoad), ns, key))
}

// scanLoad reads the answer of qLoad. A missing row is Row{Found: false}
// and no error.
func scanLoad(row *sql.Row) (Row, error) {
	var r Row
	var ver, ttl, fmtv int64
	err := row.Scan(&r.Value, &fmtv, &ver, &ttl, &r.Tombstone)
	if errors.Is(err, sql.ErrNoRows) {
		return Row{}, nil
	}
	if err != nil {
		return Row{}, err
	}
	r.Found, r.Format, r.Version, r.TTL = true, uint8(fmtv), uint64(ver), time.Duration(ttl)*time.Millisecond
	return r, nil
}

// LoadMany reads many rows in one query. Keys without a row are absent from
// the map.
func (d *DB) LoadMany(ctx context.Context, keys []string) (map[string]Row, error) {
	out := make(map[string]Row, len(keys))
	const chunk = 500
	for start := 0; start < len(keys); start += chunk {
		part := keys[start:min(start+chunk, len(keys))]
		args := make([]any, 0, len(part)+1)
		args = append(args, d.ns)
		ph := make([]string, len(part))
		for i, k := range part {
			ph[i] = "?"
			args = append(args, k)
		}
		q := d.rebind(`SELECT key, value, format, version, ttl_ms, tombstone FROM memstore_entries WHERE ns = ? AND key IN (` + strings.Join(ph, ",") + `)`)
		rows, err := d.db.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var k string
			var r Row
			var fmtv, ver, ttl int64
			if err := rows.Scan(&k, &r.Value, &fmtv, &ver, &ttl, &r.Tombstone); err != nil {
				rows.Close()
				return nil, err
			}
			r.Found, r.Format, r.Version, r.TTL = true, uint8(fmtv), uint64(ver), time.Duration(ttl)*time.Millisecond
			out[k] = r
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Fence moves a stripe to a new generation for the marker incarnation
// named incarnation, and returns the generation. Every write that began
// under an older generation then writes nothing. Fencing again for the same
// incarnation returns the same generation, so concurrent readers of one
// new marker agree on it.
func (d *DB) Fence(ctx context.Context, stripe int, incarnation string) (int64, error) {
	unlock, err := d.lockWrites(ctx)
	if err != nil {
		return 0, err
	}
	defer unlock()
	var gen int64
	row, err := d.queryRow(ctx, nil, d.q.fence, d.ns, stripe, incarnation)
	if err == nil {
		err = row.Scan(&gen)
	}
	return gen, err
}

// Apply writes rows, each under its stripe's fence, and returns each row's
// new version (0 for a plain write, which does not read it back; a
// compare-and-set does); the write must commit by commitBy (its intents' safe life),
// or it is aborted. One write is one statement; several run in one
// transaction. A compare-and-set whose version does not match fails with
// ErrConflict, a write whose stripe was fenced with ErrFenced, and in both
// cases nothing is written. An error that leaves the outcome open wraps
// ErrCommitUnknown; every other error means nothing was written.
//
// Concurrent Applies commit together (see group): every Apply on SQLite,
// which has one writer at a time, and on PostgreSQL an Apply of one plain
// write (not a compare-and-set), which shares a statement with the others
// (applyRows).
func (d *DB) Apply(ctx context.Context, writes []Write, commitBy time.Time) ([]uint64, error) {
	if d.dialect == SQLite || len(writes) == 1 && writes[0].Expect == nil {
		return d.group(ctx, writes, commitBy)
	}
	ctx, cancel := context.WithDeadline(ctx, commitBy)
	defer cancel()
	return d.apply(ctx, nil, writes)
}

// apply runs writes: one as its own statement (tx nil), several in a
// transaction of their own, or, with tx, inside tx.
func (d *DB) apply(ctx context.Context, tx *sql.Tx, writes []Write) ([]uint64, error) {
	if len(writes) == 1 && tx == nil {
		v, err := d.applyOne(ctx, nil, writes[0])
		switch {
		case err == nil:
			return []uint64{v}, nil
		case errors.Is(err, ErrConflict), errors.Is(err, ErrFenced), notApplied(err):
			return nil, err
		}
		return nil, errors.Join(ErrCommitUnknown, err)
	}
	own := tx == nil
	if own {
		var err error
		if tx, err = d.db.BeginTx(ctx, nil); err != nil {
			return nil, err
		}
		defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	}
	versions := make([]uint64, len(writes))
	for i, w := range writes {
		var err error
		if versions[i], err = d.applyOne(ctx, tx, w); err != nil {
			return nil, err
		}
	}
	if own {
		if err := tx.Commit(); err != nil {
			return nil, errors.Join(ErrCommitUnknown, err)
		}
	}
	return versions, nil
}

// A request is one Apply waiting for its group's commit.
type request struct {
	writes   []Write
	commitBy time.Time
	taken    bool // guarded by DB.qmu: a leader runs it; it may commit
	done     chan struct{}
	vers     []uint64
	err      error
}

// finish answers the request's Apply.
func (r *request) finish(vers []uint64, err error) {
	r.vers, r.err = vers, err
	close(r.done)
}

// group is group commit. SQLite runs one write transaction at a time, and
// each commit costs a sync of the log; on PostgreSQL each statement costs
// a round trip and the server's work per statement, which a statement of
// many rows shares. So writers queue, and whoever holds the write lock
// takes every request queued so far and runs them together: on SQLite in
// one transaction, one commit for them all; on PostgreSQL (requests of one
// plain write each) as one statement (applyRows).
// A request of one write is one statement that either applies or writes
// nothing (a lost compare-and-set, a fenced stripe), so it fails alone; a
// request of several runs under a savepoint, all or nothing. A caller whose
// context ends while its request waits in the queue withdraws it: nothing
// written. Once a leader has taken it, the outcome is unknown until the
// commit, and the caller that cannot wait for it says so.
func (d *DB) group(ctx context.Context, writes []Write, commitBy time.Time) ([]uint64, error) {
	r := &request{writes: writes, commitBy: commitBy, done: make(chan struct{})}
	d.qmu.Lock()
	d.queue = append(d.queue, r)
	d.qmu.Unlock()
	for {
		select {
		case <-r.done:
			return r.vers, r.err
		case d.writeMu <- struct{}{}:
			d.runGroup()
			<-d.writeMu
		case <-ctx.Done():
			d.qmu.Lock()
			taken := r.taken
			if !taken {
				d.queue = slices.DeleteFunc(d.queue, func(q *request) bool { return q == r })
			}
			d.qmu.Unlock()
			if taken {
				return nil, errors.Join(ErrCommitUnknown, ctx.Err())
			}
			return nil, ctx.Err()
		}
	}
}

// maxGroup bounds the requests of one group commit.
const maxGroup = 128

// runGroup takes the queued requests and commits them together. The caller
// holds the write lock.
func (d *DB) runGroup() {
	d.qmu.Lock()
	n := min(len(d.queue), maxGroup)
	batch := slices.Clone(d.queue[:n])
	d.queue = slices.Delete(d.queue, 0, n)
	for _, r := range batch {
		r.taken = true
	}
	d.qmu.Unlock()
	if len(batch) == 0 {
		return
	}
	commitBy := batch[0].commitBy
	for _, r := range batch[1:] {
		if r.commitBy.Before(commitBy) {
			commitBy = r.commitBy
		}
	}
	ctx, cancel := d.commitCtx(commitBy)
	defer cancel()
	if d.dialect == Postgres {
		d.applyRows(ctx, batch)
		return
	}
	if len(batch) == 1 {
		batch[0].finish(d.apply(ctx, nil, batch[0].writes))
		return
	}
	fail := func(err error) {
		for _, r := range batch {
			r.finish(nil, err)
		}
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		fail(err)
		return
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	vers := make([][]uint64, len(batch))
	errs := make([]error, len(batch))
	for i, r := range batch {
		several := len(r.writes) > 1
		if several {
			if _, err := tx.ExecContext(ctx, "SAVEPOINT memstore_w"); err != nil {
				fail(err)
				return
			}
		}
		vers[i], errs[i] = d.apply(ctx, tx, r.writes)
		switch {
		case errs[i] == nil:
		case errors.Is(errs[i], ErrConflict), errors.Is(errs[i], ErrFenced):
			// This request wrote nothing (a savepoint undoes the writes
			// of a request of several before its failing one).
		default:
			// A real failure: nothing of the group is written.
			fail(errs[i])
			return
		}
		if several {
			q := "RELEASE memstore_w"
			if errs[i] != nil {
				q = "ROLLBACK TO memstore_w; RELEASE memstore_w"
			}
			if _, err := tx.ExecContext(ctx, q); err != nil {
				fail(err)
				return
			}
		}
	}
	if err := tx.Commit(); err != nil {
		fail(errors.Join(ErrCommitUnknown, err))
		return
	}
	for i, r := range batch {
		r.finish(vers[i], errs[i])
	}
}

// applyRows is runGroup on PostgreSQL, for requests of one plain write
// each: one statement per round, a round holding each key once, so a key
// written twice in the batch is written twice, in queue order. The price
// of sharing: a statement that waits for a row lock (another process's
// transaction on one of its keys) holds up the writes queued behind it, at
// most until the earliest commit deadline of its group, when it is aborted.
func (d *DB) applyRows(ctx context.Context, batch []*request) {
	for len(batch) > 0 {
		var round, rest []*request
		seen := make(map[string]bool, len(batch))
		for _, r := range batch {
			if k := r.writes[0].Key; seen[k] {
				rest = append(rest, r)
			} else {
				seen[k] = true
				round = append(round, r)
			}
		}
		d.applyRound(ctx, round)
		batch = rest
	}
}

// applyRound writes the rows of requests of distinct keys in one
// statement (qUpsertRows), in key order, so that statements of several
// processes lock rows in one order. Each row is fenced on its own: a
// fenced write fails alone. A statement the server refused wrote nothing,
// and may have been refused for one row (a key the database cannot
// store): each write then runs alone, and fails alone.
func (d *DB) applyRound(ctx context.Context, round []*request) {
	if len(round) == 1 {
		round[0].finish(d.apply(ctx, nil, round[0].writes))
		return
	}
	slices.SortFunc(round, func(a, b *request) int { return strings.Compare(a.writes[0].Key, b.writes[0].Key) })
	n := len(round)
	keys, values, tokens := make([]string, 0, n), make([][]byte, 0, n), make([]string, 0, n)
	formats, stripes := make([]int32, 0, n), make([]int32, 0, n)
	ttls, gens := make([]int64, 0, n), make([]int64, 0, n)
	dels := make([]bool, 0, n)
	rows := round[:0:0]
	for _, r := range round {
		w := r.writes[0]
		check, err := fenceGen(w)
		if err != nil {
			r.finish(nil, err)
			continue
		}
		rows = append(rows, r)
		keys, tokens = append(keys, w.Key), append(tokens, w.Token)
		values = append(values, nonNil(w.Value))
		formats, stripes = append(formats, int32(w.Format)), append(stripes, int32(w.Stripe))
		ttls, gens = append(ttls, w.TTL.Milliseconds()), append(gens, check)
		dels = append(dels, w.Delete)
	}
	if len(rows) == 0 {
		return
	}
	written := make(map[string]bool, len(rows))
	err := d.query(ctx, d.q.upsertRows, func(rs *sql.Rows) error {
		var k string
		if err := rs.Scan(&k); err != nil {
			return err
		}
		written[k] = true
		return nil
	}, d.ns, keys, values, formats, ttls, dels, tokens, stripes, gens, d.ns)
	for _, r := range rows {
		switch {
		case err == nil && written[r.writes[0].Key]:
			r.finish([]uint64{0}, nil)
		case err == nil:
			r.finish(nil, ErrFenced)
		case notApplied(err):
			r.finish(d.apply(ctx, nil, r.writes))
		default:
			r.finish(nil, errors.Join(ErrCommitUnknown, err))
		}
	}
}

// commitCtx is the context a group commit runs under: it must end by
// commitBy. modernc's driver watches a statement's context from a goroutine
// of its own, started and woken for every statement whose context can end,
// and on a 2-core host those hand-offs were a third of a write's time. So
// when commitBy is further away than the longest a statement can wait
// (busy_timeout: within one process writes never wait, they queue here,
// and a pool without a bound on its connections never makes one wait),
// the statements run under a context that never ends, which commits well
// within the intents' life anyway; closer to it, they run under the
// deadline. (A disk that stalls longer is not interrupted either way.)
func (d *DB) commitCtx(commitBy time.Time) (context.Context, context.CancelFunc) {
	// A pool with a bound on its connections may make a statement wait for
	// one, which only the deadline ends: those keep it.
	if d.busyWait >= 0 && d.db.Stats().MaxOpenConnections == 0 && time.Until(commitBy) > d.busyWait+quietMargin {
		return context.Background(), func() {}
	}
	return context.WithDeadline(context.Background(), commitBy)
}

// quietMargin is commitCtx's room for a statement's own work.
const quietMargin = 100 * time.Millisecond

// applyOne runs one row's write statement (on tx, or on its own).
func (d *DB) applyOne(ctx context.Context, tx *sql.Tx, w Write) (uint64, error) {
	value := nonNil(w.Value)
	ttl := w.TTL.Milliseconds()
	check, err := fenceGen(w)
	if err != nil {
		return 0, err
	}
	fence := []any{check, d.ns, w.Stripe, w.Gen}
	var q string
	var args []any
	switch {
	case w.Expect == nil || *w.Expect == 0:
		q = d.q.upsert
		if w.Expect != nil {
			q = d.q.casInsert
		}
		args = append([]any{d.ns, w.Key, value, int64(w.Format), ttl, w.Delete, w.Token}, fence...)
	default:
		q = d.q.cas
		args = append([]any{value, int64(w.Format), ttl, w.Delete, w.Token, d.ns, w.Key, int64(*w.Expect)}, fence...)
	}
	if w.Expect == nil {
		n, err := d.exec(ctx, tx, q, args...)
		switch {
		case err != nil:
			return 0, err
		case n == 0:
			return 0, ErrFenced
		}
		return 0, nil
	}
	var ver int64
	row, err := d.queryRow(ctx, tx, q, args...)
	if err == nil {
		err = row.Scan(&ver)
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return uint64(ver), err
	}
	// No row: the fence moved on, or the compare-and-set lost.
	var gen int64
	row, err = d.queryRow(ctx, tx, d.q.gen, d.ns, w.Stripe)
	if err == nil {
		err = row.Scan(&gen)
	}
	switch {
	case errors.Is(err, sql.ErrNoRows) || err == nil && gen != w.Gen:
		return 0, ErrFenced
	case err != nil:
		return 0, err
	}
	return 0, ErrConflict
}

// fenceGen is the generation a write's statement checks its stripe
// against: its own, or 0 (no check) for an unfenced write.
func fenceGen(w Write) (int64, error) {
	switch {
	case w.Unfenced:
		return 0, nil
	case w.Gen <= 0:
		return 0, fmt.Errorf("sqlstore: write of %q without a fence generation", w.Key)
	}
	return w.Gen, nil
}

// nonNil is a value as the database stores it: NOT NULL, so an empty
// value is an empty string of bytes.
func nonNil(v []byte) []byte {
	if v == nil {
		return []byte{}
	}
	return v
}

// notApplied reports whether a failed autocommit statement certainly did
// nothing: the server answered with an error (pgx's PgError has SQLState,
// modernc's sqlite.Error a Code: a statement that fails is rolled back), or
// the driver says nothing was sent (pgconn's SafeToRetry). Interfaces, not
// imports, keep each driver out of the other's users' builds.
func notApplied(err error) bool {
	var server interface{ SQLState() string }
	if errors.As(err, &server) {
		return true
	}
	var sqlite interface{ Code() int }
	if errors.As(err, &sqlite) {
		return true
	}
	var retry interface{ SafeToRetry() bool }
	if errors.As(err, &retry) && retry.SafeToRetry() {
		return true
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone) {
		return true
	}
	// No connection was had at all: database/sql's closed pool and pgx's
	// ConnectError name themselves only in their text.
	msg := err.Error()
	return strings.HasPrefix(msg, "sql: database is closed") || strings.Contains(msg, "failed to connect to")
}

// Written lists up to limit writes of the namespace after the cursor
// (after, afterKey) and at or before upto (ms since the epoch), oldest
// first. The last one listed is the next call's cursor.
func (d *DB) Written(ctx context.Context, after int64, afterKey string, upto int64, limit int) ([]Written, error) {
	s, err := d.stmt(ctx, d.q.written)
	if err != nil {
		return nil, err
	}
	rows, err := s.QueryContext(ctx, d.ns, after, after, afterKey, upto, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Written
	for rows.Next() {
		var w Written
		var ver int64
		if err := rows.Scan(&w.Key, &ver, &w.Token, &w.At); err != nil {
			return nil, err
		}
		w.Version = uint64(ver)
		out = append(out, w)
	}
	return out, rows.Err()
}

// Reconciled returns the database's clock and how far the namespace's
// writes have been reconciled (ms since the epoch; found false if never).
func (d *DB) Reconciled(ctx context.Context) (now, upto int64, found bool, err error) {
	var mark sql.NullInt64
	row, err := d.queryRow(ctx, nil, d.q.mark, d.ns)
	if err == nil {
		err = row.Scan(&now, &mark)
	}
	return now, mark.Int64, mark.Valid, err
}

// SetReconciled records that the namespace's writes up to upto have been
// reconciled. It never moves the mark back.
func (d *DB) SetReconciled(ctx context.Context, upto int64) error {
	unlock, err := d.lockWrites(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	s, err := d.stmt(ctx, d.q.setMark)
	if err != nil {
		return err
	}
	_, err = s.ExecContext(ctx, d.ns, upto)
	return err
}
