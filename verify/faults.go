package verify

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/memstore/memstore/fault"
	"github.com/memstore/memstore/history"
	"github.com/memstore/memstore/internal/inspect"
	"github.com/memstore/memstore/memtest"
)

// The fault names Config.Faults accepts. Most are package fault's nemeses
// under their own names.
const (
	FaultRedisKill     = "redis-kill"      // SIGKILL the redis-server; restart it empty on heal
	FaultRedisRestart  = "redis-restart"   // kill and restart at once: all cache state lost, short outage
	FaultRedisPause    = "redis-pause"     // SIGSTOP the redis-server; SIGCONT on heal
	FaultRedisOOM      = "redis-oom"       // maxmemory 1 byte, noeviction: writes to Redis fail
	FaultRedisEvictLRU = "redis-evict-lru" // maxmemory at current use, allkeys-lru: intents and leases evicted too
	FaultEvictKeys     = "evict-keys"      // delete half of the run's Redis keys at once
	FaultFlush         = "flush"           // every Redis key of the run deleted
	FaultLatency       = "latency"         // every Redis round trip 10ms slower (proxy)
	FaultReset         = "reset"           // Redis connections reset after the request arrived (proxy)
	FaultPartition     = "partition"       // Redis connections closed and refused (proxy)
	FaultBlackhole     = "blackhole"       // Redis connections hang (proxy)
	FaultDBFail        = "db-fail"         // every DB statement fails (driver wrapper)
	FaultDBFailCommits = "db-fail-commits" // DB commits apply, then report failure (driver wrapper)
	FaultDBLatency     = "db-latency"      // every DB statement 20ms slower (driver wrapper)
	FaultKillWorker    = "kill-worker"     // SIGKILL a worker process mid-operation; it is restarted

	// The faults of a Redis Cluster (Config.Cluster, Config.RedisCluster).
	FaultClusterCrashFailover = "cluster-crash-failover" // SIGKILL a master; its replica is elected; the old master rejoins on heal
	FaultClusterFailover      = "cluster-failover"       // CLUSTER FAILOVER on a replica: roles swap, no write lost
	FaultClusterLossyFailover = "cluster-lossy-failover" // a replica cut off its master's stream is promoted: acknowledged writes lost
	FaultSlotMigration        = "slot-migration"         // a slot's keys MIGRATE to another master: ASK, then MOVED
	FaultNodePartition        = "node-partition"         // one master cut off from the clients (its proxy), not from the cluster
)

// FaultNames returns every fault name Config.Faults accepts.
func FaultNames() []string {
	return []string{
		FaultRedisKill, FaultRedisRestart, FaultRedisPause, FaultRedisOOM, FaultRedisEvictLRU,
		FaultEvictKeys, FaultFlush,
		FaultLatency, FaultReset, FaultPartition, FaultBlackhole,
		FaultDBFail, FaultDBFailCommits, FaultDBLatency,
		FaultKillWorker,
		FaultClusterCrashFailover, FaultClusterFailover, FaultClusterLossyFailover,
		FaultSlotMigration, FaultNodePartition,
	}
}

// DefaultFaults returns the faults a run on a standalone Redis uses when
// Config.Faults is nil: all but the cluster faults. Those the environment
// cannot produce are left out at run time and noted (process faults on a
// shared Redis, kill-worker without worker processes).
func DefaultFaults() []string {
	return slices.DeleteFunc(FaultNames(), isClusterFault)
}

// DefaultClusterFaults returns the faults a run on a Redis Cluster uses
// when Config.Faults is nil: every fault but those that need a standalone
// server (redis-kill and redis-restart, whose cluster counterparts are the
// failovers).
func DefaultClusterFaults() []string {
	return slices.DeleteFunc(FaultNames(), func(f string) bool { return f == FaultRedisKill || f == FaultRedisRestart })
}

func isClusterFault(name string) bool {
	switch name {
	case FaultClusterCrashFailover, FaultClusterFailover, FaultClusterLossyFailover, FaultSlotMigration, FaultNodePartition:
		return true
	}
	return false
}

func knownFault(name string) bool { return slices.Contains(FaultNames(), name) }

func isNetworkFault(name string) bool {
	return name == FaultLatency || name == FaultReset || name == FaultPartition || name == FaultBlackhole
}

func isDBFault(name string) bool {
	return name == FaultDBFail || name == FaultDBFailCommits || name == FaultDBLatency
}

// ErrFaultUnavailable is returned by Run, with Config.RequireFaults, when a
// named fault cannot be produced here.
var ErrFaultUnavailable = errors.New("verify: fault unavailable")

// nemesis is a fault.Nemesis made of two functions.
type nemesis struct {
	name         string
	inject, heal func(ctx context.Context) error
}

func (n *nemesis) Name() string                     { return n.name }
func (n *nemesis) Inject(ctx context.Context) error { return n.inject(ctx) }
func (n *nemesis) Heal(ctx context.Context) error {
	if n.heal == nil {
		return nil
	}
	return n.heal(ctx)
}

