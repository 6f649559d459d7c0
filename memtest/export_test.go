package memtest

import (
	"context"
	"os/exec"
)

// Internals that the external tests (package memtest_test) check.
var (
	BinaryCluster       = binaryCluster
	RemoveStaleClusters = removeStaleClusters

	RemoveStaleRedisClusters = removeStaleRedisClusters
)

func ClusterDir(c *PostgresCluster) string { return c.dir }

// KeyForSlot returns a hash tag whose keys hash to slot.
var KeyForSlot = keyForSlot

func RedisClusterDir(c *RedisCluster) string { return c.set.dir }

// StartOnPort starts a redis-server like StartRedis, on a port the caller
// chooses, in dir.
func StartOnPort(ctx context.Context, dir string, port int) (*RedisServer, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, err
	}
	s := &RedisServer{bin: bin, dir: dir, port: port}
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	return s, nil
}
