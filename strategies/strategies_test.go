package strategies_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/memstore/memstore"
	"github.com/memstore/memstore/internal/rediscache"
	"github.com/memstore/memstore/memtest"
	"github.com/memstore/memstore/strategies"
)

func TestMain(m *testing.M) { os.Exit(memtest.Main(m)) }

// Every store, good or bad, keeps the single-client contract: what one
// client writes it reads back, deletes are seen, and Inspect agrees.
func TestSequentialContract(t *testing.T) {
	for _, f := range append(strategies.All(), strategies.DBOnly()) {
		t.Run(f.Name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			rs := memtest.Redis(t)
			s, err := f.New(ctx, strategies.Config{Redis: rs.Client(), DB: memtest.SQLite(t), Namespace: "t", Migrate: true})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if _, err := s.Get(ctx, "k"); !errors.Is(err, memstore.ErrNotFound) {
				t.Fatalf("Get of a new key: %v, want ErrNotFound", err)
			}
			for _, v := range []string{"a", "b", ""} {
				if err := s.Set(ctx, "k", v); err != nil {
					t.Fatal(err)
				}
				for range 2 {
					got, err := s.Get(ctx, "k")
					if err != nil || got != v {
						t.Fatalf("Get = %q, %v; want %q", got, err, v)
					}
				}
				snap, err := s.Inspect(ctx, "k")
				if err != nil || !snap.DBFound || snap.DBValue != v {
					t.Fatalf("Inspect = %+v, %v; want the DB to hold %q", snap, err, v)
				}
				if snap.Cached && (!snap.CacheFound || snap.CacheValue != v) {
					t.Fatalf("Inspect = %+v: the cache disagrees with the DB", snap)
				}
			}
			if err := s.Delete(ctx, "k"); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Get(ctx, "k"); !errors.Is(err, memstore.ErrNotFound) {
				t.Fatalf("Get after Delete: %v, want ErrNotFound", err)
			}
		})
	}
}

func TestLookup(t *testing.T) {
	if _, err := strategies.Lookup("nope"); err == nil {
		t.Fatal("Lookup of an unknown name succeeded")
	}
	f, err := strategies.Lookup("double-delete")
	if err != nil || f.ExpectPass {
		t.Fatalf("Lookup(double-delete) = %+v, %v", f.Name, err)
	}
}

// Every store keeps memstore's namespace rule (issue 17): a namespace with a
// brace could share Redis keys with another, so it is refused.
func TestNamespaceWithBraceRefused(t *testing.T) {
	rs := memtest.Redis(t)
	db := memtest.SQLite(t)
	for _, f := range strategies.All() {
		t.Run(f.Name, func(t *testing.T) {
			s, err := f.New(context.Background(), strategies.Config{Redis: rs.Client(), DB: db, Namespace: "a:{b}", Migrate: true})
			if err == nil {
				s.Close()
				t.Fatal("New accepted namespace a:{b}")
			}
			if !errors.Is(err, rediscache.ErrNamespace) {
				t.Fatalf("New: %v, want the namespace rule's error", err)
			}
		})
	}
}
