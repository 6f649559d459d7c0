package memtest

// Internals that the external tests (package memtest_test) check.
var (
	BinaryCluster       = binaryCluster
	RemoveStaleClusters = removeStaleClusters
)

func ClusterDir(c *PostgresCluster) string { return c.dir }
