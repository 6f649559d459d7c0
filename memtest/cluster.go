package memtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/memstore/memstore/internal/randhex"
)

// clusterSlots is the number of hash slots of every Redis Cluster.
const clusterSlots = 16384

// Defaults of ClusterOptions.
const (
	defaultMasters  = 3
	defaultReplicas = 1
	// A short node timeout makes a crash failover take about a second and a
	// half: the masters flag a silent master as failing after the node
	// timeout, and its replica waits a fixed 0.5–1 s more before it asks for
	// votes. Failure detection is wall-clock, so a node stalled longer than
	// this by a loaded machine is failed over too, which a test of a few
	// seconds rarely meets; the shared cluster, which lives as long as its
	// test binary and is never failed over on purpose, takes a long one.
	defaultNodeTimeout = 500 * time.Millisecond
	sharedNodeTimeout  = 15 * time.Second
)

// Bounds of the cluster's waits. A cluster becomes writable no sooner than
// two seconds after its masters start (Redis's CLUSTER_WRITABLE_DELAY, fixed
// at compile time), and a failover after a crash takes the node timeout and
// an election; these bounds are far above both.
const (
	clusterReadyTimeout    = 30 * time.Second
	clusterFailoverTimeout = 30 * time.Second
	clusterPollInterval    = 20 * time.Millisecond
)

// ClusterOptions configures a Redis Cluster fixture. A nil *ClusterOptions
// and the zero value both mean the defaults. Any field other than Private
// set asks for a private cluster too, since the shared one cannot take it.
type ClusterOptions struct {
	// Masters is the number of shards, each a master and its replicas.
	// Default 3, the fewest with which the masters left after one is lost
	// are still a majority, which a crash failover needs for its votes.
	Masters int
	// Replicas is the number of replicas of each master. Default 1. Every
	// shard has at least one: failover is what the fixture is for.
	Replicas int
	// NodeTimeout is cluster-node-timeout: how long a node may be silent
	// before the others flag it as failing, and so the start of a crash
	// failover. Default 500ms (15s on the shared cluster). A master paused
	// for longer than this is failed over.
	NodeTimeout time.Duration
	// Args are extra redis-server arguments for every node, appended after
	// the fixture's own, e.g. []string{"--maxmemory", "2mb"}. Default: none.
	Args []string
	// Announce, when set, is called once with each node's address before the
	// nodes meet, and returns the address that node announces instead
	// (cluster-announce-ip and -port): the address of a TCP proxy in front of
	// it, such as a fault.Proxy, so that the cluster's clients and the
	// node's replicas reach it only through that proxy, where a network
	// fault can cut it off. The cluster bus, over which the nodes detect
	// failures, stays direct. The proxies are the caller's to close, after
	// the cluster. Default: nodes announce the address they listen on.
	Announce func(addr string) (string, error)
	// Private asks for a cluster of the test's own instead of a key prefix on
	// the test binary's shared cluster. Tests that kill, pause, restart or
	// fail over nodes, migrate slots or change server settings set it.
	// Default: false.
	Private bool
}

func (o *ClusterOptions) shareable() bool {
	return !o.Private && o.Masters == 0 && o.Replicas == 0 && o.NodeTimeout == 0 && len(o.Args) == 0 && o.Announce == nil
}

func (o ClusterOptions) withDefaults() ClusterOptions {
	if o.Masters == 0 {
		o.Masters = defaultMasters
	}
	if o.Replicas == 0 {
		o.Replicas = defaultReplicas
	}
	if o.NodeTimeout == 0 {
		o.NodeTimeout = defaultNodeTimeout
	}
	return o
}

// RedisCluster is a Redis Cluster on 127.0.0.1 isolated for one test (or one
// run of the memstore command): either a cluster of its own, whose nodes it
// can kill, pause and fail over, or a key prefix of its own on the test
// binary's shared cluster.
//
// Shards are numbered from 0 and fixed when the cluster forms: shard i is
// the i-th range of slots and the nodes that serve it, one master and its
// replicas. A failover swaps roles within a shard; a migrated slot moves to
// another shard.
//
// All methods are safe for concurrent use.
type RedisCluster struct {
	set    *nodeSet
	prefix string
	client *redis.ClusterClient

	mu      sync.Mutex
	clients []*redis.ClusterClient // made by NewClient, closed by Close
	closed  bool
}

