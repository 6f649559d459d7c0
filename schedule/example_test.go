package schedule_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/redis/go-redis/v9"

	"github.com/memstore/memstore/memtest"
	"github.com/memstore/memstore/schedule"
	"github.com/memstore/memstore/strategies"
)

// Explore a store through its hooks: here plain cache-aside, which a reader
// and a writer break in one schedule of ten. The failing schedule prints
// step by step, with what cache and DB hold after each step that changed
// them.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "schedule-example")
	defer os.RemoveAll(dir)
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

	res, err := schedule.Explore(ctx, schedule.Config{
		Factory:  strategies.WriteDBDeleteCache(), // any Factory whose stores call Config.Hook
		Redis:    rdb,
		DB:       db,
		Scenario: schedule.ReaderWriter(),
		Migrate:  true,
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d schedules, every one: %v, failing: %d\n", res.Schedules, res.Exhaustive, len(res.Failures))
	fmt.Print(res.Failures[0])
	// Output:
	// 10 schedules, every one: true, failing: 1
	// (initially)                             = cache -          db "v0"
	// reader    call   Get
	// reader    before redis.get
	// reader    after  redis.get (miss)
	// reader    before db.load
	// reader    after  db.load
	// writer    call   Set("w1")
	// writer    before db.write               → cache -          db "w1"
	// writer    after  db.write
	// writer    before redis.del
	// writer    after  redis.del
	// writer    return ok
	// reader    before redis.set              → cache "v0"       db "w1"
	// reader    after  redis.set
	// reader    return "v0"
	// observer  call   Get
	// observer  return "v0"
	// observer  evict                         → cache -          db "w1"
	// observer  call   Get
	// observer  return "w1"                   → cache "w1"       db "w1"
	// violation: stale read: the observer's Get returned "v0", but writer's Set("w1") had returned before that read began; stale cache entry: after every call returned, the cache holds "v0" and the DB "w1"
	// replay: [0 0 1 1]
}
