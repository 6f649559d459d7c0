package memtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/memstore/memstore/memtest"
)

// A crash failover and a forced one each move the master to the other
// server, keep what had reached the replica, and the failover clients,
// the fixture's and one made before the failovers, follow.
func TestSentinelFailovers(t *testing.T) {
	t.Parallel()
	start := time.Now()
	s := memtest.Sentinel(t)
	t.Logf("master, replica and three sentinels ready in %v", time.Since(start))
	ctx := t.Context()
	other := s.NewClient(func(o *redis.FailoverOptions) { o.MaxRetries = 5 })
	servers := s.Servers()
	for _, step := range []struct {
		name     string
		failover func(context.Context) error
		want     *memtest.RedisServer
	}{
		// Manual first: the automatic failover after the crash waits twice
		// the failover timeout after the last one began, where a manual
		// one after a crash waits until the Sentinels have fresh INFO from
		// the restarted server, up to ten seconds.
		{"manual", s.Failover, servers[1]},
		{"crash", s.CrashFailover, servers[0]},
	} {
		t.Run(step.name, func(t *testing.T) {
			old, err := s.Master(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if old == step.want {
				t.Fatalf("the master is already %s", old.Addr())
			}
			c := s.Client()
			if err := c.Set(ctx, step.name, "before", 0).Err(); err != nil {
				t.Fatal(err)
			}
			if n, err := c.Do(ctx, "WAIT", 1, 5000).Int(); err != nil || n != 1 {
				t.Fatalf("WAIT 1: %d, %v; want the replica to have the write", n, err)
			}
			start := time.Now()
			if err := step.failover(ctx); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s failover from %s to %s: %v", step.name, old.Addr(), step.want.Addr(), time.Since(start))
			m, err := s.Master(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if m != step.want {
				t.Fatalf("master after the failover: %s, want %s", m.Addr(), step.want.Addr())
			}
			if role := old.Client().Do(ctx, "ROLE").Val().([]any)[0]; role != "slave" {
				t.Errorf("the old master's role is %v, want slave", role)
			}
			for i, c := range []redis.UniversalClient{s.Client(), other} {
				if got, err := c.Get(ctx, step.name).Result(); got != "before" {
					t.Errorf("client %d: GET %s = %q, %v; want before", i, step.name, got, err)
				}
			}
			for i, c := range []redis.UniversalClient{s.Client(), other} {
				if err := c.Set(ctx, step.name+"-after", "v", 0).Err(); err != nil {
					t.Errorf("client %d: SET after the failover: %v", i, err)
				}
			}
		})
	}
}
