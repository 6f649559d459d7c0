package memtest_test

import (
	"context"
	"testing"

	"github.com/memstore/memstore/memtest"
)

// BenchmarkRedisFixture is the cost a test pays for its own redis-server:
// start, first command, stop. (memtest.Redis adds only t.TempDir.)
func BenchmarkRedisFixture(b *testing.B) {
	ctx := context.Background()
	for b.Loop() {
		s, err := memtest.StartRedis(ctx, "", nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Client().Set(ctx, "k", "v", 0).Err(); err != nil {
			b.Fatal(err)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPostgresFixture is the cost a test pays for its own database on
// the binary's cluster (started once, outside the timing): create from the
// template, connect, one statement, drop.
func BenchmarkPostgresFixture(b *testing.B) {
	c, err := memtest.BinaryCluster()
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for b.Loop() {
		db, err := c.CreateDB(ctx, b.Name())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := db.DB().ExecContext(ctx, "CREATE TABLE t (i int)"); err != nil {
			b.Fatal(err)
		}
		if err := db.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPostgresCluster is the cost a test binary pays once for its
// cluster: data directory (copied from the initdb cache after the first
// run), server start, template database, shutdown.
func BenchmarkPostgresCluster(b *testing.B) {
	ctx := context.Background()
	for b.Loop() {
		c, err := memtest.StartPostgres(ctx, "")
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
