package fault_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/memstore/memstore/fault"
	"github.com/memstore/memstore/memtest"
)

// privateCluster is a Redis Cluster of the test's own, which the faults may
// kill, fail over and reshard.
func privateCluster(t testing.TB, opts *memtest.ClusterOptions) *memtest.RedisCluster {
	t.Helper()
	if opts == nil {
		opts = &memtest.ClusterOptions{}
	}
	opts.Private = true
	return memtest.ClusterWith(t, opts)
}

func seeded(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed)) }

// shardKeys returns a key per shard that the cluster client sends to that
// shard's master now.
func shardKeys(t testing.TB, c *memtest.RedisCluster, name string) []string {
	t.Helper()
	cc := c.Client().(*redis.ClusterClient)
	masters, err := c.Masters(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]string, len(masters))
	for shard, m := range masters {
		for i := 0; keys[shard] == ""; i++ {
			key := fmt.Sprintf("%s{%d}", name, i)
			n, err := cc.MasterForKey(t.Context(), key)
			if err != nil {
				t.Fatal(err)
			}
			if n.Options().Addr == m.AnnouncedAddr() {
				keys[shard] = key
			}
			if i == 100000 {
				t.Fatalf("no key on shard %d", shard)
			}
		}
	}
	return keys
}

func setAll(t testing.TB, c redis.UniversalClient, keys []string, value string) {
	t.Helper()
	for _, k := range keys {
		if err := c.Set(t.Context(), k, value, 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", k, err)
		}
	}
}

