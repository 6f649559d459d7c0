package fault_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/memstore/memstore/fault"
	"github.com/memstore/memstore/memtest"
)

func TestRedisKill(t *testing.T) {
	t.Parallel()
	rs := privateRedis(t)
	ctx := t.Context()
	c := strictClient(rs, "", time.Second)
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	pid := rs.PID()

	n := fault.RedisKill(rs)
	if got, want := n.Name(), "redis-kill"; got != want {
		t.Errorf("Name() = %q, want %q", got, want)
	}
	inject(t, n)
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("PING succeeded on a killed server")
	}
	heal(t, n)
	if rs.PID() == pid {
		t.Errorf("PID %d unchanged: not restarted", pid)
	}
	ping(t, rs.Client())
	if err := rs.Client().Get(ctx, "k").Err(); !errors.Is(err, redis.Nil) {
		t.Errorf("GET k after kill and restart: %v, want redis.Nil (data lost)", err)
	}

	// A second Heal must not restart the server again.
	pid = rs.PID()
	heal(t, n)
	if rs.PID() != pid {
		t.Errorf("second Heal restarted the server")
	}
}

func TestRedisPause(t *testing.T) {
	t.Parallel()
	rs := privateRedis(t)
	ctx := t.Context()
	c := strictClient(rs, "", 100*time.Millisecond)
	ping(t, c)

	n := fault.RedisPause(rs)
	inject(t, n)
	err := c.Ping(ctx).Err()
	var nerr interface{ Timeout() bool }
	if !errors.As(err, &nerr) || !nerr.Timeout() {
		t.Fatalf("PING on a paused server: %v, want a timeout", err)
	}
	heal(t, n)
	ping(t, rs.Client())
	ping(t, c)
}

// On a shared server the process faults refuse and leave it alone.
func TestRedisProcessFaultsShared(t *testing.T) {
	srv := privateRedis(t)
	t.Setenv(memtest.EnvRedisURL, srv.URL())
	rs := memtest.Redis(t)
	if !rs.Shared() {
		t.Fatal("memtest.Redis with MEMSTORE_REDIS_URL set is not shared")
	}
	pid := srv.PID()
	for _, n := range []fault.Nemesis{fault.RedisKill(rs), fault.RedisPause(rs)} {
		if err := n.Inject(t.Context()); !errors.Is(err, memtest.ErrShared) {
			t.Errorf("%s: Inject = %v, want ErrShared", n.Name(), err)
		}
		if err := n.Heal(t.Context()); err != nil {
			t.Errorf("%s: Heal = %v, want nil", n.Name(), err)
		}
	}
	if srv.PID() != pid {
		t.Error("the shared server was restarted")
	}
	ping(t, rs.Client())
}

func TestRedisOOM(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"defaults", nil},
		// Had maxmemory gone to 1 byte before the policy to noeviction,
		// or allkeys-lru come back before maxmemory, every key would go.
		{"lru", []string{"--maxmemory", "100mb", "--maxmemory-policy", "allkeys-lru"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rs := privateRedis(t, tc.args...)
			ctx := t.Context()
			c := rs.Client()
			fill(t, c, "k:", 100, 10)
			maxmemory, policy := config(t, c, "maxmemory"), config(t, c, "maxmemory-policy")

			n := fault.RedisOOM(c)
			inject(t, n)
			err := c.Set(ctx, "new", "v", 0).Err()
			if err == nil || !strings.Contains(err.Error(), "OOM") {
				t.Errorf("SET under OOM: %v, want an OOM error", err)
			}
			if v, err := c.Get(ctx, "k:1").Result(); err != nil || v == "" {
				t.Errorf("GET under OOM = %q, %v; want the value", v, err)
			}
			heal(t, n)
			if err := c.Set(ctx, "new", "v", 0).Err(); err != nil {
				t.Errorf("SET after Heal: %v", err)
			}
			if got := config(t, c, "maxmemory"); got != maxmemory {
				t.Errorf("maxmemory after Heal = %s, want %s", got, maxmemory)
			}
			if got := config(t, c, "maxmemory-policy"); got != policy {
				t.Errorf("maxmemory-policy after Heal = %s, want %s", got, policy)
			}
			if got, want := c.DBSize(ctx).Val(), int64(101); got != want {
				t.Errorf("DBSIZE = %d, want %d: keys were evicted", got, want)
			}
		})
	}
}