var _ fault.Nemesis = (*nemesis)(nil)

// each is one fault over many targets (every instance's DB wrapper): it
// injects and heals all of them.
func each(name string, ns []fault.Nemesis) fault.Nemesis {
	run := func(f func(fault.Nemesis) error) error {
		var errs []error
		for _, n := range ns {
			errs = append(errs, f(n))
		}
		return errors.Join(errs...)
	}
	return &nemesis{name: name,
		inject: func(ctx context.Context) error { return run(func(n fault.Nemesis) error { return n.Inject(ctx) }) },
		heal:   func(ctx context.Context) error { return run(func(n fault.Nemesis) error { return n.Heal(ctx) }) },
	}
}

// buildNemeses turns the configured fault names into nemeses, leaving out
// (and noting) those the environment cannot produce.
func (e *engine) buildNemeses() []fault.Nemesis {
	var out []fault.Nemesis
	for _, name := range e.cfg.Faults {
		if name == "none" {
			continue
		}
		n, why := e.nemesis(name)
		if n == nil {
			e.env.note("fault %s left out: %s", name, why)
			if e.leftOut == nil {
				e.leftOut = make(map[string]string)
			}
			e.leftOut[name] = why
			continue
		}
		out = append(out, n)
	}
	return append(out, e.cfg.Nemeses...)
}

func (e *engine) nemesis(name string) (fault.Nemesis, string) {
	rs := e.env.redis.Server
	rc := e.env.redis.Cluster
	admin := e.env.admin
	noProc := "process and server-wide faults need a private redis-server (Config.Redis from memtest, or no Redis at all)"
	if rs != nil && rs.Shared() {
		noProc = "shared Redis (MEMSTORE_REDIS_URL): process and server-wide faults would hit its other users"
	}
	if e.env.cluster() {
		noProc = "process and server-wide faults need a private Redis Cluster (Config.RedisCluster from memtest, or Config.Cluster)"
	}
	if e.cfg.Exec != nil {
		if why := execLeftOut(name); why != "" {
			return nil, why
		}
		if name == FaultKillWorker {
			return &nemesis{name: name, inject: func(context.Context) error { return e.killAdapter() }}, ""
		}
	}
	if isClusterFault(name) {
		return e.clusterNemesis(name, rc, noProc)
	}
	if e.env.cluster() {
		switch {
		case name == FaultRedisKill || name == FaultRedisRestart:
			return nil, "a Redis Cluster keeps its data through a node's crash (a replica takes over): cluster-crash-failover and cluster-lossy-failover are its counterparts"
		case name == FaultRedisPause:
			if !e.env.processFaults() {
				return nil, noProc
			}
			return e.pauseMaster(rc), ""
		case isNetworkFault(name) && e.env.cproxies == nil:
			return nil, "network faults on a Redis Cluster need its nodes to announce proxies (Config.ClusterProxies, or Config.Cluster)"
		}
	}
	switch name {
	case FaultRedisKill:
		if !e.env.processFaults() {
			return nil, noProc
		}
		return fault.RedisKill(rs), ""
	case FaultRedisRestart:
		if !e.env.processFaults() {
			return nil, noProc
		}
		return &nemesis{name: name, inject: func(context.Context) error { return rs.Restart() }}, ""
	case FaultRedisPause:
		if !e.env.processFaults() {
			return nil, noProc
		}
		return fault.RedisPause(rs), ""
	case FaultRedisOOM:
		if !e.env.processFaults() {
			return nil, noProc
		}
		return fault.RedisOOM(admin), ""
	case FaultRedisEvictLRU:
		if !e.env.processFaults() {
			return nil, noProc
		}
		return fault.RedisEvictLRU(admin, 0), ""
	case FaultEvictKeys:
		return fault.EvictKeys(admin, inspect.GlobEscape(e.env.namespace)+"*", 0.5, newRand(e.cfg.Seed, 19)), ""
	case FaultFlush:
		if e.env.processFaults() {
			return fault.Flush(admin), ""
		}
		// FLUSHDB would take other users' keys: delete the run's only.
		return &nemesis{name: name, inject: fault.EvictKeys(admin, inspect.GlobEscape(e.env.namespace)+"*", 1, nil).Inject}, ""
	case FaultLatency:
		return fault.Latency(e.proxies, 10*time.Millisecond, 5*time.Millisecond), ""
	case FaultReset:
		return fault.Reset(e.proxies), ""
	case FaultPartition:
		return fault.Partition(e.proxies), ""
	case FaultBlackhole:
		return fault.Blackhole(e.proxies), ""
	case FaultDBFail, FaultDBFailCommits, FaultDBLatency:
		var ns []fault.Nemesis
		for _, f := range e.sqlFaults {
			switch name {
			case FaultDBFail:
				ns = append(ns, fault.DBFail(f))
			case FaultDBFailCommits:
				ns = append(ns, fault.DBFailCommits(f))
			default:
				ns = append(ns, fault.DBLatency(f, 20*time.Millisecond))
			}
		}
		if len(e.workers) > 0 {
			e.env.note("DB faults hit the instances in this process, not the worker processes")
		}
		return each(name, ns), ""
	case FaultKillWorker:
		if len(e.workers) == 0 {
			return nil, "no worker processes (Config.Processes is 0)"
		}
		rng := newRand(e.cfg.Seed, 11)
		return fault.KillWorker(func() *os.Process {
			var alive []*worker
			for _, w := range e.workers {
				if w.isAlive() {
					alive = append(alive, w)
				}
			}
			if len(alive) == 0 {
				return nil
			}
			return alive[rng.IntN(len(alive))].process()
		}), ""
	}
	return nil, fmt.Sprintf("unknown fault %q", name)
}