func masters(t testing.TB, c *memtest.RedisCluster) []*memtest.ClusterNode {
	t.Helper()
	ms, err := c.Masters(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// changedShards lists the shards whose master differs.
func changedShards(before, after []*memtest.ClusterNode) []int {
	var shards []int
	for i := range before {
		if before[i] != after[i] {
			shards = append(shards, i)
		}
	}
	return shards
}

func waitHealthy(t testing.TB, c *memtest.RedisCluster) {
	t.Helper()
	if err := c.WaitHealthy(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// The three failovers on one cluster, one after another: each starts from
// the cluster the previous Heal left, which is then healthy or the test
// fails.
func TestClusterFailoverNemeses(t *testing.T) {
	t.Parallel()
	c := privateCluster(t, nil)
	ctx := t.Context()
	cc := c.Client()

	t.Run("crash", func(t *testing.T) {
		keys := shardKeys(t, c, "crash")
		setAll(t, cc, keys, "v")
		waitHealthy(t, c) // replicated
		before := masters(t, c)
		n := fault.ClusterCrashFailover(c, seeded(1))
		if got, want := n.Name(), "cluster-crash-failover"; got != want {
			t.Errorf("Name() = %q, want %q", got, want)
		}
		inject(t, n)
		after := masters(t, c)
		changed := changedShards(before, after)
		if len(changed) != 1 {
			t.Fatalf("Inject changed the masters of shards %v, want one", changed)
		}
		old := before[changed[0]]
		if err := old.Client().Ping(ctx).Err(); err == nil {
			t.Errorf("the old master %s answers PING after Inject", old.Addr())
		}
		for _, k := range keys {
			if got, err := cc.Get(ctx, k).Result(); got != "v" {
				t.Errorf("GET %s after the crash failover = %q, %v; want v (it had reached the replica)", k, got, err)
			}
		}
		heal(t, n)
		_, replicas, err := c.Shard(ctx, changed[0])
		if err != nil {
			t.Fatal(err)
		}
		if !slicesContains(replicas, old) {
			t.Errorf("after Heal the old master %s is not a replica of shard %d", old.Addr(), changed[0])
		}
		if err := old.Client().Ping(ctx).Err(); err != nil {
			t.Errorf("the old master after Heal: %v", err)
		}
	})

	t.Run("manual", func(t *testing.T) {
		keys := shardKeys(t, c, "manual")
		setAll(t, cc, keys, "v")
		before := masters(t, c)
		n := fault.ClusterFailover(c, seeded(2))
		inject(t, n)
		if changed := changedShards(before, masters(t, c)); len(changed) != 1 {
			t.Fatalf("Inject changed the masters of shards %v, want one", changed)
		}
		// A manual failover waits for the replica: nothing is lost, even
		// the writes made just before it.
		for _, k := range keys {
			if got, err := cc.Get(ctx, k).Result(); got != "v" {
				t.Errorf("GET %s after the failover = %q, %v; want v", k, got, err)
			}
		}
		heal(t, n)
	})

	t.Run("lossy", func(t *testing.T) {
		keys := shardKeys(t, c, "lossy")
		setAll(t, cc, keys, "before")
		waitHealthy(t, c)
		before := masters(t, c)
		n := fault.ClusterLossyFailover(c, seeded(3))
		inject(t, n)
		if changed := changedShards(before, masters(t, c)); len(changed) != 0 {
			t.Fatalf("Inject changed the masters of shards %v, want none yet", changed)
		}
		// Acknowledged by every master, and there to read.
		setAll(t, cc, keys, "during")
		for shard, k := range keys {
			if got := before[shard].Client().Get(ctx, k).Val(); got != "during" {
				t.Fatalf("GET %s on shard %d's master = %q, want during", k, shard, got)
			}
		}
		heal(t, n)
		changed := changedShards(before, masters(t, c))
		if len(changed) != 1 {
			t.Fatalf("Heal changed the masters of shards %v, want one", changed)
		}
		for shard, k := range keys {
			got, err := cc.Get(ctx, k).Result()
			want := "during"
			if shard == changed[0] {
				want = "before" // the acknowledged write is gone
			}
			if got != want {
				t.Errorf("shard %d: GET %s after the lossy failover = %q, %v; want %q", shard, k, got, err, want)
			}
		}
		// The old master, a replica now, copied the loss: no node has
		// the write.
		old := before[changed[0]]
		cn := old.Client().Conn()
		defer cn.Close()
		if err := cn.ReadOnly(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		if got, err := cn.Get(ctx, keys[changed[0]]).Result(); got != "before" {
			t.Errorf("GET %s on the old master after Heal = %q, %v; want before", keys[changed[0]], got, err)
		}
	})
}

func slicesContains(ns []*memtest.ClusterNode, n *memtest.ClusterNode) bool {
	for _, m := range ns {
		if m == n {
			return true
		}
	}
	return false
}

// redirects counts the MOVED and ASK replies a cluster client's nodes get.
type redirects struct{ moved, ask atomic.Int64 }

func (r *redirects) count(err error) {
	if err == nil {
		return
	}
	switch s := err.Error(); {
	case strings.HasPrefix(s, "MOVED "):
		r.moved.Add(1)
	case strings.HasPrefix(s, "ASK "):
		r.ask.Add(1)
	}
}

// install makes every node client of a cluster client count into r.
// (OnNewNode, called after the client exists, may miss the nodes it
// creates at once.)
func (r *redirects) install(o *redis.ClusterOptions) {
	o.NewClient = func(o *redis.Options) *redis.Client {
		n := redis.NewClient(o)
		n.AddHook(r)
		return n
	}
}

func (r *redirects) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *redirects) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		r.count(err) // a redirected command's own error is cleared for the retry
		return err
	}
}

func (r *redirects) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, cmd := range cmds {
			r.count(cmd.Err())
		}
		return err
	}
}

