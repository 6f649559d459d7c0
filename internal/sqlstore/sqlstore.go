// Package sqlstore is the database side of memstore: the schema, the row
// queries and the outbox, for SQLite (modernc.org/sqlite) and PostgreSQL
// (pgx's database/sql driver) through one *sql.DB.
//
// The database is the source of truth. Every write runs in one transaction
// that upserts (or tombstones) the row, bumps its version and inserts an
// outbox row naming the write's intent token, so a crash between the commit
// and the cache invalidation is repaired by the reconciler.
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
	Expect *uint64 // compare-and-set: apply only if the row's version is *Expect (0: no live row)
	Token  string  // the intent token, kept in the outbox for the reconciler
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
	q       queries
	// writeMu serialises this store's SQLite write transactions. SQLite
	// has one writer at a time anyway; waiting here is a queue, while
	// waiting in the driver is busy_timeout's sleep-and-poll, whose tail at
	// 16 writers reached seconds.
	writeMu chan struct{}
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

type queries struct {
	load, upsert, cas, casInsert, outbox, pending, delOutbox string
	// PostgreSQL only: a single write as one statement (row and outbox row
	// in one data-modifying CTE): one round trip instead of BEGIN, two
	// statements and COMMIT.
	pgUpsert, pgCas, pgCasInsert string
}

