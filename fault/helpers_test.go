package fault_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/memstore/memstore/fault"
	"github.com/memstore/memstore/memtest"
)

func inject(t testing.TB, n fault.Nemesis) {
	t.Helper()
	if err := n.Inject(t.Context()); err != nil {
		t.Fatalf("%s: Inject: %v", n.Name(), err)
	}
}

func heal(t testing.TB, n fault.Nemesis) {
	t.Helper()
	if err := n.Heal(t.Context()); err != nil {
		t.Fatalf("%s: Heal: %v", n.Name(), err)
	}
}

// privateRedis is a redis-server of the test's own, which the faults may
// kill, pause and reconfigure.
func privateRedis(t testing.TB, args ...string) *memtest.RedisServer {
	t.Helper()
	return memtest.RedisWith(t, &memtest.RedisOptions{Private: true, Args: args})
}

// strictClient gives up at the first error and waits for no reply longer
// than timeout, so a fault shows in the command that meets it.
func strictClient(rs *memtest.RedisServer, addr string, timeout time.Duration) redis.UniversalClient {
	return rs.NewClient(func(o *redis.Options) {
		if addr != "" {
			o.Addr = addr
		}
		o.MaxRetries = -1
		o.DialTimeout = timeout
		o.ReadTimeout = timeout
		o.WriteTimeout = timeout
	})
}

func config(t testing.TB, c redis.UniversalClient, param string) string {
	t.Helper()
	v, err := c.ConfigGet(context.WithoutCancel(t.Context()), param).Result()
	if err != nil {
		t.Fatal(err)
	}
	return v[param]
}

func ping(t testing.TB, c redis.UniversalClient) time.Duration {
	t.Helper()
	start := time.Now()
	if err := c.Ping(t.Context()).Err(); err != nil {
		t.Fatalf("PING: %v", err)
	}
	return time.Since(start)
}