// A slot moves under load: the keys stay readable with their latest values
// throughout, the clients are redirected with ASK while the slot is half
// moved and with MOVED once it is, and the slot ends on another master.
func TestSlotMigration(t *testing.T) {
	t.Parallel()
	c := privateCluster(t, nil)
	ctx := t.Context()
	r := &redirects{}
	cc := c.NewClient(r.install).(*redis.ClusterClient)

	// The only keys in the cluster, so the migration picks their slot.
	const nkeys = 200
	key := func(i int) string { return fmt.Sprintf("{m}:%d", i) }
	for i := range nkeys {
		if err := cc.Set(ctx, key(i), 0, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	slot := int(cc.ClusterKeySlot(ctx, key(0)).Val())
	owner := func() string {
		t.Helper()
		for _, sh := range masters(t, c)[0].Client().ClusterShards(ctx).Val() {
			for _, r := range sh.Slots {
				if r.Start <= int64(slot) && int64(slot) <= r.End {
					for _, n := range sh.Nodes {
						if n.Role == "master" {
							return n.ID
						}
					}
				}
			}
		}
		t.Fatalf("slot %d has no owner", slot)
		return ""
	}
	from := owner()

	// The load: one writer per key, each INCR'ing its key and reading it
	// back; a read below the writer's last acknowledged value, or any
	// error, is a failure. Bounded in time and count.
	stop := make(chan struct{})
	var (
		wg   sync.WaitGroup
		ops  atomic.Int64
		errc = make(chan error, nkeys)
	)
	for i := range 20 {
		wg.Go(func() {
			var last int64
			for n := 0; n < 5000; n++ {
				select {
				case <-stop:
					return
				default:
				}
				k := key(i)
				v, err := cc.Incr(ctx, k).Result()
				if err == nil && v <= last {
					err = fmt.Errorf("INCR %s = %d after %d", k, v, last)
				}
				if err == nil {
					last = v
					var got int64
					got, err = cc.Get(ctx, k).Int64()
					if err == nil && got < last {
						err = fmt.Errorf("GET %s = %d after INCR gave %d", k, got, last)
					}
				}
				if err != nil {
					errc <- err
					return
				}
				ops.Add(1)
			}
		})
	}
	stopLoad := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopLoad()
	time.Sleep(50 * time.Millisecond)

	n := fault.SlotMigration(c, seeded(4))
	inject(t, n)
	if got := owner(); got != from {
		t.Errorf("the slot changed owner before Heal")
	}
	// Every key has moved: reading them all gets ASK from the source.
	ask := r.ask.Load()
	for i := range nkeys {
		if err := cc.Get(ctx, key(i)).Err(); err != nil {
			t.Fatalf("GET %s while its slot migrates: %v", key(i), err)
		}
	}
	if r.ask.Load()-ask < nkeys {
		t.Errorf("%d ASK replies for %d keys of a migrating slot, want one each", r.ask.Load()-ask, nkeys)
	}
	// A key that did not exist is created on the target.
	if err := cc.Set(ctx, "{m}:new", "v", 0).Err(); err != nil {
		t.Fatalf("SET of a new key while its slot migrates: %v", err)
	}
	time.Sleep(100 * time.Millisecond) // load during the migration
	moved := r.moved.Load()
	heal(t, n)
	to := owner()
	if to == from {
		t.Fatalf("slot %d still on %s after Heal", slot, from)
	}
	for i := range nkeys {
		if err := cc.Get(ctx, key(i)).Err(); err != nil {
			t.Fatalf("GET %s after the migration: %v", key(i), err)
		}
	}
	if got := cc.Get(ctx, "{m}:new").Val(); got != "v" {
		t.Errorf("GET {m}:new after the migration = %q, want v", got)
	}
	if r.moved.Load() == moved {
		t.Errorf("no MOVED after the slot moved: the client never asked the old owner")
	}
	stopLoad()
	select {
	case err := <-errc:
		t.Errorf("under the migration: %v", err)
	default:
	}
	t.Logf("slot %d moved; %d ops of load, %d ASK, %d MOVED", slot, ops.Load(), r.ask.Load(), r.moved.Load())
}

// One master cut off from the clients: its shard fails fast, the others
// work, the cluster does not fail it over, and Heal brings it back.
func TestNodePartition(t *testing.T) {
	t.Parallel()
	cp := &fault.ClusterProxies{}
	t.Cleanup(func() { cp.Close() })
	c := privateCluster(t, &memtest.ClusterOptions{Announce: cp.Announce})
	ctx := t.Context()
	for _, n := range c.Nodes() {
		p := cp.Proxy(n)
		if p == nil || n.AnnouncedAddr() != p.Addr() || n.Addr() == p.Addr() {
			t.Fatalf("node %s announces %s, want its proxy's address", n.Addr(), n.AnnouncedAddr())
		}
	}
	strict := c.NewClient(func(o *redis.ClusterOptions) {
		o.MaxRedirects = -1
		o.DialerRetries = 1
		o.ReadTimeout = 500 * time.Millisecond
	})
	keys := shardKeys(t, c, "p")
	setAll(t, strict, keys, "v")
	before := masters(t, c)

	n := fault.NodePartition(c, cp, seeded(5))
	inject(t, n)
	var cut []int
	for shard, k := range keys {
		start := time.Now()
		if err := strict.Get(ctx, k).Err(); err != nil {
			cut = append(cut, shard)
			if d := time.Since(start); d > time.Second {
				t.Errorf("GET on the cut shard failed after %v, want at once", d)
			}
		}
	}
	if len(cut) != 1 {
		t.Fatalf("shards %v unreachable, want one", cut)
	}
	if got := fault.Enabled(cp.Proxy(before[cut[0]])); got {
		t.Errorf("the cut master's proxy still accepts connections")
	}
	// Wait past the node timeout: the bus is not cut, so nothing fails over.
	time.Sleep(time.Second)
	if changed := changedShards(before, masters(t, c)); len(changed) != 0 {
		t.Errorf("the partition failed shards %v over", changed)
	}
	heal(t, n)
	for _, k := range keys {
		if got, err := strict.Get(ctx, k).Result(); got != "v" {
			t.Errorf("GET %s after Heal = %q, %v; want v", k, got, err)
		}
	}
}

// The server-wide nemeses reach every node of a cluster client.
func TestServerNemesesOnCluster(t *testing.T) {
	t.Parallel()
	c := privateCluster(t, nil)
	ctx := t.Context()
	cc := c.Client()
	keys := shardKeys(t, c, "k")

	t.Run("oom", func(t *testing.T) {
		setAll(t, cc, keys, "v")
		n := fault.RedisOOM(cc)
		inject(t, n)
		for _, k := range keys {
			if err := cc.Set(ctx, k+"new", "v", 0).Err(); err == nil || !strings.Contains(err.Error(), "OOM") {
				t.Errorf("SET %s under OOM: %v, want an OOM error", k, err)
			}
			if got := cc.Get(ctx, k).Val(); got != "v" {
				t.Errorf("GET %s under OOM = %q, want v", k, got)
			}
		}
		for _, node := range c.Nodes() { // replicas too
			if got := config(t, node.Client(), "maxmemory"); got != "1" {
				t.Errorf("node %s: maxmemory = %s under OOM, want 1", node.Addr(), got)
			}
		}
		heal(t, n)
		for _, node := range c.Nodes() {
			if got := config(t, node.Client(), "maxmemory"); got != "0" {
				t.Errorf("node %s: maxmemory = %s after Heal, want 0", node.Addr(), got)
			}
		}
		setAll(t, cc, keys, "v2")
	})

	t.Run("evict", func(t *testing.T) {
		var ns []string
		for i := range 300 {
			ns = append(ns, fmt.Sprintf("ns:{%d}", i))
		}
		setAll(t, cc, ns, "v")
		inject(t, fault.EvictKeys(cc, "ns:*", 0.5, seeded(6)))
		left := 0
		for _, k := range ns {
			if cc.Exists(ctx, k).Val() == 1 {
				left++
			}
		}
		if left != 150 {
			t.Errorf("%d of 300 ns:* keys left, want 150", left)
		}
		for _, k := range keys {
			if cc.Exists(ctx, k).Val() != 1 {
				t.Errorf("EvictKeys ns:* deleted %s", k)
			}
		}
	})

	t.Run("flush", func(t *testing.T) {
		inject(t, fault.Flush(cc))
		for _, m := range masters(t, c) {
			if got := m.Client().DBSize(ctx).Val(); got != 0 {
				t.Errorf("master %s: DBSIZE = %d after Flush, want 0", m.Addr(), got)
			}
		}
	})
	waitHealthy(t, c)
}

// The cluster nemeses leave the shared cluster alone.
func TestClusterNemesesShared(t *testing.T) {
	t.Parallel()
	c := memtest.Cluster(t)
	cp := &fault.ClusterProxies{}
	for _, n := range []fault.Nemesis{
		fault.ClusterCrashFailover(c, nil),
		fault.ClusterFailover(c, nil),
		fault.ClusterLossyFailover(c, nil),
		fault.SlotMigration(c, nil),
		fault.NodePartition(c, cp, nil),
	} {
		if err := n.Inject(t.Context()); !errors.Is(err, memtest.ErrShared) {
			t.Errorf("%s: Inject = %v, want ErrShared", n.Name(), err)
		}
		if err := n.Heal(t.Context()); err != nil {
			t.Errorf("%s: Heal = %v", n.Name(), err)
		}
	}
	waitHealthy(t, c)
}
