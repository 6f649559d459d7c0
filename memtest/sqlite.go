package memtest

import (
	"database/sql"
	"fmt"
	"net/url"
	"path/filepath"
	"testing"

	_ "modernc.org/sqlite" // registers the pure-Go driver "sqlite"
)

// SQLiteDSN is the data source name OpenSQLite uses for the database file at
// path, for the "sqlite" driver (modernc.org/sqlite). Its pragmas are in the
// DSN so that every connection of a pool gets them, not only the first:
//
//   - journal_mode(WAL): readers do not block the writer, nor it them;
//   - busy_timeout(5000): a connection waits up to 5 s for a lock instead of
//     failing at once with SQLITE_BUSY;
//   - foreign_keys(1): constraints are enforced;
//   - _txlock=immediate: transactions take the write lock at BEGIN. A
//     deferred transaction that reads, then writes, fails with SQLITE_BUSY
//     at once when another connection wrote in between, whatever the busy
//     timeout; an immediate one waits its turn instead.
func SQLiteDSN(path string) string {
	u := url.URL{Path: path}
	return "file:" + u.EscapedPath() +
		"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)&_txlock=immediate"
}

// OpenSQLite opens (creating it if needed) the SQLite database file at path
// with the settings of SQLiteDSN, and checks that it answers.
func OpenSQLite(path string) (*sql.DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", SQLiteDSN(abs))
	if err != nil {
		return nil, err
	}
	var mode string
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
		db.Close()
		return nil, fmt.Errorf("open SQLite %s: %w", abs, err)
	}
	if mode != "wal" {
		db.Close()
		return nil, fmt.Errorf("open SQLite %s: journal mode is %q, want wal", abs, mode)
	}
	return db, nil
}

// SQLite returns a fresh SQLite database in a file of t.TempDir() (never
// :memory:, whose every connection would be a different database), opened
// with OpenSQLite and closed when the test ends.
func SQLite(t testing.TB) *sql.DB {
	t.Helper()
	db, err := OpenSQLite(filepath.Join(t.TempDir(), "memtest.db"))
	if err != nil {
		t.Fatalf("memtest: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("memtest: close SQLite: %v", err)
		}
	})
	return db
}
