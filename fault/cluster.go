package fault

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/memstore/memstore/memtest"
)

// The nemeses of a Redis Cluster act on a memtest.RedisCluster of the
// test's own (ClusterOptions.Private): on the shared cluster Inject returns
// an error wrapping memtest.ErrShared and does nothing. Each picks its shard
// (or slot) with rng on every Inject; a nil rng means a randomly seeded one.
// rng is used under the nemesis's lock only, but must not be shared with
// code that runs concurrently. Every Heal ends with the cluster healthy
// (memtest's RedisCluster.WaitHealthy: every slot served, cluster_state:ok
// everywhere, every shard a master with its replicas caught up), so the
// next fault starts from a whole cluster.

func newRand(rng *rand.Rand) *rand.Rand {
	if rng == nil {
		return rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	return rng
}

// ClusterCrashFailover kills the master of a shard with SIGKILL on Inject
// and returns once its replica has been elected in its place (after the
// node timeout and an election, a second or two; meanwhile the shard's
// commands fail, and for the last part every shard's, with CLUSTERDOWN).
// Writes that had not reached the replica are lost. Heal restarts the old
// master, which rejoins as a replica of the new one, and waits until the
// cluster is healthy.
func ClusterCrashFailover(c *memtest.RedisCluster, rng *rand.Rand) Nemesis {
	rng = newRand(rng)
	var killed *memtest.ClusterNode
	return &toggle{
		name: "cluster-crash-failover",
		inject: func(ctx context.Context) error {
			if c.Shared() {
				return memtest.ErrShared
			}
			old, err := c.KillMaster(ctx, rng.IntN(c.Shards()))
			killed = old // restart it even if no replica took over
			return err
		},
		heal: func(ctx context.Context) error {
			if killed != nil {
				if err := killed.Restart(); err != nil {
					return err
				}
				killed = nil
			}
			if c.Shared() {
				return nil
			}
			return c.WaitHealthy(ctx)
		},
	}
}

// ClusterFailover fails a shard over by hand on Inject (CLUSTER FAILOVER on
// a replica: its master stops taking writes until the replica has caught
// up, then the two swap roles), which loses no write; clients learn of it
// from a MOVED. Heal waits until the cluster is healthy; the roles stay
// swapped.
func ClusterFailover(c *memtest.RedisCluster, rng *rand.Rand) Nemesis {
	rng = newRand(rng)
	return &toggle{
		name: "cluster-failover",
		inject: func(ctx context.Context) error {
			if c.Shared() {
				return memtest.ErrShared
			}
			return c.Failover(ctx, rng.IntN(c.Shards()))
		},
		heal: func(ctx context.Context) error {
			if c.Shared() {
				return nil
			}
			return c.WaitHealthy(ctx)
		},
	}
}

// cutUser is the replication user a cut replica logs in as: no node has it,
// so every attempt fails at AUTH, before the replica asks for the stream.
const cutUser = "memtest-fault-cut"

// ClusterLossyFailover is the failover that loses writes the old master
// acknowledged, as asynchronous replication allows: Inject cuts a shard's
// replica off its master's replication stream, and Heal promotes that
// replica (CLUSTER FAILOVER TAKEOVER, which asks no one), so every write
// the shard acknowledged in between (values, write intents, fill leases) is
// gone. The old master, outvoted by the newer config epoch, becomes a
// replica and copies the new master whole, dropping the writes too. Heal
// then waits until the cluster is healthy.
//
// The cut leaves the master alone (a paused or slowed master would
// acknowledge nothing): the replica is told to log in as a user that does
// not exist (masteruser, masterauth) and its link is killed, so it
// reconnects, fails at AUTH, and tries again every second, until Heal. Its
// own settings come back once it is the master. Between Inject and Heal
// the shard has no replica that could take over.
func ClusterLossyFailover(c *memtest.RedisCluster, rng *rand.Rand) Nemesis {
	rng = newRand(rng)
	var (
		shard   int
		replica *memtest.ClusterNode
		saved   map[string]string // the replica's masteruser and masterauth
	)
	return &toggle{
		name: "cluster-lossy-failover",
		inject: func(ctx context.Context) error {
			if c.Shared() {
				return memtest.ErrShared
			}
			shard = rng.IntN(c.Shards())
			_, replicas, err := c.Shard(ctx, shard)
			if err != nil {
				return err
			}
			replica = replicas[0]
			r := replica.Client()
			saved = make(map[string]string)
			for _, p := range []string{"masteruser", "masterauth"} {
				v, err := configGet(ctx, r, p)
				if err != nil {
					return err
				}
				saved[p] = v
			}
			if err := r.Do(ctx, "CONFIG", "SET", "masteruser", cutUser, "masterauth", crand.Text()).Err(); err != nil {
				return err
			}
			if err := r.ClientKillByFilter(ctx, "TYPE", "master").Err(); err != nil {
				return err
			}
			return waitFor(ctx, 10*time.Second, func(ctx context.Context) error {
				info, err := infoFields(ctx, r, "replication")
				if err != nil {
					return err
				}
				if s := info["master_link_status"]; s != "down" {
					return fmt.Errorf("replica %s: master_link_status:%s", replica.Addr(), s)
				}
				return nil
			})
		},
		heal: func(ctx context.Context) error {
			if replica == nil {
				return nil // Inject failed before it touched a node
			}
			r := replica.Client()
			master, _, err := c.Shard(ctx, shard)
			if err != nil {
				return err
			}
			if master != replica {
				if err := r.Do(ctx, "CLUSTER", "FAILOVER", "TAKEOVER").Err(); err != nil {
					return fmt.Errorf("CLUSTER FAILOVER TAKEOVER on %s: %w", replica.Addr(), err)
				}
				err := waitFor(ctx, 10*time.Second, func(ctx context.Context) error {
					m, _, err := c.Shard(ctx, shard)
					if err == nil && m != replica {
						err = fmt.Errorf("shard %d: master still %s", shard, m.Addr())
					}
					return err
				})
				if err != nil {
					return err
				}
			}
			if saved != nil {
				if err := r.Do(ctx, "CONFIG", "SET", "masteruser", saved["masteruser"], "masterauth", saved["masterauth"]).Err(); err != nil {
					return err
				}
				saved = nil
			}
			if err := c.WaitHealthy(ctx); err != nil {
				return err
			}
			replica = nil
			return nil
		},
	}
}

// Bounds of one slot migration: keys moved per MIGRATE, and MIGRATE calls.
const (
	migrateBatch   = 100
	migrateCalls   = 1 << 14
	migrateTimeout = 5 * time.Second
)

// SlotMigration moves one slot with its keys from one master to another,
// as resharding does, and holds it half moved in between. Inject picks a
// slot that holds keys (the slot of a RANDOMKEY of a master picked with
// rng; a random slot if the cluster is empty) and another master picked
// with rng, marks the slot IMPORTING on the target and MIGRATING on the
// source, and moves every key in it with MIGRATE. While it holds, every
// command on the slot's keys reaches the source first and gets ASK: the
// client must resend it to the target with ASKING (go-redis does). Heal
// moves any key that is left, gives the slot to the target (CLUSTER SETSLOT
// NODE on the target, the source and the other masters), after which the
// clients' next commands get MOVED, and waits until the cluster is healthy.
// The slot stays where it went.
func SlotMigration(c *memtest.RedisCluster, rng *rand.Rand) Nemesis {
	rng = newRand(rng)
	var (
		slot     int
		src, dst *memtest.ClusterNode
	)
	return &toggle{
		name: "slot-migration",
		inject: func(ctx context.Context) error {
			if c.Shared() {
				return memtest.ErrShared
			}
			masters, err := c.Masters(ctx)
			if err != nil {
				return err
			}
			if len(masters) < 2 {
				return errors.New("a slot migration needs two masters")
			}
			if slot, err = pickSlot(ctx, masters, rng); err != nil {
				return err
			}
			if src, err = slotOwner(ctx, masters[0], masters, slot); err != nil {
				return err
			}
			others := slices.DeleteFunc(slices.Clone(masters), func(n *memtest.ClusterNode) bool { return n == src })
			dst = others[rng.IntN(len(others))]
			return migrateSlot(ctx, slot, src, dst)
		},
		heal: func(ctx context.Context) error {
			if dst == nil {
				return nil
			}
			masters, err := c.Masters(ctx)
			if err != nil {
				return err
			}
			owner, err := slotOwner(ctx, dst, append(masters, src, dst), slot)
			if err != nil {
				return err
			}
			if owner != dst {
				// Again: Inject may have stopped half way, and keys may have
				// been written to the source before it was MIGRATING.
				if err := migrateSlot(ctx, slot, src, dst); err != nil {
					return err
				}
				if err := setSlotNode(ctx, dst, slot, dst); err != nil {
					return err
				}
			}
			// The source next (it must hold no key of the slot by now),
			// then the others; they would hear of it by gossip anyway.
			if err := setSlotNode(ctx, src, slot, dst); err != nil {
				return err
			}
			for _, m := range masters {
				if m != src && m != dst {
					if err := setSlotNode(ctx, m, slot, dst); err != nil {
						return err
					}
				}
			}
			if err := c.WaitHealthy(ctx); err != nil {
				return err
			}
			dst = nil
			return nil
		},
	}
}

// pickSlot returns the slot of a random key of a master picked with rng,
// trying the others if it has none, or a random slot.
func pickSlot(ctx context.Context, masters []*memtest.ClusterNode, rng *rand.Rand) (int, error) {
	for _, i := range rng.Perm(len(masters)) {
		n := masters[i].Client()
		key, err := n.RandomKey(ctx).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return 0, err
		}
		slot, err := n.ClusterKeySlot(ctx, key).Result()
		return int(slot), err
	}
	return rng.IntN(16384), nil
}