// clusterNemesis builds the faults of a private Redis Cluster.
func (e *engine) clusterNemesis(name string, rc *memtest.RedisCluster, noProc string) (fault.Nemesis, string) {
	if !e.env.cluster() {
		return nil, "a cluster fault: the run's Redis is not a Redis Cluster (Config.Cluster, --redis-cluster)"
	}
	if rc == nil || !e.env.processFaults() {
		return nil, noProc
	}
	rng := newRand(e.cfg.Seed, 23)
	switch name {
	case FaultClusterCrashFailover:
		return fault.ClusterCrashFailover(rc, rng), ""
	case FaultClusterFailover:
		return fault.ClusterFailover(rc, rng), ""
	case FaultClusterLossyFailover:
		return fault.ClusterLossyFailover(rc, rng), ""
	case FaultSlotMigration:
		return fault.SlotMigration(rc, rng), ""
	case FaultNodePartition:
		if e.env.cproxies == nil {
			return nil, "node-partition needs the cluster's nodes to announce proxies (Config.ClusterProxies, or Config.Cluster)"
		}
		return fault.NodePartition(rc, e.env.cproxies, rng), ""
	}
	return nil, fmt.Sprintf("unknown fault %q", name)
}

// pauseMaster is redis-pause on a cluster: one shard's master stopped with
// SIGSTOP, continued on heal. Held past the node timeout, the pause fails
// the shard over, and what the replica had not received is lost; heal waits
// until the cluster is healthy again either way.
func (e *engine) pauseMaster(rc *memtest.RedisCluster) fault.Nemesis {
	rng := newRand(e.cfg.Seed, 29)
	var paused *memtest.ClusterNode
	return &nemesis{name: FaultRedisPause,
		inject: func(ctx context.Context) error {
			m, _, err := rc.Shard(ctx, rng.IntN(rc.Shards()))
			if err != nil {
				return err
			}
			paused = m
			return m.Pause()
		},
		heal: func(ctx context.Context) error {
			if paused != nil {
				if err := paused.Resume(); err != nil {
					return err
				}
				paused = nil
			}
			return rc.WaitHealthy(ctx)
		},
	}
}

// faultLoop cycles through the nemeses until stop is closed: a gap, then
// one fault injected, held and healed, each window recorded as a fault
// event. The faults come in rounds, each a permutation drawn with the run's
// seed, so a run of len(faults) × (FaultGap + FaultHold) meets them all. It is fault.Cycle's loop, recording
// each window as it opens so that progress reports can name it.
func (e *engine) faultLoop(ctx context.Context, nems []fault.Nemesis, stop <-chan struct{}) {
	if len(nems) == 0 {
		return
	}
	rng := newRand(e.cfg.Seed, 7)
	var order []int
	rounds := 0
	for waitStop(ctx, stop, e.cfg.FaultGap) {
		// Rounds of a seeded permutation: every fault comes once per round.
		if len(order) == 0 {
			order = rng.Perm(len(nems))
		}
		n := nems[order[0]]
		order = order[1:]
		ev := e.rec.BeginEvent(history.Fault, n.Name(), "")
		e.setFault(n.Name())
		ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := n.Inject(ictx)
		cancel()
		if err != nil {
			e.env.note("fault %s: inject: %v", n.Name(), err)
		} else {
			waitStop(ctx, stop, e.cfg.FaultHold)
		}
		e.heal(ctx, n)
		ev.End()
		e.setFault("")
		if len(order) == 0 {
			rounds++
			if e.cfg.FaultRounds > 0 && rounds >= e.cfg.FaultRounds {
				e.stopWorkload()
			}
		}
	}
}

// heal heals n even when ctx has ended: a fault must never outlive the run.
func (e *engine) heal(ctx context.Context, n fault.Nemesis) {
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := n.Heal(hctx); err != nil {
		e.env.note("fault %s: heal: %v", n.Name(), err)
	}
}
