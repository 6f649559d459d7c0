package fault_test

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/memstore/memstore/fault"
	"github.com/memstore/memstore/internal/sqlstore"
	"github.com/memstore/memstore/memtest"
)

// backend is one database to run the SQL faults against: a faulty pool and
// a plain one on the same database, to look behind the faults.
type backend struct {
	sf    *fault.SQLFaults
	plain *sql.DB
	pg    bool
}

// q writes a query with ? placeholders in the backend's style, as the
// store does.
func (b backend) q(query string) string {
	d := sqlstore.SQLite
	if b.pg {
		d = sqlstore.Postgres
	}
	return sqlstore.Rebind(d, query)
}

func backends() []string { return []string{"sqlite", "postgres"} }

func newBackend(t *testing.T, name string) backend {
	t.Helper()
	var (
		b    backend
		conn driver.Connector
		err  error
	)
	switch name {
	case "sqlite":
		path := filepath.Join(t.TempDir(), "fault.db")
		if b.plain, err = memtest.OpenSQLite(path); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.plain.Close() })
		conn, err = fault.SQLiteConnector(memtest.SQLiteDSN(path))
	case "postgres":
		pg := memtest.Postgres(t)
		b.plain, b.pg = pg.DB(), true
		conn, err = fault.PostgresConnector(pg.DSN())
	}
	if err != nil {
		t.Fatal(err)
	}
	b.sf = newSQLFaults(t, conn)
	blob := "BLOB"
	if b.pg {
		blob = "BYTEA"
	}
	mustExec(t, b.sf.DB(), "CREATE TABLE t (id BIGINT PRIMARY KEY, b "+blob+", flag BOOLEAN, n BIGINT, s TEXT)")
	return b
}

func mustExec(t testing.TB, db *sql.DB, query string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(t.Context(), query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func rows(t testing.TB, b backend) int {
	t.Helper()
	var n int
	if err := b.plain.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM t").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Healthy, the wrapped driver must behave as the driver: same values back
// for every type the stores write, through plain statements, prepared
// statements and transactions, and the same dialect detected.
func TestSQLFaultsTransparent(t *testing.T) {
	t.Parallel()
	for _, name := range backends() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := newBackend(t, name)
			ctx := t.Context()
			db := b.sf.DB()
			if got, want := sqlstore.Detect(db), sqlstore.Detect(b.plain); got != want || got == sqlstore.Unknown {
				t.Errorf("dialect through the wrapper = %v, want %v", got, want)
			}

			type row struct {
				b    []byte
				flag bool
				n    int64
				s    string
			}
			want := []row{
				{[]byte{0, 1, 2, 0xff}, true, 1<<62 + 1, "héllo, 世界"},
				{[]byte{}, false, -1 << 63, ""},
			}
			insert := b.q("INSERT INTO t (id, b, flag, n, s) VALUES (?, ?, ?, ?, ?)")
			if _, err := db.ExecContext(ctx, insert, 1, want[0].b, want[0].flag, want[0].n, want[0].s); err != nil {
				t.Fatal(err)
			}
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			st, err := tx.PrepareContext(ctx, insert)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.ExecContext(ctx, 2, want[1].b, want[1].flag, want[1].n, want[1].s); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}

			for _, via := range []struct {
				name string
				db   *sql.DB
			}{{"wrapped", db}, {"plain", b.plain}} {
				for i, w := range want {
					var got row
					err := via.db.QueryRowContext(ctx, b.q("SELECT b, flag, n, s FROM t WHERE id = ?"), i+1).Scan(&got.b, &got.flag, &got.n, &got.s)
					if err != nil {
						t.Fatalf("%s: row %d: %v", via.name, i+1, err)
					}
					if !bytes.Equal(got.b, w.b) || got.flag != w.flag || got.n != w.n || got.s != w.s {
						t.Errorf("%s: row %d = %+v, want %+v", via.name, i+1, got, w)
					}
				}
			}

			// pgx accepts arguments that database/sql's default checks
			// refuse, through its NamedValueChecker; the wrapper must pass
			// that on, and refuse what the driver refuses.
			query := "SELECT ?"
			if b.pg {
				query = "SELECT $1::int8[]"
			}
			_, wrapErr := db.ExecContext(ctx, query, []int64{1, 2})
			_, plainErr := b.plain.ExecContext(ctx, query, []int64{1, 2})
			if (wrapErr == nil) != (plainErr == nil) {
				t.Errorf("[]int64 argument: wrapped error %v, plain error %v", wrapErr, plainErr)
			}
			if b.pg && wrapErr != nil {
				t.Errorf("[]int64 argument to pgx: %v", wrapErr)
			}
		})
	}
}