// nodeSet is the processes of one cluster, which the tests on a shared
// cluster share.
type nodeSet struct {
	nodes    []*ClusterNode
	masters  int
	replicas int
	dir      string
	ownsDir  bool
	shared   bool

	closeOnce sync.Once
}

// ClusterNode is one redis-server of a RedisCluster. Its process controls
// return ErrShared on the shared cluster.
type ClusterNode struct {
	srv      *RedisServer
	admin    *redis.Client
	id       string
	shard    int
	announce string // host:port the cluster tells clients; srv.Addr() unless ClusterOptions.Announce
	shared   bool
}

// ID is the node's cluster ID, which it keeps across restarts (its
// nodes.conf stays in its directory).
func (n *ClusterNode) ID() string { return n.id }

// Addr is the host:port the node listens on.
func (n *ClusterNode) Addr() string { return n.srv.Addr() }

// AnnouncedAddr is the host:port the cluster gives clients and replicas for
// this node: the proxy's when ClusterOptions.Announce put one in front,
// Addr otherwise.
func (n *ClusterNode) AnnouncedAddr() string { return n.announce }

// Shard is the number of the shard the node belongs to.
func (n *ClusterNode) Shard() int { return n.shard }

// Client is a plain client connected to this node alone, directly (never
// through an announced proxy), with go-redis's timeouts and no retries: for
// CLUSTER and INFO commands, or to look at what this node holds. A command
// on a key of a slot the node does not serve gets a MOVED error.
func (n *ClusterNode) Client() *redis.Client { return n.admin }

// PID is the process ID of the node's redis-server last started.
func (n *ClusterNode) PID() int { return n.srv.PID() }

// Kill kills the node with SIGKILL and waits until it has exited; its data
// is lost. The cluster fails a master over once the node timeout has passed;
// see RedisCluster.KillMaster.
func (n *ClusterNode) Kill() error {
	if n.shared {
		return ErrShared
	}
	return n.srv.Kill()
}

// Restart kills the node if it runs and starts it again on the same ports
// with the same arguments and nodes.conf, returning once it answers PING. It
// starts empty, and rejoins the cluster by itself: a master whose shard was
// failed over meanwhile becomes a replica of the new master; a master
// restarted before that serves its slots again, empty, and its replicas
// copy the emptiness (Redis Cluster without persistence loses the shard's
// data). WaitHealthy waits until it is back in step.
func (n *ClusterNode) Restart() error {
	if n.shared {
		return ErrShared
	}
	return n.srv.Restart()
}

// Pause stops the node with SIGSTOP: it keeps its connections and data but
// answers nothing, to clients or to the other nodes, until Resume. A master
// paused longer than the node timeout is failed over.
func (n *ClusterNode) Pause() error {
	if n.shared {
		return ErrShared
	}
	return n.srv.Pause()
}

// Resume continues a paused node with SIGCONT.
func (n *ClusterNode) Resume() error {
	if n.shared {
		return ErrShared
	}
	return n.srv.Resume()
}

// Cluster returns a Redis Cluster isolated for this test by a key prefix
// (Prefix) on the test binary's shared cluster (three masters, three
// replicas), which the first call starts and Main stops; the keys under the
// prefix are deleted when the test ends. A test must put Prefix in front of
// every key, and must not kill, pause or reconfigure the shared nodes (the
// process controls return ErrShared); ClusterWith with Private gets a
// cluster of the test's own for that. A missing redis-server fails the test
// with ErrNotInstalled.
func Cluster(t testing.TB) *RedisCluster {
	t.Helper()
	return ClusterWith(t, nil)
}

// ClusterWith is Cluster with options. Options other than the defaults, or
// Private, start a cluster of the test's own in t.TempDir(), about two
// seconds, and stop it when the test ends.
func ClusterWith(t testing.TB, opts *ClusterOptions) *RedisCluster {
	t.Helper()
	if opts == nil {
		opts = &ClusterOptions{}
	}
	var (
		c   *RedisCluster
		err error
	)
	if opts.shareable() {
		c, err = sharedClusterHandle(t.Context())
	} else {
		c, err = StartCluster(t.Context(), t.TempDir(), opts)
	}
	if err != nil {
		t.Fatalf("memtest: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("memtest: %v", err)
		}
	})
	return c
}

// The test binary's shared cluster, started by the first Cluster call and
// stopped by Main, like the PostgreSQL cluster: a Redis Cluster takes two
// seconds to become writable, a key prefix nothing.
var (
	sharedClusterMu  sync.Mutex
	sharedCluster    *RedisCluster
	sharedClusterErr error
)