func TestRedisEvictLRU(t *testing.T) {
	t.Parallel()
	rs := privateRedis(t)
	ctx := t.Context()
	c := rs.Client()
	fill(t, c, "old:", 2000, 1024)

	n := fault.RedisEvictLRU(c, 0)
	inject(t, n)
	fill(t, c, "new:", 2000, 1024)
	if size := c.DBSize(ctx).Val(); size >= 4000 {
		t.Errorf("DBSIZE = %d after 4000 writes under allkeys-lru at the memory in use, want keys evicted", size)
	}
	heal(t, n)
	if got := config(t, c, "maxmemory"); got != "0" {
		t.Errorf("maxmemory after Heal = %s, want 0", got)
	}
	if got := config(t, c, "maxmemory-policy"); got != "noeviction" {
		t.Errorf("maxmemory-policy after Heal = %s, want noeviction", got)
	}
	before := c.DBSize(ctx).Val()
	fill(t, c, "after:", 2000, 1024)
	if got := c.DBSize(ctx).Val(); got != before+2000 {
		t.Errorf("DBSIZE after Heal and 2000 writes = %d, want %d", got, before+2000)
	}
}

// fill writes n keys prefix0..prefix(n-1) of size bytes each.
func fill(t testing.TB, c redis.UniversalClient, prefix string, n, size int) {
	t.Helper()
	v := strings.Repeat("x", size)
	_, err := c.Pipelined(t.Context(), func(p redis.Pipeliner) error {
		for i := range n {
			p.Set(t.Context(), prefix+strconv.Itoa(i), v, 0)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestEvictKeys(t *testing.T) {
	t.Parallel()
	rs := privateRedis(t)
	ctx := t.Context()
	c := rs.Client()
	populate := func() {
		t.Helper()
		if err := c.FlushDB(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		fill(t, c, "ns:", 100, 1)
		fill(t, c, "other:", 10, 1)
		if err := c.HSet(ctx, "ns:hash", "f", "v").Err(); err != nil { // a memstore entry is a hash
			t.Fatal(err)
		}
	}
	keys := func(pattern string) []string {
		t.Helper()
		ks, err := c.Keys(ctx, pattern).Result()
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(ks)
		return ks
	}

	for _, tc := range []struct {
		fraction float64
		want     int // ns:* keys left of 101
	}{
		{0, 101},
		{0.3, 71}, // round(30.3) deleted
		{0.5, 50}, // round(50.5) = 51 deleted
		{1, 0},
	} {
		populate()
		n := fault.EvictKeys(c, "ns:*", tc.fraction, rand.New(rand.NewPCG(1, 2)))
		inject(t, n)
		if got := len(keys("ns:*")); got != tc.want {
			t.Errorf("fraction %v: %d ns:* keys left, want %d", tc.fraction, got, tc.want)
		}
		if got := len(keys("other:*")); got != 10 {
			t.Errorf("fraction %v: %d other:* keys left, want all 10", tc.fraction, got)
		}
		heal(t, n)
	}

	// The same seed over the same keys deletes the same ones.
	var left [2][]string
	for i := range left {
		populate()
		inject(t, fault.EvictKeys(c, "ns:*", 0.3, rand.New(rand.NewPCG(7, 7))))
		left[i] = keys("ns:*")
	}
	if !slices.Equal(left[0], left[1]) {
		t.Errorf("same seed, different keys left:\n%v\n%v", left[0], left[1])
	}

	for _, bad := range []float64{-0.1, 1.5} {
		if err := fault.EvictKeys(c, "ns:*", bad, nil).Inject(ctx); err == nil {
			t.Errorf("fraction %v: Inject succeeded", bad)
		}
	}
}

func TestFlush(t *testing.T) {
	t.Parallel()
	rs := privateRedis(t)
	c := rs.Client()
	fill(t, c, "k", 10, 1)
	n := fault.Flush(c)
	inject(t, n)
	if got := c.DBSize(t.Context()).Val(); got != 0 {
		t.Errorf("DBSIZE after Flush = %d, want 0", got)
	}
	heal(t, n)
}

func ExampleEvictKeys() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rs, err := memtest.StartRedis(ctx, "", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer rs.Close()
	c := rs.Client()
	for i := range 10 {
		c.Set(ctx, fmt.Sprintf("ns:{%d}", i), "v", 0)
	}
	c.Set(ctx, "other", "v", 0)

	n := fault.EvictKeys(c, "ns:*", 0.4, rand.New(rand.NewPCG(1, 1)))
	if err := n.Inject(ctx); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(c.Keys(ctx, "ns:*").Val()), "ns keys left;", c.Exists(ctx, "other").Val(), "other")
	// Output: 6 ns keys left; 1 other
}
