package memtest

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