func TestDBFail(t *testing.T) {
	t.Parallel()
	for _, name := range backends() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := newBackend(t, name)
			ctx := t.Context()
			db := b.sf.DB()
			insert := b.q("INSERT INTO t (id) VALUES (?)")
			st, err := db.PrepareContext(ctx, insert)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			open, err := db.BeginTx(ctx, nil) // a transaction that straddles the fault
			if err != nil {
				t.Fatal(err)
			}
			if _, err := open.ExecContext(ctx, insert, 1); err != nil {
				t.Fatal(err)
			}

			n := fault.DBFail(b.sf)
			inject(t, n)
			var x int
			for what, err := range map[string]error{
				"Exec":              func() error { _, err := db.ExecContext(ctx, insert, 2); return err }(),
				"Query":             db.QueryRowContext(ctx, "SELECT 1").Scan(&x),
				"Begin":             func() error { _, err := db.BeginTx(ctx, nil); return err }(),
				"Prepare":           func() error { _, err := db.PrepareContext(ctx, "SELECT 1"); return err }(),
				"prepared Exec":     func() error { _, err := st.ExecContext(ctx, 3); return err }(),
				"Ping":              db.PingContext(ctx),
				"Exec in open tx":   func() error { _, err := open.ExecContext(ctx, insert, 4); return err }(),
				"Commit of open tx": open.Commit(),
			} {
				if !errors.Is(err, fault.ErrDBUnreachable) {
					t.Errorf("%s under DBFail: %v, want ErrDBUnreachable", what, err)
				}
			}
			heal(t, n)
			if got := rows(t, b); got != 0 {
				t.Errorf("%d rows after DBFail, want 0: a failed write was applied", got)
			}
			if _, err := st.ExecContext(ctx, 5); err != nil {
				t.Errorf("prepared Exec after Heal: %v", err)
			}
			if _, err := db.ExecContext(ctx, insert, 6); err != nil {
				t.Errorf("Exec after Heal: %v", err)
			}
			if got := rows(t, b); got != 2 {
				t.Errorf("%d rows after Heal, want 2", got)
			}
		})
	}
}

// New connections fail too, not only the pool's open ones.
func TestDBFailConnect(t *testing.T) {
	t.Parallel()
	conn, err := fault.SQLiteConnector(memtest.SQLiteDSN(filepath.Join(t.TempDir(), "x.db")))
	if err != nil {
		t.Fatal(err)
	}
	sf := newSQLFaults(t, conn)
	n := fault.DBFail(sf)
	inject(t, n)
	if err := sf.DB().PingContext(t.Context()); !errors.Is(err, fault.ErrDBUnreachable) {
		t.Errorf("Ping with no connection open: %v, want ErrDBUnreachable", err)
	}
	if got := sf.DB().Stats().OpenConnections; got != 0 {
		t.Errorf("%d connections open, want 0", got)
	}
	heal(t, n)
	if err := sf.DB().PingContext(t.Context()); err != nil {
		t.Errorf("Ping after Heal: %v", err)
	}
}

func TestDBFailCommits(t *testing.T) {
	t.Parallel()
	for _, name := range backends() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := newBackend(t, name)
			ctx := t.Context()
			db := b.sf.DB()
			insert := b.q("INSERT INTO t (id) VALUES (?)")

			n := fault.DBFailCommits(b.sf)
			inject(t, n)
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.ExecContext(ctx, insert, 1); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(); !errors.Is(err, fault.ErrCommitLost) {
				t.Fatalf("Commit: %v, want ErrCommitLost", err)
			}
			if got := rows(t, b); got != 1 {
				t.Fatalf("%d rows after a lost commit, want 1: the commit must be applied", got)
			}
			heal(t, n)
			tx, err = db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.ExecContext(ctx, insert, 2); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				t.Errorf("Commit after Heal: %v", err)
			}
		})
	}
}

func TestDBLatency(t *testing.T) {
	t.Parallel()
	for _, name := range backends() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := newBackend(t, name)
			db := b.sf.DB()
			insert := b.q("INSERT INTO t (id) VALUES (?)")

			const latency = 50 * time.Millisecond
			slow := fault.DBLatency(b.sf, latency)
			inject(t, slow)
			start := time.Now()
			if _, err := db.ExecContext(t.Context(), insert, 1); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d < latency {
				t.Errorf("Exec under %v latency took %v", latency, d)
			}
			heal(t, slow)

			// A wait far longer than the test ends with the caller's context.
			txCtx, txCancel := context.WithCancel(t.Context())
			defer txCancel()
			tx, err := db.BeginTx(txCtx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.ExecContext(txCtx, insert, 2); err != nil {
				t.Fatal(err)
			}
			stuck := fault.DBLatency(b.sf, time.Hour)
			inject(t, stuck)
			var x int
			for what, op := range map[string]func(context.Context) error{
				"Exec":       func(ctx context.Context) error { _, err := db.ExecContext(ctx, insert, 3); return err },
				"Query":      func(ctx context.Context) error { return db.QueryRowContext(ctx, "SELECT 1").Scan(&x) },
				"Exec in tx": func(ctx context.Context) error { _, err := tx.ExecContext(ctx, insert, 4); return err },
			} {
				ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
				if err := op(ctx); !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("%s under 1h latency with a 50ms deadline: %v, want DeadlineExceeded", what, err)
				}
				cancel()
			}
			// The transaction's context ends while its commit waits: the
			// commit must not happen.
			time.AfterFunc(50*time.Millisecond, txCancel)
			if err := tx.Commit(); !errors.Is(err, context.Canceled) {
				t.Errorf("Commit whose context ended under 1h latency: %v, want Canceled", err)
			}
			heal(t, stuck)
			if got := rows(t, b); got != 1 {
				t.Errorf("%d rows, want 1: only the first insert may be applied", got)
			}
		})
	}
}

func newSQLFaults(t testing.TB, conn driver.Connector) *fault.SQLFaults {
	t.Helper()
	sf := fault.NewSQLFaults(conn)
	t.Cleanup(func() {
		if err := sf.Close(); err != nil {
			t.Error(err)
		}
	})
	return sf
}
