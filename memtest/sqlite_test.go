package memtest_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/memstore/memstore/memtest"
)

func TestSQLiteIsolation(t *testing.T) {
	meet := newBarrier(2)
	for _, name := range []string{"a", "b"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			db := memtest.SQLite(t)
			ctx := t.Context()
			if _, err := db.ExecContext(ctx, "CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)"); err != nil {
				t.Fatal(err)
			}
			if _, err := db.ExecContext(ctx, "INSERT INTO kv VALUES ('same-key', ?)", name); err != nil {
				t.Fatal(err)
			}
			meet.wait(t)
			var got []string
			rows, err := db.QueryContext(ctx, "SELECT v FROM kv")
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			for rows.Next() {
				var v string
				if err := rows.Scan(&v); err != nil {
					t.Fatal(err)
				}
				got = append(got, v)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, ",") != name {
				t.Errorf("rows = %v, want [%s]", got, name)
			}
		})
	}
}

// The pragmas are in the DSN, so every connection of the pool has them, not
// only the first one.
func TestSQLitePragmasOnEveryConnection(t *testing.T) {
	t.Parallel()
	db := memtest.SQLite(t)
	ctx := t.Context()
	for i := range 3 {
		conn, err := db.Conn(ctx) // held, so the next one is a new connection
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		for pragma, want := range map[string]string{"journal_mode": "wal", "busy_timeout": "5000", "foreign_keys": "1"} {
			var got string
			if err := conn.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("connection %d: PRAGMA %s = %s, want %s", i, pragma, got, want)
			}
		}
	}
}

func TestOpenSQLiteOddPath(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "a dir?#%", "x.db")
	if err := mkdirAll(filepath.Dir(path)); err != nil {
		t.Fatal(err)
	}
	db, err := memtest.OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE t (x)"); err != nil {
		t.Fatal(err)
	}
	if !exists(path) {
		t.Errorf("no database file at %s", path)
	}
}
