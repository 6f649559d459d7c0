// Package fault holds the nemeses of the verifier: the faults it injects
// into Redis, the database, the network between them and the stores, and the
// stores' own processes. Every fault has Inject and Heal, targets loopback
// only, and is bounded in time.
//
// A store that keeps its promises must survive all of them: each is a way
// real deployments lose a write's intent, a cache entry or a reply, and
// each opens a window in which a stale value can slip back into the cache.
//
// # Redis
//
//   - [RedisKill]: SIGKILL, every key lost; Heal starts an empty server on
//     the same port.
//   - [RedisPause]: SIGSTOP/SIGCONT; commands hang, time out, and apply late.
//   - [RedisOOM]: maxmemory of 1 byte with noeviction; writes fail with OOM,
//     reads work.
//   - [RedisEvictLRU]: maxmemory at the current usage with allkeys-lru; every
//     write evicts keys, intents and leases included.
//   - [EvictKeys]: deletes a random fraction of the keys matching a pattern.
//   - [Flush]: FLUSHDB.
//
// # Redis Cluster, on a private memtest.RedisCluster
//
//   - [ClusterCrashFailover]: a master killed, its replica elected; Heal
//     restarts it as a replica.
//   - [ClusterFailover]: CLUSTER FAILOVER by hand, no write lost.
//   - [ClusterLossyFailover]: a replica cut off its master's stream, then
//     promoted: the writes the master acknowledged meanwhile are gone.
//   - [SlotMigration]: a slot moved with its keys, held half moved (ASK),
//     then given to the target (MOVED).
//   - [NodePartition]: a master cut off from its clients through its proxy
//     ([ClusterProxies]); the cluster does not fail it over.
//
// RedisOOM, RedisEvictLRU, EvictKeys and Flush take a cluster client too
// and act on every node (the memory limits) or every master (the keys).
//
// # Network, through a [Proxy] (an in-process toxiproxy on 127.0.0.1)
//
//   - [Latency]: every round trip slower, half each way.
//   - [Reset]: connections dropped after the request reached the server.
//   - [Partition]: the proxy stops; connections close and are refused.
//   - [Blackhole]: connections stay up and carry nothing; commands time out.
//
// # Database, through a wrapping driver ([SQLFaults])
//
//   - [DBFail]: every connection, statement and commit fails with
//     [ErrDBUnreachable].
//   - [DBFailCommits]: commits apply, then fail with [ErrCommitLost].
//   - [DBLatency]: every statement waits, honouring its context.
//
// # Processes
//
//   - [KillWorker]: SIGKILL to a worker process mid-operation.
//
// [Cycle] injects them in turns (wait, inject, hold, heal) and reports each
// window as an [Event] for the history.
package fault

import "context"

// Nemesis is one kind of fault. Inject starts it, Heal ends it; Heal after
// Heal, or without Inject, does nothing. Both honour ctx.
type Nemesis interface {
	// Name is short and stable: "redis-kill", "redis-pause", "latency", ...
	Name() string
	Inject(ctx context.Context) error
	Heal(ctx context.Context) error
}