// slotOwner returns the master of masters that serves slot, as n sees it.
func slotOwner(ctx context.Context, n *memtest.ClusterNode, masters []*memtest.ClusterNode, slot int) (*memtest.ClusterNode, error) {
	shards, err := n.Client().ClusterShards(ctx).Result()
	if err != nil {
		return nil, err
	}
	for _, sh := range shards {
		if !slices.ContainsFunc(sh.Slots, func(r redis.SlotRange) bool { return int64(slot) >= r.Start && int64(slot) <= r.End }) {
			continue
		}
		for _, node := range sh.Nodes {
			if node.Role != "master" {
				continue
			}
			for _, m := range masters {
				if m.ID() == node.ID {
					return m, nil
				}
			}
			return nil, fmt.Errorf("slot %d: served by %s:%d, none of the masters", slot, node.IP, node.Port)
		}
	}
	return nil, fmt.Errorf("slot %d: served by no one", slot)
}

// migrateSlot marks slot IMPORTING on dst and MIGRATING on src (in that
// order, so that no ASK points at a node that would refuse it) and moves
// its keys. A key a client creates meanwhile lands on dst: the source
// answers ASK for every key it does not hold. MIGRATE goes to dst's own
// address, not to a proxy in front of it.
func migrateSlot(ctx context.Context, slot int, src, dst *memtest.ClusterNode) error {
	if err := dst.Client().Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", src.ID()).Err(); err != nil {
		return fmt.Errorf("%s: CLUSTER SETSLOT %d IMPORTING: %w", dst.Addr(), slot, err)
	}
	if err := src.Client().Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", dst.ID()).Err(); err != nil {
		return fmt.Errorf("%s: CLUSTER SETSLOT %d MIGRATING: %w", src.Addr(), slot, err)
	}
	host, port, err := net.SplitHostPort(dst.Addr())
	if err != nil {
		return err
	}
	for range migrateCalls {
		keys, err := src.Client().ClusterGetKeysInSlot(ctx, slot, migrateBatch).Result()
		if err != nil {
			return fmt.Errorf("%s: CLUSTER GETKEYSINSLOT %d: %w", src.Addr(), slot, err)
		}
		if len(keys) == 0 {
			return nil
		}
		// REPLACE: a key the target already holds is one a client created
		// there after the source had lost it, or an earlier MIGRATE
		// that copied it and failed before deleting it; the source's is the
		// one clients read since.
		args := []any{"MIGRATE", host, port, "", 0, migrateTimeout.Milliseconds(), "REPLACE", "KEYS"}
		for _, k := range keys {
			args = append(args, k)
		}
		if err := src.Client().Do(ctx, args...).Err(); err != nil {
			return fmt.Errorf("%s: MIGRATE to %s: %w", src.Addr(), dst.Addr(), err)
		}
	}
	return fmt.Errorf("slot %d: keys still left after %d MIGRATE calls", slot, migrateCalls)
}

