// Package sqlstore is the database side of memstore: the schema, the row
// queries, the outbox and the stripe fences, for SQLite (modernc.org/sqlite)
// and PostgreSQL (pgx's database/sql driver) through one *sql.DB.
//
// The database is the source of truth. A write is one statement per row
// that upserts (or tombstones) the row and bumps its version, only if the
// row's stripe is still at the fence generation the write began under; a
// trigger inserts the outbox row naming the write's intent token in the
// same statement, so a crash between the commit and the cache invalidation
// is repaired by the reconciler. The statements are the same text on both
// dialects, with placeholders rebound.
package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"reflect"
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

// OutboxRow is a committed write whose cache invalidation may not have run.
type OutboxRow struct {
	ID      int64
	Key     string
	Version uint64
	Token   string
	Created time.Time
}

// DB runs memstore's queries for one namespace.
type DB struct {
	db      *sql.DB
	dialect Dialect
	ns      string
	// writeMu serialises this store's SQLite writes. SQLite has one writer
	// at a time anyway; waiting here is a queue, while waiting in the
	// driver is busy_timeout's sleep-and-poll, whose tail at 16 writers
	// reached seconds.
	writeMu chan struct{}

	q queries
	// stmts are the hot statements, prepared once (database/sql keeps
	// them per connection): re-parsing every statement was a quarter of a
	// write's CPU on SQLite.
	stmtMu sync.Mutex
	stmts  map[string]*sql.Stmt
}

// The statements, in ? placeholders, rebound for PostgreSQL by New.
//
// The fence check rides in every write: on PostgreSQL it takes a share lock
// on the stripe's fence row, which a fence (an update of that row) waits
// for, and which waits for a fence in progress and then re-reads the row: a
// write either commits before a fence or sees it and writes nothing. On
// SQLite every write and fence is serialised anyway.
const (
	fenceCheck = `(? = 0 OR EXISTS (SELECT 1 FROM memstore_fences WHERE ns = ? AND stripe = ? AND gen = ?%s))`

	qUpsert = `INSERT INTO memstore_entries (ns, key, value, format, version, ttl_ms, tombstone, updated_at, token)
SELECT ?, ?, ?, ?, 1, ?, ?, ?, ? WHERE ` + fenceCheck + `
ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, format = excluded.format,
  version = memstore_entries.version + 1, ttl_ms = excluded.ttl_ms, tombstone = excluded.tombstone,
  updated_at = excluded.updated_at, token = excluded.token
RETURNING version`

	qCasInsert = `INSERT INTO memstore_entries (ns, key, value, format, version, ttl_ms, tombstone, updated_at, token)
SELECT ?, ?, ?, ?, 1, ?, ?, ?, ? WHERE ` + fenceCheck + `
ON CONFLICT (ns, key) DO NOTHING
RETURNING version`

	qCas = `UPDATE memstore_entries SET value = ?, format = ?, version = version + 1, ttl_ms = ?,
  tombstone = ?, updated_at = ?, token = ?
WHERE ns = ? AND key = ? AND version = ? AND ` + fenceCheck + `
RETURNING version`

	qFence = `INSERT INTO memstore_fences (ns, stripe, gen, incarnation) VALUES (?, ?, 1, ?)
ON CONFLICT (ns, stripe) DO UPDATE SET
  gen = CASE WHEN memstore_fences.incarnation = excluded.incarnation THEN memstore_fences.gen ELSE memstore_fences.gen + 1 END,
  incarnation = excluded.incarnation
RETURNING gen`

	qGen       = `SELECT gen FROM memstore_fences WHERE ns = ? AND stripe = ?`
	qLoad      = `SELECT value, format, version, ttl_ms, tombstone FROM memstore_entries WHERE ns = ? AND key = ?`
	qPending   = `SELECT id, key, version, token, created_ms FROM memstore_outbox WHERE ns = ? AND created_ms <= ? ORDER BY id LIMIT ?`
	qDelOutbox = `DELETE FROM memstore_outbox WHERE ns = ? AND id = ? AND token = ?`
)

type queries struct {
	upsert, casInsert, cas, fence, gen, load, pending, delOutbox string
}

// New returns the queries for namespace ns on db. dialect Unknown detects it.
func New(db *sql.DB, dialect Dialect, ns string) (*DB, error) {
	if dialect == Unknown {
		dialect = Detect(db)
	}
	if dialect == Unknown {
		return nil, fmt.Errorf("sqlstore: cannot tell the SQL dialect of driver %T; set Options.Dialect", db.Driver())
	}
	d := &DB{db: db, dialect: dialect, ns: ns, writeMu: make(chan struct{}, 1), stmts: map[string]*sql.Stmt{}}
	lock := ""
	if dialect == Postgres {
		lock = " FOR SHARE"
	}
	w := func(q string) string { return d.rebind(strings.Replace(q, "%s", lock, 1)) }
	d.q = queries{
		upsert: w(qUpsert), casInsert: w(qCasInsert), cas: w(qCas),
		fence: d.rebind(qFence), gen: d.rebind(qGen), load: d.rebind(qLoad),
		pending: d.rebind(qPending), delOutbox: d.rebind(qDelOutbox),
	}
	return d, nil
}

// Dialect reports the dialect in use.
func (d *DB) Dialect() Dialect { return d.dialect }

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
// New: the tables may not exist before Migrate).
func (d *DB) stmt(ctx context.Context, q string) (*sql.Stmt, error) {
	d.stmtMu.Lock()
	defer d.stmtMu.Unlock()
	if s := d.stmts[q]; s != nil {
		return s, nil
	}
	s, err := d.db.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	d.stmts[q] = s
	return s, nil
}

