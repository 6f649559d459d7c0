package storetest_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"

	"github.com/memstore/memstore"
	"github.com/memstore/memstore/storetest"
)

// kvStore is a store written outside the memstore packages: it keeps every
// value in the database and caches nothing. Its SQL uses $n placeholders,
// which SQLite and PostgreSQL both accept, so it runs on both halves of
// the suite. Slow, but linearizable, so it
// passes the suite. It reports its DB reads to the suite's hook, which is
// how the stampede subtest counts them.
type kvStore struct {
	db   *sql.DB
	ns   string
	hook memstore.Hook
}

func newKVStore(ctx context.Context, env storetest.Env) (storetest.Store, error) {
	if env.Migrate {
		blob := "BLOB"
		if env.Dialect == "postgres" {
			blob = "BYTEA"
		}
		if _, err := env.DB.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS example_kv (
  ns TEXT NOT NULL, k TEXT NOT NULL, v `+blob+` NOT NULL, PRIMARY KEY (ns, k))`); err != nil {
			return nil, err
		}
	}
	return &kvStore{db: env.DB, ns: env.Namespace, hook: env.Hook}, nil
}

var errEmptyKey = fmt.Errorf("%w: empty key", memstore.ErrInvalidKey)

func (s *kvStore) Get(ctx context.Context, key string) (string, error) {
	if key == "" {
		return "", errEmptyKey
	}
	if s.hook != nil {
		_ = s.hook(ctx, memstore.HookEvent{Step: memstore.StepDBLoad, Phase: memstore.Before, Key: key})
	}
	var v []byte
	err := s.db.QueryRowContext(ctx, `SELECT v FROM example_kv WHERE ns = $1 AND k = $2`, s.ns, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", memstore.ErrNotFound
	}
	return string(v), err
}

func (s *kvStore) Set(ctx context.Context, key, value string) error {
	if key == "" {
		return errEmptyKey
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO example_kv (ns, k, v) VALUES ($1, $2, $3)
ON CONFLICT (ns, k) DO UPDATE SET v = excluded.v`, s.ns, key, []byte(value))
	return err
}

func (s *kvStore) Delete(ctx context.Context, key string) error {
	if key == "" {
		return errEmptyKey
	}
	_, err := s.db.ExecContext(ctx, `DELETE FROM example_kv WHERE ns = $1 AND k = $2`, s.ns, key)
	return err
}

// The whole harness: a name and a constructor.
var kvHarness = storetest.Harness{Name: "example-kv", New: newKVStore}

// TestKVStoreConformance is what a store author adds to their own tests:
// the suite starts a redis-server and a database, and runs every subtest,
// with each fault in turn.
func TestKVStoreConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, kvHarness)
}

// Check runs the same suite outside a test (from a command, say) and
// returns every problem at once.
func ExampleCheck() {
	h := kvHarness
	h.Faults = []string{"none"} // the quick way: no fault subtests
	if err := storetest.Check(context.Background(), h); err != nil {
		fmt.Println("problems:", err)
		return
	}
	fmt.Println("example-kv conforms")
	// Output: example-kv conforms
}
