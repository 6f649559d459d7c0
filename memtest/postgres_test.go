package memtest_test

import (
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/memstore/memstore/memtest"
)

func TestPostgresIsolation(t *testing.T) {
	meet := newBarrier(2)
	var mu sync.Mutex
	names := map[string]bool{}
	for _, name := range []string{"a", "b"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			pg := memtest.Postgres(t)
			mu.Lock()
			names[pg.Name()] = true
			mu.Unlock()
			db, ctx := pg.DB(), t.Context()
			// The same table in both tests: each database is fresh.
			if _, err := db.ExecContext(ctx, "CREATE TABLE kv (k text PRIMARY KEY, v text)"); err != nil {
				t.Fatal(err)
			}
			if _, err := db.ExecContext(ctx, "INSERT INTO kv VALUES ('same-key', $1)", name); err != nil {
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
	t.Cleanup(func() { // after the parallel subtests
		if len(names) != 2 {
			t.Errorf("databases %v, want two different ones", names)
		}
	})
}

func TestPostgresFreshAndDropped(t *testing.T) {
	t.Parallel()
	var name string
	t.Run("fixture", func(t *testing.T) {
		pg := memtest.Postgres(t)
		name = pg.Name()
		var tables int
		if err := pg.DB().QueryRowContext(t.Context(),
			"SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')").Scan(&tables); err != nil {
			t.Fatal(err)
		}
		if tables != 0 {
			t.Errorf("a fresh database has %d tables", tables)
		}
		var current string
		if err := pg.DB().QueryRowContext(t.Context(), "SELECT current_database()").Scan(&current); err != nil {
			t.Fatal(err)
		}
		if current != name {
			t.Errorf("connected to %q, want %q", current, name)
		}
		// A connection left open must not stop the drop.
		if _, err := pg.DB().ExecContext(t.Context(), "CREATE TABLE x (i int)"); err != nil {
			t.Fatal(err)
		}
	})
	other := memtest.Postgres(t)
	var n int
	if err := other.DB().QueryRowContext(t.Context(), "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("database %s still exists after its test", name)
	}
}

func TestPostgresSettings(t *testing.T) {
	t.Parallel()
	if os.Getenv(memtest.EnvPostgresURL) != "" {
		t.Log("settings are the shared server's own; checking the encoding only")
	}
	pg := memtest.Postgres(t)
	want := map[string]string{"server_encoding": "UTF8"}
	if os.Getenv(memtest.EnvPostgresURL) == "" {
		want["fsync"] = "off"
		want["synchronous_commit"] = "off"
		want["full_page_writes"] = "off"
		want["listen_addresses"] = ""
	}
	for name, w := range want {
		var got string
		if err := pg.DB().QueryRowContext(t.Context(), "SELECT current_setting($1)", name).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != w {
			t.Errorf("%s = %q, want %q", name, got, w)
		}
	}
}