// queryRow runs a prepared q on tx, or on the pool when tx is nil.
func (d *DB) queryRow(ctx context.Context, tx *sql.Tx, q string, args ...any) (*sql.Row, error) {
	s, err := d.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	if tx != nil {
		s = tx.StmtContext(ctx, s)
	}
	return s.QueryRowContext(ctx, args...), nil
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
	// SQLite: a plain INTEGER PRIMARY KEY is the rowid. AUTOINCREMENT would
	// also write sqlite_sequence on every insert; rows are deleted by id and
	// token, so a reused id can never delete the wrong row.
	blob, id := "BLOB", "INTEGER PRIMARY KEY"
	if d.dialect == Postgres {
		blob, id = "BYTEA", "BIGSERIAL PRIMARY KEY"
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
		`CREATE TABLE IF NOT EXISTS memstore_outbox (
  id ` + id + `,
  ns TEXT NOT NULL,
  key TEXT NOT NULL,
  version BIGINT NOT NULL,
  token TEXT NOT NULL,
  created_ms BIGINT NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS memstore_outbox_age ON memstore_outbox (ns, created_ms)`,
		`CREATE TABLE IF NOT EXISTS memstore_fences (
  ns TEXT NOT NULL,
  stripe INTEGER NOT NULL,
  gen BIGINT NOT NULL,
  incarnation TEXT NOT NULL,
  PRIMARY KEY (ns, stripe))`,
	}
	// The outbox row of every write, in the write's own statement.
	const outbox = `INSERT INTO memstore_outbox (ns, key, version, token, created_ms) VALUES (NEW.ns, NEW.key, NEW.version, NEW.token, NEW.updated_at)`
	if d.dialect == Postgres {
		stmts = append(stmts,
			`CREATE OR REPLACE FUNCTION memstore_outbox_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  `+outbox+`;
  RETURN NULL;
END $$`,
			`DO $$ BEGIN
  CREATE TRIGGER memstore_outbox_row AFTER INSERT OR UPDATE ON memstore_entries
    FOR EACH ROW EXECUTE FUNCTION memstore_outbox_row();
EXCEPTION WHEN duplicate_object THEN NULL;
END $$`)
	} else {
		for _, ev := range []string{"INSERT", "UPDATE"} {
			stmts = append(stmts, `CREATE TRIGGER IF NOT EXISTS memstore_outbox_`+strings.ToLower(ev)+` AFTER `+ev+` ON memstore_entries
BEGIN `+outbox+`; END`)
		}
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
	var r Row
	var ver, ttl int64
	var fmtv int64
	row, err := d.queryRow(ctx, nil, d.q.load, d.ns, key)
	if err == nil {
		err = row.Scan(&r.Value, &fmtv, &ver, &ttl, &r.Tombstone)
	}
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
// new version. One write is one statement; several run in one transaction.
// A compare-and-set whose version does not match fails with ErrConflict,
// a write whose stripe was fenced with ErrFenced, and in both cases nothing
// is written. An error that leaves the outcome open wraps ErrCommitUnknown;
// every other error means nothing was written.
func (d *DB) Apply(ctx context.Context, writes []Write) ([]uint64, error) {
	unlock, err := d.lockWrites(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if len(writes) == 1 {
		v, err := d.applyOne(ctx, nil, writes[0])
		switch {
		case err == nil:
			return []uint64{v}, nil
		case errors.Is(err, ErrConflict), errors.Is(err, ErrFenced), notApplied(err):
			return nil, err
		}
		return nil, errors.Join(ErrCommitUnknown, err)
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	versions := make([]uint64, len(writes))
	for i, w := range writes {
		if versions[i], err = d.applyOne(ctx, tx, w); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, errors.Join(ErrCommitUnknown, err)
	}
	return versions, nil
}

// applyOne runs one row's write statement (on tx, or on its own).
func (d *DB) applyOne(ctx context.Context, tx *sql.Tx, w Write) (uint64, error) {
	value := w.Value
	if value == nil {
		value = []byte{}
	}
	now, ttl := time.Now().UnixMilli(), w.TTL.Milliseconds()
	check := w.Gen
	switch {
	case w.Unfenced:
		check = 0
	case w.Gen <= 0:
		return 0, fmt.Errorf("sqlstore: write of %q without a fence generation", w.Key)
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
		args = append([]any{d.ns, w.Key, value, int64(w.Format), ttl, w.Delete, now, w.Token}, fence...)
	default:
		q = d.q.cas
		args = append([]any{value, int64(w.Format), ttl, w.Delete, now, w.Token, d.ns, w.Key, int64(*w.Expect)}, fence...)
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
	if w.Expect == nil {
		return 0, ErrFenced
	}
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

// Pending lists up to limit outbox rows created at or before cutoff, oldest
// first.
func (d *DB) Pending(ctx context.Context, cutoff time.Time, limit int) ([]OutboxRow, error) {
	rows, err := d.db.QueryContext(ctx, d.q.pending, d.ns, cutoff.UnixMilli(), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []OutboxRow
	for rows.Next() {
		var r OutboxRow
		var ver, created int64
		if err := rows.Scan(&r.ID, &r.Key, &ver, &r.Token, &created); err != nil {
			return nil, err
		}
		r.Version, r.Created = uint64(ver), time.UnixMilli(created)
		out = append(out, r)
	}
	return out, rows.Err()
}

// DeleteOutbox removes repaired outbox rows.
func (d *DB) DeleteOutbox(ctx context.Context, rows []OutboxRow) error {
	if len(rows) == 0 {
		return nil
	}
	unlock, err := d.lockWrites(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	for _, r := range rows {
		if _, err := tx.ExecContext(ctx, d.q.delOutbox, d.ns, r.ID, r.Token); err != nil {
			return err
		}
	}
	return tx.Commit()
}
