package memtest_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/memstore/memstore/memtest"
)

// Outside tests (a command, a benchmark harness), StartRedis starts a private
// redis-server; Close kills it. In a test, memtest.Redis(t) does both.
func ExampleStartRedis() {
	ctx := context.Background()
	s, err := memtest.StartRedis(ctx, "", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	s.Client().Set(ctx, "greeting", "hello", 0)
	fmt.Println(s.Client().Get(ctx, "greeting").Val())
	// Output: hello
}

func ExampleOpenSQLite() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)

	db, err := memtest.OpenSQLite(filepath.Join(dir, "app.db"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()

	var mode string
	db.QueryRow("PRAGMA journal_mode").Scan(&mode)
	fmt.Println(mode)
	// Output: wal
}

// A private Redis Cluster of three masters and three replicas, outside
// tests; its client is a *redis.ClusterClient. In a test, memtest.Cluster(t)
// gives a prefix on a shared one, and memtest.ClusterWith a cluster of the
// test's own.
func ExampleStartCluster() {
	ctx := context.Background()
	c, err := memtest.StartCluster(ctx, "", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	c.Client().Set(ctx, "{user:1}:name", "Ada", 0)
	fmt.Println(c.Client().Get(ctx, "{user:1}:name").Val(), "on one of", c.Shards(), "shards")
	// Output: Ada on one of 3 shards
}