func setSlotNode(ctx context.Context, n *memtest.ClusterNode, slot int, owner *memtest.ClusterNode) error {
	if err := n.Client().Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", owner.ID()).Err(); err != nil {
		return fmt.Errorf("%s: CLUSTER SETSLOT %d NODE %s: %w", n.Addr(), slot, owner.Addr(), err)
	}
	return nil
}

// ClusterProxies puts a Proxy in front of every node of a Redis Cluster:
// pass its Announce as memtest.ClusterOptions.Announce, and every node
// announces its proxy's address, so that the cluster's clients, and
// replicas reaching for their master, connect through the proxies. The
// network nemeses then apply to a node or the whole cluster (Proxy, All);
// the cluster bus, over which the nodes see each other, stays direct.
// Create it before the cluster and close it after (in a test: its
// t.Cleanup first), so that the cluster never outlives its proxies.
//
// The zero value is ready to use; its methods are safe for concurrent use.
type ClusterProxies struct {
	mu      sync.Mutex
	proxies []*Proxy
	byAddr  map[string]*Proxy // node address → its proxy
}

// Announce starts a proxy to the node at addr and returns the proxy's
// address.
func (cp *ClusterProxies) Announce(addr string) (string, error) {
	p, err := NewProxy("redis-cluster-"+addr, addr)
	if err != nil {
		return "", err
	}
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if cp.byAddr == nil {
		cp.byAddr = make(map[string]*Proxy)
	}
	cp.byAddr[addr] = p
	cp.proxies = append(cp.proxies, p)
	return p.Addr(), nil
}