func sharedClusterHandle(ctx context.Context) (*RedisCluster, error) {
	sharedClusterMu.Lock()
	defer sharedClusterMu.Unlock()
	if sharedCluster == nil && sharedClusterErr == nil {
		removeStaleRedisClusters()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		sharedCluster, sharedClusterErr = StartCluster(sctx, "", &ClusterOptions{NodeTimeout: sharedNodeTimeout})
		cancel()
		if sharedClusterErr == nil {
			sharedCluster.set.shared = true
			for _, n := range sharedCluster.set.nodes {
				n.shared = true
			}
		}
	}
	if sharedClusterErr != nil {
		return nil, sharedClusterErr
	}
	c := &RedisCluster{set: sharedCluster.set, prefix: "memtest:" + randhex.String(8) + ":"}
	c.client = redis.NewClusterClient(c.Options())
	return c, nil
}

// stopSharedCluster stops the shared cluster, for Main.
func stopSharedCluster() error {
	sharedClusterMu.Lock()
	c := sharedCluster
	sharedCluster, sharedClusterErr = nil, errors.New("memtest.Cluster called after memtest.Main stopped the shared cluster")
	sharedClusterMu.Unlock()
	if c == nil {
		return nil
	}
	return c.set.close()
}

// StartCluster starts a private Redis Cluster on free ports of 127.0.0.1,
// without persistence: opts.Masters masters with opts.Replicas replicas each,
// every node in a directory of its own under dir ("" means a new temporary
// directory, removed by Close). It returns once the cluster is healthy (see
// WaitHealthy) and a client has written a key in every shard. The caller
// must call Close; if the calling program dies first, the kernel kills the
// nodes.
func StartCluster(ctx context.Context, dir string, opts *ClusterOptions) (*RedisCluster, error) {
	if opts == nil {
		opts = &ClusterOptions{}
	}
	o := opts.withDefaults()
	set := &nodeSet{masters: o.Masters, replicas: o.Replicas, dir: dir}
	var err error
	if set.dir == "" {
		// The PID in the name lets removeStaleRedisClusters find the
		// leftovers of a binary that died.
		if set.dir, err = os.MkdirTemp("", fmt.Sprintf("memtest-rc-%d-", os.Getpid())); err != nil {
			return nil, err
		}
		set.ownsDir = true
	}
	if set.dir, err = filepath.Abs(set.dir); err != nil {
		set.close()
		return nil, err
	}
	if err := set.start(ctx, o); err != nil {
		set.close()
		return nil, err
	}
	c := &RedisCluster{set: set}
	c.client = redis.NewClusterClient(c.Options())
	// The client's timeouts are short (a second): tried again, so that one
	// stall of a loaded machine does not fail the start.
	if err := poll(ctx, clusterReadyTimeout, "cluster writable", c.checkWritable); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// start starts the nodes, forms the cluster and waits until it is healthy.
//
// It forms the cluster by hand rather than with redis-cli --cluster create,
// which polls once a second: every node takes a distinct config epoch first
// (no epoch collisions to resolve later), the masters take their slot
// ranges, every node meets every other (no wait for gossip to spread), and
// the replicas replicate once they know their masters. All of it runs within
// the two seconds a new master refuses to turn its state to ok.
func (s *nodeSet) start(ctx context.Context, o ClusterOptions) error {
	// A node that learns of a change (a new replica) only hears of it in
	// the pings of the node that changed, and a node pings another at
	// least every half node timeout, else one random node a second: with a
	// long timeout, six nodes take seconds to agree. So the cluster forms
	// with a short one and gets the one asked for once healthy.
	formTimeout := min(o.NodeTimeout, defaultNodeTimeout)
	args := []string{
		"--cluster-enabled", "yes",
		"--cluster-config-file", "nodes.conf",
		"--cluster-node-timeout", strconv.FormatInt(formTimeout.Milliseconds(), 10),
		// Shards keep their nodes: a replica never moves to another master.
		"--cluster-allow-replica-migration", "no",
		"--cluster-announce-ip", "127.0.0.1",
		// A full sync (a new replica, a failed-over master rejoining) starts
		// at once instead of waiting 5 s for more replicas.
		"--repl-diskless-sync-delay", "0",
		// CLUSTER SLOTS leaves out a replica until its replication offset
		// is past 0, and a master's offset moves only with what it sends:
		// a ping every second (not every 10) lists a new replica, or the
		// replica of a master restarted empty, within the two seconds the
		// cluster takes anyway. Clients learn the replicas from that list.
		"--repl-ping-replica-period", "1",
	}
	args = append(args, o.Args...)
	per := 1 + o.Replicas
	s.nodes = make([]*ClusterNode, o.Masters*per)
	var g errgroup.Group
	for i := range s.nodes {
		shard, k := i/per, i%per
		dir := filepath.Join(s.dir, fmt.Sprintf("shard%d-%d", shard, k))
		g.Go(func() error {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			srv, err := startRedis(ctx, dir, redisSpec{args: args, clusterBus: true})
			if err != nil {
				return err
			}
			n := &ClusterNode{srv: srv, shard: shard, announce: srv.Addr()}
			// No retries, so that a command shows what the node did; the
			// fixture's waits bound each call by its context instead of
			// short timeouts, which a loaded machine would turn into a
			// failed start.
			n.admin = srv.NewClient(func(o *redis.Options) {
				o.ContextTimeoutEnabled = true
				o.MaxRetries = -1
				o.DialerRetries = 1
			}).(*redis.Client)
			s.nodes[i] = n
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if o.Announce != nil {
		for _, n := range s.nodes {
			if err := n.announceVia(ctx, o.Announce); err != nil {
				return err
			}
		}
	}
	for i, n := range s.nodes {
		id, err := n.admin.Do(ctx, "CLUSTER", "MYID").Text()
		if err != nil {
			return fmt.Errorf("node %s: CLUSTER MYID: %w", n.Addr(), err)
		}
		n.id = id
		if err := n.admin.Do(ctx, "CLUSTER", "SET-CONFIG-EPOCH", i+1).Err(); err != nil {
			return fmt.Errorf("node %s: CLUSTER SET-CONFIG-EPOCH: %w", n.Addr(), err)
		}
	}
	for shard := range o.Masters {
		lo, hi := shardSlots(shard, o.Masters)
		if err := s.nodes[shard*per].admin.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			return fmt.Errorf("shard %d: CLUSTER ADDSLOTSRANGE %d %d: %w", shard, lo, hi, err)
		}
	}
	for i, a := range s.nodes {
		for _, b := range s.nodes[i+1:] {
			host, port, _ := net.SplitHostPort(b.announce)
			if err := a.admin.Do(ctx, "CLUSTER", "MEET", host, port, b.busPort()).Err(); err != nil {
				return fmt.Errorf("node %s: CLUSTER MEET %s: %w", a.Addr(), b.announce, err)
			}
		}
	}
	if err := poll(ctx, clusterReadyTimeout, "nodes meet", s.allKnown); err != nil {
		return err
	}
	for i, n := range s.nodes {
		if i%per == 0 {
			continue
		}
		master := s.nodes[i-i%per]
		if err := n.admin.Do(ctx, "CLUSTER", "REPLICATE", master.id).Err(); err != nil {
			return fmt.Errorf("node %s: CLUSTER REPLICATE %s: %w", n.Addr(), master.Addr(), err)
		}
	}
	if err := poll(ctx, clusterReadyTimeout, "cluster healthy", s.healthy); err != nil {
		return err
	}
	if o.NodeTimeout != formTimeout {
		for _, n := range s.nodes {
			if err := n.setArg(ctx, "cluster-node-timeout", strconv.FormatInt(o.NodeTimeout.Milliseconds(), 10)); err != nil {
				return err
			}
		}
	}
	return nil
}

// setArg sets a server setting now and for the node's restarts.
func (n *ClusterNode) setArg(ctx context.Context, name, value string) error {
	if err := n.admin.ConfigSet(ctx, name, value).Err(); err != nil {
		return fmt.Errorf("node %s: CONFIG SET %s %s: %w", n.Addr(), name, value, err)
	}
	n.srv.mu.Lock()
	defer n.srv.mu.Unlock()
	if i := slices.Index(n.srv.args, "--"+name); i >= 0 {
		n.srv.args[i+1] = value
	} else {
		n.srv.args = append(n.srv.args, "--"+name, value)
	}
	return nil
}

// announceVia makes the node announce the address announce returns for it.
// The settings join the node's arguments, so that a restart keeps them.
func (n *ClusterNode) announceVia(ctx context.Context, announce func(string) (string, error)) error {
	addr, err := announce(n.Addr())
	if err != nil {
		return fmt.Errorf("announce %s: %w", n.Addr(), err)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("announce %s: %w", n.Addr(), err)
	}
	// The bus port is announced as it is: with only the port set, Redis
	// would announce the proxy's port + 10000 for the bus. The nodes have
	// not met yet, so no one hears the settings half made.
	for _, kv := range [][2]string{
		{"cluster-announce-ip", host},
		{"cluster-announce-port", port},
		{"cluster-announce-bus-port", n.busPort()},
	} {
		if err := n.setArg(ctx, kv[0], kv[1]); err != nil {
			return fmt.Errorf("announce %s: %w", addr, err)
		}
	}
	n.announce = addr
	return nil
}

// busPort is the node's --cluster-port.
func (n *ClusterNode) busPort() string {
	n.srv.mu.Lock()
	defer n.srv.mu.Unlock()
	i := slices.Index(n.srv.args, "--cluster-port")
	return n.srv.args[i+1]
}

// shardSlots is the range of slots shard i of n starts with.
func shardSlots(i, n int) (lo, hi int) {
	return i * clusterSlots / n, (i+1)*clusterSlots/n - 1
}

// allKnown reports whether every node knows every other, with the handshake
// done.
func (s *nodeSet) allKnown(ctx context.Context) error {
	for _, n := range s.nodes {
		view, err := n.view(ctx)
		if err != nil {
			return err
		}
		if len(view) != len(s.nodes) {
			return fmt.Errorf("node %s knows %d nodes of %d", n.Addr(), len(view), len(s.nodes))
		}
		for _, l := range view {
			if l.hasFlag("handshake") || l.hasFlag("noaddr") {
				return fmt.Errorf("node %s: node %s is %s", n.Addr(), l.addr, l.flags)
			}
		}
	}
	return nil
}

// checkWritable sets and reads a key in every shard's first slot.
func (c *RedisCluster) checkWritable(ctx context.Context) error {
	for shard := range c.set.masters {
		lo, _ := shardSlots(shard, c.set.masters)
		key := c.prefix + "memtest:ready:{" + keyForSlot(lo) + "}"
		if err := c.client.Set(ctx, key, "ok", 0).Err(); err != nil {
			return fmt.Errorf("cluster: SET in slot %d: %w", lo, err)
		}
		if err := c.client.Get(ctx, key).Err(); err != nil {
			return fmt.Errorf("cluster: GET in slot %d: %w", lo, err)
		}
		if err := c.client.Del(ctx, key).Err(); err != nil {
			return fmt.Errorf("cluster: DEL in slot %d: %w", lo, err)
		}
	}
	return nil
}

// Addrs is the seed list for a cluster client: every node's announced
// address.
func (c *RedisCluster) Addrs() []string {
	addrs := make([]string, len(c.set.nodes))
	for i, n := range c.set.nodes {
		addrs[i] = n.announce
	}
	return addrs
}

// Options returns new options for a cluster client of this cluster: the
// seed list, ContextTimeoutEnabled, and timeouts of a second (the go-redis
// defaults of 3–5 s would make every fault slow to see).
func (c *RedisCluster) Options() *redis.ClusterOptions {
	return &redis.ClusterOptions{
		Addrs:                 c.Addrs(),
		ContextTimeoutEnabled: true,
		DialTimeout:           time.Second,
		ReadTimeout:           time.Second,
		WriteTimeout:          time.Second,
	}
}

// Client is a ready cluster client (a *redis.ClusterClient), closed by
// Close. Tests on the shared cluster put Prefix in front of every key.
func (c *RedisCluster) Client() redis.UniversalClient { return c.client }

// NewClient returns another cluster client (a *redis.ClusterClient), with the
// options changed by modify (which may be nil). Close closes it.
func (c *RedisCluster) NewClient(modify func(*redis.ClusterOptions)) redis.UniversalClient {
	o := c.Options()
	if modify != nil {
		modify(o)
	}
	cc := redis.NewClusterClient(o)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clients = append(c.clients, cc)
	return cc
}

// Prefix is the key prefix this test must put in front of every key it
// uses on the shared cluster; empty on a private one. It holds no braces, so
// a hash tag after it picks the slot.
func (c *RedisCluster) Prefix() string { return c.prefix }

// Shared reports whether this is a prefix on the test binary's shared
// cluster.
func (c *RedisCluster) Shared() bool { return c.set.shared }

// Nodes are the cluster's nodes, shard by shard, each shard's first master
// first.
func (c *RedisCluster) Nodes() []*ClusterNode { return slices.Clone(c.set.nodes) }

// Shards is the number of shards.
func (c *RedisCluster) Shards() int { return c.set.masters }

// Shard returns the nodes of shard i: the one that is its master now, and
// the others, its replicas (a killed one included). The master is the node
// of the shard that claims to be one; of two claims (a takeover that the
// old master has not heard of yet), the one with the newer config epoch.
func (c *RedisCluster) Shard(ctx context.Context, i int) (master *ClusterNode, replicas []*ClusterNode, err error) {
	if i < 0 || i >= c.set.masters {
		return nil, nil, fmt.Errorf("memtest: no shard %d of %d", i, c.set.masters)
	}
	per := 1 + c.set.replicas
	group := c.set.nodes[i*per : (i+1)*per]
	var epoch int64 = -1
	var errs []error
	for _, n := range group {
		me, err := n.self(ctx)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if me.hasFlag("master") && me.epoch > epoch {
			master, epoch = n, me.epoch
		}
	}
	if master == nil {
		return nil, nil, fmt.Errorf("memtest: shard %d has no master: %w", i, errors.Join(errs...))
	}
	for _, n := range group {
		if n != master {
			replicas = append(replicas, n)
		}
	}
	return master, replicas, nil
}

// Masters returns the master of every shard now, in shard order.
func (c *RedisCluster) Masters(ctx context.Context) ([]*ClusterNode, error) {
	masters := make([]*ClusterNode, c.set.masters)
	for i := range masters {
		m, _, err := c.Shard(ctx, i)
		if err != nil {
			return nil, err
		}
		masters[i] = m
	}
	return masters, nil
}

// WaitHealthy waits until the cluster is whole: every node answers and says
// cluster_state:ok with every slot served; every node knows every other as
// up and connected, with no slot migrating or importing; all nodes agree on
// who serves which slots and who replicates whom; every shard has one
// master, whose replicas have their link up and have caught up with what it
// had when the check began. Nemeses heal with it.
func (c *RedisCluster) WaitHealthy(ctx context.Context) error {
	return poll(ctx, clusterReadyTimeout, "cluster healthy", c.set.healthy)
}

// Failover fails shard i over by hand, without losing a write: CLUSTER
// FAILOVER on a replica in sync makes its master stop accepting writes,
// waits until it has caught up, and takes over. It returns once the old
// master replicates the new one and the cluster is healthy. Clients learn
// of the change from the MOVED their next command gets; the fixture's own
// are also told to reload the slots at once.
func (c *RedisCluster) Failover(ctx context.Context, shard int) error {
	if c.set.shared {
		return ErrShared
	}
	old, replicas, err := c.Shard(ctx, shard)
	if err != nil {
		return err
	}
	r, err := c.set.syncedReplica(ctx, old, replicas)
	if err != nil {
		return fmt.Errorf("memtest: failover of shard %d: %w", shard, err)
	}
	if err := r.admin.Do(ctx, "CLUSTER", "FAILOVER").Err(); err != nil {
		return fmt.Errorf("memtest: failover of shard %d: CLUSTER FAILOVER on %s: %w", shard, r.Addr(), err)
	}
	err = poll(ctx, clusterFailoverTimeout, fmt.Sprintf("shard %d failed over to %s", shard, r.Addr()), func(ctx context.Context) error {
		if err := c.set.isMaster(ctx, r); err != nil {
			return err
		}
		return c.set.healthy(ctx)
	})
	if err != nil {
		return fmt.Errorf("memtest: %w", err)
	}
	c.reloadClients()
	return nil
}

// KillMaster kills the master of shard i with SIGKILL, and returns it once
// a replica has taken its place: after the node timeout the other masters
// flag it as failed, its replica wins an election, and every live node says
// cluster_state:ok again. Between the flag and the election, the whole
// cluster refuses commands with CLUSTERDOWN (cluster-require-full-coverage).
// Writes the replica had not received when the master died are lost. Restart
// the returned node to bring the shard back to full strength (it rejoins as
// a replica), then WaitHealthy; or use CrashFailover, which does all that.
func (c *RedisCluster) KillMaster(ctx context.Context, shard int) (*ClusterNode, error) {
	if c.set.shared {
		return nil, ErrShared
	}
	old, _, err := c.Shard(ctx, shard)
	if err != nil {
		return nil, err
	}
	if err := old.Kill(); err != nil {
		return nil, err
	}
	err = poll(ctx, clusterFailoverTimeout, fmt.Sprintf("a replica of shard %d promoted", shard), func(ctx context.Context) error {
		return c.set.promoted(ctx, old)
	})
	if err != nil {
		return old, fmt.Errorf("memtest: %w", err)
	}
	c.reloadClients()
	return old, nil
}

// CrashFailover is the failover after a master's crash: KillMaster, then the
// old master restarted, rejoining as a replica of the new one, then
// WaitHealthy.
func (c *RedisCluster) CrashFailover(ctx context.Context, shard int) error {
	old, err := c.KillMaster(ctx, shard)
	if err != nil {
		return err
	}
	if err := old.Restart(); err != nil {
		return err
	}
	return c.WaitHealthy(ctx)
}

// reloadClients makes the fixture's clients reload the slots, so that they
// go to a new master without a MOVED first.
func (c *RedisCluster) reloadClients() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.client.ReloadState(context.Background())
	for _, cc := range c.clients {
		cc.ReloadState(context.Background())
	}
}

// Close closes the clients, then kills the nodes of a private cluster and
// removes the directory StartCluster created, or deletes this test's keys
// from the shared cluster. Calling it again does nothing.
func (c *RedisCluster) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	var err error
	if c.set.shared {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if derr := deleteClusterPrefix(ctx, c.client, c.prefix); derr != nil {
			err = fmt.Errorf("shared cluster: delete the keys under %q after the test: %w", c.prefix, derr)
		}
		cancel()
	}
	for _, cc := range c.clients {
		_ = cc.Close()
	}
	_ = c.client.Close()
	if !c.set.shared {
		c.set.close()
	}
	return err
}

func (s *nodeSet) close() error {
	s.closeOnce.Do(func() {
		var wg sync.WaitGroup
		for _, n := range s.nodes {
			if n != nil {
				wg.Go(func() { n.srv.Close() })
			}
		}
		wg.Wait()
		if s.ownsDir {
			_ = os.RemoveAll(s.dir)
		}
	})
	return nil
}

// deleteClusterPrefix deletes every key under prefix on every master.
func deleteClusterPrefix(ctx context.Context, c *redis.ClusterClient, prefix string) error {
	var (
		mu   sync.Mutex
		keys []string
	)
	err := c.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
		iter := n.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			mu.Lock()
			keys = append(keys, iter.Val())
			mu.Unlock()
		}
		return iter.Err()
	})
	if err != nil {
		return err
	}
	// One UNLINK per key: the client routes each to its slot, where a
	// multi-key UNLINK would fail with CROSSSLOT.
	for batch := range slices.Chunk(keys, 1000) {
		_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, k := range batch {
				p.Unlink(ctx, k)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// removeStaleRedisClusters removes the directories of shared clusters whose
// test binary died without calling Main (the kernel killed their nodes
// with it).
func removeStaleRedisClusters() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "memtest-rc-*-*"))
	for _, dir := range dirs {
		f := strings.SplitN(filepath.Base(dir), "-", 4)
		if len(f) != 4 {
			continue
		}
		owner, err := strconv.Atoi(f[2])
		if err != nil || owner == os.Getpid() || alive(owner) {
			continue
		}
		_ = os.RemoveAll(dir)
	}
}

// stopPolling is an error of a check that waiting will not cure.
type stopPolling struct{ error }

// poll calls check until it returns nil, every clusterPollInterval, each call
// bounded by a second, for up to timeout; then it fails with check's last
// error. A stopPolling error ends it at once.
func poll(ctx context.Context, timeout time.Duration, what string, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		cctx, ccancel := context.WithTimeout(ctx, time.Second)
		err := check(cctx)
		ccancel()
		if err == nil {
			return nil
		}
		if stop, ok := err.(stopPolling); ok {
			return fmt.Errorf("%s: %w", what, stop.error)
		}
		select {
		case <-ctx.Done():
			if errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
				return fmt.Errorf("%s: not within %v: %w", what, timeout, err)
			}
			return fmt.Errorf("%s: %w (last: %v)", what, context.Cause(ctx), err)
		case <-time.After(clusterPollInterval):
		}
	}
}
