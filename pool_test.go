package memstore_test

import (
	"bytes"
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/memstore/memstore"
)

// A pool that keeps no idle connections reconnects for every statement:
// the store says so in its log. The same load on a pool that keeps its
// connections logs nothing.
func TestPoolChurnWarned(t *testing.T) {
	const warning = "the database pool closes idle connections"
	for _, c := range []struct {
		name string
		idle int
		warn bool
	}{{"no-idle", -1, true}, {"idle-32", 32, false}} {
		t.Run(c.name, func(t *testing.T) {
			eachDB(t, func(t *testing.T, e *env) {
				e.db.SetMaxIdleConns(c.idle)
				logs := &lockedWriter{w: &bytes.Buffer{}}
				s := store(e, &memstore.Options[string]{
					Logger:            slog.New(slog.NewTextHandler(logs, nil)),
					ReconcileInterval: 20 * time.Millisecond,
				})
				ctx := context.Background()
				deadline := time.Now().Add(time.Second)
				for i := 0; time.Now().Before(deadline); i++ {
					k := "k" + strconv.Itoa(i%8)
					mustSet(t, s, k, "v"+strconv.Itoa(i))
					if _, err := s.Get(ctx, k); err != nil {
						t.Fatal(err)
					}
				}
				time.Sleep(100 * time.Millisecond) // a tick after the load
				if got := strings.Contains(logs.String(), warning); got != c.warn {
					t.Fatalf("pool with SetMaxIdleConns(%d): warned %v, want %v; log:\n%s", c.idle, got, c.warn, logs.String())
				}
			})
		})
	}
}