// Proxy is the proxy in front of node n, nil if none.
func (cp *ClusterProxies) Proxy(n *memtest.ClusterNode) *Proxy {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return cp.byAddr[n.Addr()]
}

// All is every proxy, in the order Announce made them.
func (cp *ClusterProxies) All() []*Proxy {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return slices.Clone(cp.proxies)
}

// Close closes every proxy.
func (cp *ClusterProxies) Close() error {
	var errs []error
	for _, p := range cp.All() {
		errs = append(errs, p.Close())
	}
	return errors.Join(errs...)
}

// NodePartition cuts one node off from the clients on Inject: the master
// of a shard picked with rng, whose proxy (of cp, which the cluster must
// announce) stops, closing every connection and refusing new ones. The
// shard's commands fail at once; so does the replicas' replication link,
// which goes through the same proxy. The cluster bus is not cut, so the
// cluster sees the node up and does not fail it over: the shard is simply
// unreachable for its clients, the partition a load balancer or a client's
// network can make. Heal listens again and waits until the cluster is
// healthy. For the partition that makes commands hang instead, use
// Blackhole on cp.Proxy(node).
func NodePartition(c *memtest.RedisCluster, cp *ClusterProxies, rng *rand.Rand) Nemesis {
	rng = newRand(rng)
	var cut *Proxy
	return &toggle{
		name: "node-partition",
		inject: func(ctx context.Context) error {
			if c.Shared() {
				return memtest.ErrShared
			}
			m, _, err := c.Shard(ctx, rng.IntN(c.Shards()))
			if err != nil {
				return err
			}
			p := cp.Proxy(m)
			if p == nil {
				return fmt.Errorf("node %s has no proxy: pass ClusterProxies.Announce as ClusterOptions.Announce", m.Addr())
			}
			cut = p
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.closed {
				return errProxyClosed
			}
			p.stop()
			return nil
		},
		heal: func(ctx context.Context) error {
			if cut != nil {
				if err := cut.start(ctx); err != nil {
					return err
				}
				cut = nil
			}
			if c.Shared() {
				return nil
			}
			return c.WaitHealthy(ctx)
		},
	}
}

// waitFor calls check every 20 ms until it returns nil, for up to timeout.
func waitFor(ctx context.Context, timeout time.Duration, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := check(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", context.Cause(ctx), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func infoFields(ctx context.Context, n *redis.Client, section string) (map[string]string, error) {
	s, err := n.Info(ctx, section).Result()
	if err != nil {
		return nil, err
	}
	m := make(map[string]string)
	for line := range strings.SplitSeq(s, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			m[k] = v
		}
	}
	return m, nil
}
