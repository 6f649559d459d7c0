// Package memtest gives every test its own real infrastructure: a
// redis-server, a PostgreSQL database and a SQLite file. It is the Go
// counterpart of pytest's function-scope fixtures, and the reason memstore
// needs no mocks: a fake Redis has no TTLs, no Lua atomicity, no network
// timing and no failure modes, which are exactly what a cache+DB store gets
// wrong.
//
// # Redis
//
// [Redis] starts a private redis-server for the test on a free loopback port,
// without persistence, in t.TempDir(), and kills it when the test ends
// (about 10 ms in all). The server can be killed, restarted, paused and
// resumed, which is what fault tests need. [StartRedis] does the same outside
// tests (the memstore command uses it).
//
// When MEMSTORE_REDIS_URL names a shared server (redis://host:port), each
// test instead gets a database index of its own on it, leased across
// processes, flushed before and after the test. Where the server has a
// single database (or SELECT is refused, as on a cluster), each test gets a
// key prefix ([RedisServer.Prefix]) and the keys under it are deleted before
// and after. Process controls then return [ErrShared]. A test on a shared
// server may FLUSHDB its own database but must never FLUSHALL: that wipes
// the other tests' data and the leases that keep their databases apart.
//
// # Redis Cluster
//
// [Cluster] gives the test a key prefix ([RedisCluster.Prefix]) on the test
// binary's shared Redis Cluster (three masters, three replicas), started by
// the first call and stopped by [Main]; the keys under the prefix are
// deleted when the test ends. A cluster takes two seconds to become
// writable (Redis holds a new master's state at fail that long), a prefix
// nothing. [ClusterWith] with [ClusterOptions.Private] (or any other
// option) starts a cluster of the test's own instead, for tests that kill,
// pause, restart or fail over nodes ([ClusterNode], [RedisCluster.Failover],
// [RedisCluster.CrashFailover], [RedisCluster.KillMaster]), migrate slots
// or put proxies in front of the nodes ([ClusterOptions.Announce]).
// [RedisCluster.WaitHealthy] waits until such a cluster is whole again.
// [StartCluster] does the same outside tests.
//
// # Redis Sentinel
//
// [Sentinel] starts a master, a replica and three Sentinels for the test,
// with a failover client; [RedisSentinel.Failover] and
// [RedisSentinel.CrashFailover] move the master.
//
// # PostgreSQL
//
// [Postgres] gives the test a fresh, empty database on one throwaway
// PostgreSQL cluster per test binary (initdb into a temporary directory,
// unix socket only, fsync off), created from an empty template (about
// 0.1 s of CPU) and dropped when the test ends. Packages that use it must stop the
// cluster when the test binary ends, from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(memtest.Main(m)) }
//
// When MEMSTORE_POSTGRES_URL names an existing server, the databases are
// created and dropped there instead and no cluster is started.
//
// # SQLite
//
// [SQLite] opens a fresh database file in t.TempDir() with the pure-Go
// driver, in WAL mode with a busy timeout; [OpenSQLite] opens any path the
// same way.
//
// # Missing servers
//
// A missing redis-server or PostgreSQL is an installation problem: the
// fixtures fail the test (never skip it) with [ErrNotInstalled], whose message
// names the command that installs them. Servers started here are killed by
// the kernel if the test binary dies (Linux parent-death signal), so a crashed
// or timed-out test leaves no process behind.
package memtest
