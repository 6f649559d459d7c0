package memstore_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/redis/go-redis/v9"

	"github.com/memstore/memstore"
	"github.com/memstore/memstore/memtest"
)

type Prefs struct {
	Theme    string
	FontSize int
}

func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "memstore-example")
	defer os.RemoveAll(dir)

	// A private redis-server and a SQLite file stand in for the ones your
	// service already has.
	rs, err := memtest.StartRedis(ctx, dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer rs.Close()
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr(), ContextTimeoutEnabled: true})
	defer rdb.Close()
	db, err := memtest.OpenSQLite(filepath.Join(dir, "app.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	prefs, err := memstore.New(rdb, db, &memstore.Options[Prefs]{Namespace: "prefs", AutoMigrate: true})
	if err != nil {
		log.Fatal(err)
	}
	defer prefs.Close()

	if err := prefs.Set(ctx, "user:42", Prefs{Theme: "dark", FontSize: 14}); err != nil {
		log.Fatal(err)
	}
	// Set returns once the row is committed; clearing its intent, which
	// lets reads fill the cache again, follows in the background. Sync
	// waits for that, so the reads below fill and hit deterministically.
	_ = prefs.Sync(ctx)
	p, err := prefs.Get(ctx, "user:42") // a miss: loaded from SQLite, cached under a lease
	fmt.Println(p, err)
	p, _ = prefs.Get(ctx, "user:42") // a hit: one Redis round trip
	fmt.Println(p)

	_ = prefs.Delete(ctx, "user:42")
	_, err = prefs.Get(ctx, "user:42")
	fmt.Println(errors.Is(err, memstore.ErrNotFound))

	st := prefs.Stats()
	fmt.Println("hits:", st.Hits, "DB loads:", st.DBLoads)
	// Output:
	// {dark 14} <nil>
	// {dark 14}
	// true
	// hits: 1 DB loads: 2
}
