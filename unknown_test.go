package memstore_test

import (
	"context"
	"database/sql/driver"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/memstore/memstore"
	"github.com/memstore/memstore/fault"
	"github.com/memstore/memstore/memtest"
)

// A write whose commit answer was lost keeps its intents: the commit may
// land after the call returned, and a reader that filled the old row
// before it would serve it after. So reads go to the database, and fill
// nothing, until the reconciler has ended the write from its row.
func TestUnknownCommitKeepsIntents(t *testing.T) {
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var conn driver.Connector
			var err error
			if name == "sqlite" {
				conn, err = fault.SQLiteConnector(memtest.SQLiteDSN(filepath.Join(t.TempDir(), "x.db")))
			} else {
				conn, err = fault.PostgresConnector(memtest.Postgres(t).DSN())
			}
			if err != nil {
				t.Fatal(err)
			}
			sf := fault.NewSQLFaults(conn)
			t.Cleanup(func() { sf.Close() })
			e := &env{t: t, redis: memtest.RedisWith(t, &memtest.RedisOptions{Private: true}), db: sf.DB()}
			e.rdb = e.client()
			ctx := context.Background()
			s := store[string](e, nil)
			in := map[string]string{"a": "old", "b": "old"}
			if err := s.SetMany(ctx, in); err != nil {
				t.Fatal(err)
			}
			mustSync(t, s)
			lost := fault.DBFailCommits(sf) // commits apply, their answers are lost
			if err := lost.Inject(ctx); err != nil {
				t.Fatal(err)
			}
			err = s.SetMany(ctx, map[string]string{"a": "new", "b": "new"})
			if herr := lost.Heal(ctx); herr != nil {
				t.Fatal(herr)
			}
			if !errors.Is(err, memstore.ErrOutcomeUnknown) {
				t.Fatalf("SetMany with its commit's answer lost: %v, want ErrOutcomeUnknown", err)
			}
			mustSync(t, s)
			for range 2 {
				mustGet(t, s, "a", "new")
			}
			if _, ok := cached(t, e, s, "a"); ok {
				t.Fatal("a read filled the cache while the write's outcome was unknown")
			}
			time.Sleep(10 * time.Millisecond) // older than ReconcileAge below
			r := store(e, &memstore.Options[string]{Namespace: s.Namespace(), DisableReconciler: true, ReconcileAge: time.Millisecond})
			if _, err := r.Reconcile(ctx); err != nil {
				t.Fatal(err)
			}
			mustGet(t, s, "a", "new")
			if _, ok := cached(t, e, s, "a"); !ok {
				t.Fatal("once the reconciler ended the write, a read did not fill")
			}
		})
	}
}
