package memtest_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/memstore/memstore/memtest"
)

// Every one of the 16384 slots takes a write and gives it back, and the
// shards are what the fixture promises: three masters, each with a replica
// that has caught up.
func TestClusterEverySlotWritable(t *testing.T) {
	t.Parallel()
	c := memtest.Cluster(t)
	ctx := t.Context()
	cc := c.Client()
	key := func(slot int) string { return c.Prefix() + "{" + memtest.KeyForSlot(slot) + "}" }
	if _, err := cc.Pipelined(ctx, func(p redis.Pipeliner) error {
		for slot := range 16384 {
			p.Set(ctx, key(slot), slot, 0)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	cmds, err := cc.Pipelined(ctx, func(p redis.Pipeliner) error {
		for slot := range 16384 {
			p.Get(ctx, key(slot))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for slot, cmd := range cmds {
		if got := cmd.(*redis.StringCmd).Val(); got != fmt.Sprint(slot) {
			t.Fatalf("GET in slot %d = %q, want %d", slot, got, slot)
		}
	}
	for _, s := range cc.ClusterShards(ctx).Val() {
		t.Logf("shard %v", s.Slots)
	}

	if got := c.Shards(); got != 3 {
		t.Errorf("Shards() = %d, want 3", got)
	}
	if got := len(c.Nodes()); got != 6 {
		t.Errorf("%d nodes, want 6", got)
	}
	if err := c.WaitHealthy(ctx); err != nil {
		t.Fatal(err)
	}
	seen := map[*memtest.ClusterNode]bool{}
	for i := range c.Shards() {
		m, rs, err := c.Shard(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) != 1 {
			t.Errorf("shard %d: %d replicas, want 1", i, len(rs))
		}
		for _, n := range append(rs, m) {
			if n.Shard() != i {
				t.Errorf("node %s of shard %d says Shard() = %d", n.Addr(), i, n.Shard())
			}
			if seen[n] {
				t.Errorf("node %s in two shards", n.Addr())
			}
			seen[n] = true
		}
		if got := roleOf(t, rs[0]); got != "slave" {
			t.Errorf("shard %d: replica %s has role %s", i, rs[0].Addr(), got)
		}
		if got := roleOf(t, m); got != "master" {
			t.Errorf("shard %d: master %s has role %s", i, m.Addr(), got)
		}
	}
}

func roleOf(t *testing.T, n *memtest.ClusterNode) string {
	t.Helper()
	v, err := n.Client().Do(t.Context(), "ROLE").Slice()
	if err != nil {
		t.Fatalf("ROLE on %s: %v", n.Addr(), err)
	}
	return v[0].(string)
}

// Not parallel at the top level, so that the two subtests have the
// -parallel slots to themselves and meet at the barrier.
func TestClusterIsolation(t *testing.T) {
	meet := newBarrier(2)
	var mu sync.Mutex
	prefixes := map[string]string{}
	t.Run("group", func(t *testing.T) { // returns when both have ended
		testClusterIsolation(t, meet, &mu, prefixes)
	})
	if prefixes["a"] == prefixes["b"] {
		t.Fatalf("both tests got prefix %q", prefixes["a"])
	}
	// Their keys went with them.
	c := memtest.Cluster(t)
	for _, p := range prefixes {
		if keys := keysOnMasters(t, c, p+"*"); len(keys) != 0 {
			t.Errorf("keys under %q left after the test: %v", p, keys)
		}
	}
}

func testClusterIsolation(t *testing.T, meet *barrier, mu *sync.Mutex, prefixes map[string]string) {
	for _, name := range []string{"a", "b"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := memtest.Cluster(t)
			if !c.Shared() || c.Prefix() == "" || strings.ContainsAny(c.Prefix(), "{}") {
				t.Fatalf("Shared() = %v, Prefix() = %q; want true and a prefix without braces", c.Shared(), c.Prefix())
			}
			ctx := t.Context()
			for i := range 10 {
				if err := c.Client().Set(ctx, fmt.Sprintf("%sk{%d}", c.Prefix(), i), name, 0).Err(); err != nil {
					t.Fatal(err)
				}
			}
			mu.Lock()
			prefixes[name] = c.Prefix()
			mu.Unlock()
			meet.wait(t)
			for i := range 10 {
				key := fmt.Sprintf("%sk{%d}", c.Prefix(), i)
				if got := c.Client().Get(ctx, key).Val(); got != name {
					t.Errorf("GET %s = %q, want %q: the other test's write is visible", key, got, name)
				}
			}
		})
	}
}

func keysOnMasters(t *testing.T, c *memtest.RedisCluster, pattern string) []string {
	t.Helper()
	var (
		mu   sync.Mutex
		keys []string
	)
	err := c.Client().(*redis.ClusterClient).ForEachMaster(t.Context(), func(ctx context.Context, n *redis.Client) error {
		ks, err := n.Keys(ctx, pattern).Result()
		mu.Lock()
		keys = append(keys, ks...)
		mu.Unlock()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// The shared cluster is everyone's: its processes are not the test's to
// control.
func TestClusterSharedRefusesControl(t *testing.T) {
	t.Parallel()
	c := memtest.Cluster(t)
	ctx := t.Context()
	n := c.Nodes()[0]
	if n.PID() == 0 {
		t.Error("PID() = 0 on the shared cluster")
	}
	for name, f := range map[string]func() error{
		"Kill": n.Kill, "Restart": n.Restart, "Pause": n.Pause, "Resume": n.Resume,
		"Failover":      func() error { return c.Failover(ctx, 0) },
		"CrashFailover": func() error { return c.CrashFailover(ctx, 0) },
		"KillMaster":    func() error { _, err := c.KillMaster(ctx, 0); return err },
	} {
		if err := f(); !errors.Is(err, memtest.ErrShared) {
			t.Errorf("%s() = %v, want ErrShared", name, err)
		}
	}
	if err := c.WaitHealthy(ctx); err != nil {
		t.Fatal(err)
	}
}

// keyOn returns a key that the cluster client sends to node n.
func keyOn(t *testing.T, c *memtest.RedisCluster, n *memtest.ClusterNode, name string) string {
	t.Helper()
	cc := c.Client().(*redis.ClusterClient)
	for i := range 10000 {
		key := fmt.Sprintf("%s%s{%d}", c.Prefix(), name, i)
		m, err := cc.MasterForKey(t.Context(), key)
		if err != nil {
			t.Fatal(err)
		}
		if m.Options().Addr == n.AnnouncedAddr() {
			return key
		}
	}
	t.Fatalf("no key on %s", n.Addr())
	return ""
}

// A node killed and restarted rejoins with its ID (nodes.conf survives in
// its directory); a paused one times out and comes back; the cleanup stops
// every node. The node timeout is long, so that nothing here is failed over.
func TestClusterNodeControls(t *testing.T) {
	t.Parallel()
	var pids []int
	t.Run("fixture", func(t *testing.T) {
		c := memtest.ClusterWith(t, &memtest.ClusterOptions{NodeTimeout: 30 * time.Second})
		ctx := t.Context()
		if c.Shared() || c.Prefix() != "" {
			t.Fatalf("Shared() = %v, Prefix() = %q; want a private cluster", c.Shared(), c.Prefix())
		}
		for _, n := range c.Nodes() {
			pids = append(pids, n.PID())
		}
		m0, rs0, err := c.Shard(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		m1, _, err := c.Shard(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		k0, k1 := keyOn(t, c, m0, "k"), keyOn(t, c, m1, "k")
		for _, k := range []string{k0, k1} {
			if err := c.Client().Set(ctx, k, "v", 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.WaitHealthy(ctx); err != nil { // replicated
			t.Fatal(err)
		}

		t.Run("replica", func(t *testing.T) {
			r := rs0[0]
			id, pid := r.ID(), r.PID()
			if err := r.Kill(); err != nil {
				t.Fatal(err)
			}
			if !gone(pid) {
				t.Fatalf("replica PID %d runs after Kill", pid)
			}
			if err := r.Restart(); err != nil {
				t.Fatal(err)
			}
			pids = append(pids, r.PID())
			if err := c.WaitHealthy(ctx); err != nil {
				t.Fatal(err)
			}
			if r.ID() != id || nodeID(t, r) != id {
				t.Errorf("restarted replica has ID %s, want %s", nodeID(t, r), id)
			}
			// It copied its master's data again.
			cn := r.Client().Conn()
			defer cn.Close()
			if err := cn.ReadOnly(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			if got := cn.Get(ctx, k0).Val(); got != "v" {
				t.Errorf("GET %s on the restarted replica = %q, want v", k0, got)
			}
		})

		t.Run("master", func(t *testing.T) {
			id := m0.ID()
			if err := m0.Kill(); err != nil {
				t.Fatal(err)
			}
			if err := m0.Restart(); err != nil {
				t.Fatal(err)
			}
			pids = append(pids, m0.PID())
			if err := c.WaitHealthy(ctx); err != nil {
				t.Fatal(err)
			}
			m, _, err := c.Shard(ctx, 0)
			if err != nil {
				t.Fatal(err)
			}
			if m != m0 || nodeID(t, m0) != id {
				t.Errorf("shard 0's master is %s (ID %s), want the restarted %s (ID %s)", m.Addr(), nodeID(t, m), m0.Addr(), id)
			}
			// Without persistence, a master restarted before a failover
			// serves its slots empty; its replica copied that too.
			if err := c.Client().Get(ctx, k0).Err(); !errors.Is(err, redis.Nil) {
				t.Errorf("GET %s after its master's restart: %v, want redis.Nil (data lost)", k0, err)
			}
			if got := c.Client().Get(ctx, k1).Val(); got != "v" {
				t.Errorf("GET %s on another shard = %q, want v", k1, got)
			}
			if err := c.Client().Set(ctx, k0, "v2", 0).Err(); err != nil {
				t.Errorf("SET after the restart: %v", err)
			}
		})

		t.Run("pause", func(t *testing.T) {
			m, _, err := c.Shard(ctx, 1)
			if err != nil {
				t.Fatal(err)
			}
			strict := c.NewClient(func(o *redis.ClusterOptions) {
				o.ReadTimeout = 100 * time.Millisecond
				o.WriteTimeout = 100 * time.Millisecond
				o.MaxRedirects = -1 // no retries: see the timeout itself
			})
			if err := strict.Get(ctx, k1).Err(); err != nil {
				t.Fatal(err)
			}
			if err := m.Pause(); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			err = strict.Get(ctx, k1).Err()
			var nerr net.Error
			if !errors.As(err, &nerr) || !nerr.Timeout() {
				t.Errorf("GET on a paused master: %v, want a timeout", err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("the timeout took %v, want about 100ms", d)
			}
			if err := strict.Get(ctx, k0).Err(); err != nil {
				t.Errorf("GET on another shard while one master is paused: %v", err)
			}
			if err := m.Resume(); err != nil {
				t.Fatal(err)
			}
			if err := strict.Get(ctx, k1).Err(); err != nil {
				t.Errorf("GET after Resume: %v", err)
			}
			if err := c.WaitHealthy(ctx); err != nil {
				t.Fatal(err)
			}
			// The cleanup must stop a paused node too.
			if err := m.Pause(); err != nil {
				t.Fatal(err)
			}
		})
	})
	for _, pid := range pids {
		if !waitGone(pid, 5*time.Second) {
			t.Errorf("redis-server PID %d still runs after the test's cleanup", pid)
		}
	}
}

func nodeID(t *testing.T, n *memtest.ClusterNode) string {
	t.Helper()
	id, err := n.Client().Do(t.Context(), "CLUSTER", "MYID").Text()
	if err != nil {
		t.Fatal(err)
	}
	return id
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

// countingClient is a cluster client of the test's own (not one the
// fixture tells to reload after a failover), whose redirections r counts.
func countingClient(t *testing.T, c *memtest.RedisCluster) (*redis.ClusterClient, *redirects) {
	t.Helper()
	r := &redirects{}
	o := c.Options()
	// Not OnNewNode: called after the client exists, it may miss the
	// nodes the client creates at once.
	o.NewClient = func(o *redis.Options) *redis.Client {
		n := redis.NewClient(o)
		n.AddHook(r)
		return n
	}
	cc := redis.NewClusterClient(o)
	t.Cleanup(func() { cc.Close() })
	return cc, r
}

// A manual failover and a crash failover each give a shard a new master,
// lose no write that had reached the replica, and a cluster client carries
// on by itself, after the MOVED that tells it.
func TestClusterFailovers(t *testing.T) {
	t.Parallel()
	c := memtest.ClusterWith(t, &memtest.ClusterOptions{Private: true})
	ctx := t.Context()

	for _, tc := range []struct {
		name     string
		shard    int
		failover func(context.Context, int) error
	}{
		{"manual", 0, c.Failover},
		{"crash", 1, c.CrashFailover},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old, rs, err := c.Shard(ctx, tc.shard)
			if err != nil {
				t.Fatal(err)
			}
			cc, r := countingClient(t, c)
			key := keyOn(t, c, old, tc.name)
			if err := cc.Set(ctx, key, "before", 0).Err(); err != nil {
				t.Fatal(err)
			}
			if err := c.WaitHealthy(ctx); err != nil { // the replica has it
				t.Fatal(err)
			}
			start := time.Now()
			if err := tc.failover(ctx, tc.shard); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s failover of shard %d: %v", tc.name, tc.shard, time.Since(start))
			m, now, err := c.Shard(ctx, tc.shard)
			if err != nil {
				t.Fatal(err)
			}
			if m != rs[0] || len(now) != 1 || now[0] != old {
				t.Fatalf("after the failover shard %d has master %s and replicas %v; want master %s, replica %s", tc.shard, m.Addr(), now, rs[0].Addr(), old.Addr())
			}
			if got := roleOf(t, old); got != "slave" {
				t.Errorf("the old master's role is %s, want slave", got)
			}
			if got, err := cc.Get(ctx, key).Result(); got != "before" {
				t.Errorf("GET %s after the failover = %q, %v; want before", key, got, err)
			}
			if err := cc.Set(ctx, key, "after", 0).Err(); err != nil {
				t.Errorf("SET after the failover: %v", err)
			}
			if got := r.moved.Load(); got == 0 {
				t.Errorf("no MOVED: the client never went to the old master")
			}
			if err := c.Client().Set(ctx, key, "fixture", 0).Err(); err != nil {
				t.Errorf("SET through the fixture's client: %v", err)
			}
		})
	}
}

func TestStartClusterNotInstalled(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := memtest.StartCluster(context.Background(), t.TempDir(), nil)
	if !errors.Is(err, memtest.ErrNotInstalled) {
		t.Fatalf("err = %v, want ErrNotInstalled", err)
	}
	if want := "sudo apt-get install -y redis-server postgresql"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name the install command %q", err, want)
	}
}