// New returns the queries for namespace ns on db. dialect Unknown detects it.
func New(db *sql.DB, dialect Dialect, ns string) (*DB, error) {
	if dialect == Unknown {
		dialect = Detect(db)
	}
	if dialect == Unknown {
		return nil, fmt.Errorf("sqlstore: cannot tell the SQL dialect of driver %T; set Options.Dialect", db.Driver())
	}
	d := &DB{db: db, dialect: dialect, ns: ns, writeMu: make(chan struct{}, 1)}
	d.q = queries{
		load: d.rebind(`SELECT value, format, version, ttl_ms, tombstone FROM memstore_entries WHERE ns = ? AND key = ?`),
		upsert: d.rebind(`INSERT INTO memstore_entries (ns, key, value, format, version, ttl_ms, tombstone, updated_at)
VALUES (?, ?, ?, ?, 1, ?, ?, ?)
ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, format = excluded.format,
  version = memstore_entries.version + 1, ttl_ms = excluded.ttl_ms, tombstone = excluded.tombstone,
  updated_at = excluded.updated_at
RETURNING version`),
		cas: d.rebind(`UPDATE memstore_entries SET value = ?, format = ?, version = version + 1, ttl_ms = ?,
  tombstone = ?, updated_at = ?
WHERE ns = ? AND key = ? AND version = ?
RETURNING version`),
		casInsert: d.rebind(`INSERT INTO memstore_entries (ns, key, value, format, version, ttl_ms, tombstone, updated_at)
VALUES (?, ?, ?, ?, 1, ?, ?, ?)
ON CONFLICT (ns, key) DO NOTHING
RETURNING version`),
		outbox:    d.rebind(`INSERT INTO memstore_outbox (ns, key, version, token, created_ms) VALUES (?, ?, ?, ?, ?)`),
		pending:   d.rebind(`SELECT id, key, version, token, created_ms FROM memstore_outbox WHERE ns = ? AND created_ms <= ? ORDER BY id LIMIT ?`),
		delOutbox: d.rebind(`DELETE FROM memstore_outbox WHERE ns = ? AND id = ? AND token = ?`),
	}
	if dialect == Postgres {
		const outbox = `
INSERT INTO memstore_outbox (ns, key, version, token, created_ms)
SELECT ns, key, version, $TOKEN, updated_at FROM w
RETURNING version`
		pg := func(q string, token int) string {
			return "WITH w AS (" + strings.Replace(d.rebind(q), "RETURNING version", "RETURNING ns, key, version, updated_at", 1) + ")" +
				strings.Replace(outbox, "$TOKEN", "$"+strconv.Itoa(token), 1)
		}
		d.q.pgUpsert = pg(`INSERT INTO memstore_entries (ns, key, value, format, version, ttl_ms, tombstone, updated_at)
VALUES (?, ?, ?, ?, 1, ?, ?, ?)
ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, format = excluded.format,
  version = memstore_entries.version + 1, ttl_ms = excluded.ttl_ms, tombstone = excluded.tombstone,
  updated_at = excluded.updated_at
RETURNING version`, 8)
		d.q.pgCasInsert = pg(`INSERT INTO memstore_entries (ns, key, value, format, version, ttl_ms, tombstone, updated_at)
VALUES (?, ?, ?, ?, 1, ?, ?, ?)
ON CONFLICT (ns, key) DO NOTHING
RETURNING version`, 8)
		d.q.pgCas = pg(`UPDATE memstore_entries SET value = ?, format = ?, version = version + 1, ttl_ms = ?,
  tombstone = ?, updated_at = ?
WHERE ns = ? AND key = ? AND version = ?
RETURNING version`, 9)
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
  PRIMARY KEY (ns, key))`,
		`CREATE TABLE IF NOT EXISTS memstore_outbox (
  id ` + id + `,
  ns TEXT NOT NULL,
  key TEXT NOT NULL,
  version BIGINT NOT NULL,
  token TEXT NOT NULL,
  created_ms BIGINT NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS memstore_outbox_age ON memstore_outbox (ns, created_ms)`,
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
	err := d.db.QueryRowContext(ctx, d.q.load, d.ns, key).Scan(&r.Value, &fmtv, &ver, &ttl, &r.Tombstone)
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

// Apply runs writes in one transaction and returns each row's new version.
// A compare-and-set whose version does not match fails the whole
// transaction with ErrConflict. An error from the commit itself wraps
// ErrCommitUnknown; every other error means nothing was written.
func (d *DB) Apply(ctx context.Context, writes []Write) ([]uint64, error) {
	if d.dialect == Postgres && len(writes) == 1 {
		return d.applyOne(ctx, writes[0])
	}
	unlock, err := d.lockWrites(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	now := time.Now().UnixMilli()
	versions := make([]uint64, len(writes))
	for i, w := range writes {
		value := w.Value
		if value == nil {
			value = []byte{}
		}
		ttl := w.TTL.Milliseconds()
		var ver int64
		switch {
		case w.Expect == nil:
			err = tx.QueryRowContext(ctx, d.q.upsert, d.ns, w.Key, value, int64(w.Format), ttl, w.Delete, now).Scan(&ver)
		case *w.Expect == 0:
			err = tx.QueryRowContext(ctx, d.q.casInsert, d.ns, w.Key, value, int64(w.Format), ttl, w.Delete, now).Scan(&ver)
		default:
			err = tx.QueryRowContext(ctx, d.q.cas, value, int64(w.Format), ttl, w.Delete, now, d.ns, w.Key, int64(*w.Expect)).Scan(&ver)
		}
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrConflict
		}
		if err != nil {
			return nil, err
		}
		versions[i] = uint64(ver)
		if _, err := tx.ExecContext(ctx, d.q.outbox, d.ns, w.Key, ver, w.Token, now); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, errors.Join(ErrCommitUnknown, err)
	}
	return versions, nil
}

// applyOne writes one row and its outbox row in one PostgreSQL statement,
// atomic on its own. Without an explicit transaction a failure is ambiguous
// unless the server rejected the statement or it was never sent; every
// other error wraps ErrCommitUnknown.
func (d *DB) applyOne(ctx context.Context, w Write) ([]uint64, error) {
	value := w.Value
	if value == nil {
		value = []byte{}
	}
	now, ttl := time.Now().UnixMilli(), w.TTL.Milliseconds()
	var ver int64
	var err error
	switch {
	case w.Expect == nil:
		err = d.db.QueryRowContext(ctx, d.q.pgUpsert, d.ns, w.Key, value, int64(w.Format), ttl, w.Delete, now, w.Token).Scan(&ver)
	case *w.Expect == 0:
		err = d.db.QueryRowContext(ctx, d.q.pgCasInsert, d.ns, w.Key, value, int64(w.Format), ttl, w.Delete, now, w.Token).Scan(&ver)
	default:
		err = d.db.QueryRowContext(ctx, d.q.pgCas, value, int64(w.Format), ttl, w.Delete, now, d.ns, w.Key, int64(*w.Expect), w.Token).Scan(&ver)
	}
	switch {
	case err == nil:
		return []uint64{uint64(ver)}, nil
	case errors.Is(err, sql.ErrNoRows):
		return nil, ErrConflict
	case notApplied(err):
		return nil, err
	}
	return nil, errors.Join(ErrCommitUnknown, err)
}

// notApplied reports whether a failed autocommit statement certainly did
// nothing: the server answered with an error (pgx's PgError has SQLState),
// or the driver says nothing was sent (pgconn's SafeToRetry). Interfaces,
// not imports, keep pgx out of SQLite users' builds.
func notApplied(err error) bool {
	var server interface{ SQLState() string }
	if errors.As(err, &server) {
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

// OutboxLen counts the namespace's outbox rows (for tests and stats).
func (d *DB) OutboxLen(ctx context.Context) (int, error) {
	var n int
	err := d.db.QueryRowContext(ctx, d.rebind(`SELECT COUNT(*) FROM memstore_outbox WHERE ns = ?`), d.ns).Scan(&n)
	return n, err
}
