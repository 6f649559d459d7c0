package memtest_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/memstore/memstore/memtest"
)

// Not parallel at the top level, so that the two subtests have the
// -parallel slots to themselves and meet at the barrier.
func TestRedisIsolation(t *testing.T) {
	meet := newBarrier(2)
	var mu sync.Mutex
	addrs := map[string]string{}
	for _, name := range []string{"a", "b"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := memtest.Redis(t)
			ctx := t.Context()
			key := s.Prefix() + "same-key"
			if err := s.Client().Set(ctx, key, name, 0).Err(); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			addrs[name] = fmt.Sprintf("%s/%d%s", s.Addr(), s.DB(), s.Prefix())
			mu.Unlock()
			meet.wait(t)
			got, err := s.Client().Get(ctx, key).Result()
			if err != nil {
				t.Fatal(err)
			}
			if got != name {
				t.Errorf("GET %s = %q, want %q: the other test's write is visible", key, got, name)
			}
		})
	}
	t.Cleanup(func() {
		if addrs["a"] == addrs["b"] {
			t.Errorf("both tests got %s", addrs["a"])
		}
	})
}

func TestRedisCleanupStopsServer(t *testing.T) {
	t.Parallel()
	var pids []int
	t.Run("fixture", func(t *testing.T) {
		s := memtest.RedisWith(t, &memtest.RedisOptions{Private: true})
		first := s.PID()
		if first == 0 {
			t.Fatal("PID() = 0 for a private server")
		}
		pids = append(pids, first)
		if err := s.Restart(); err != nil {
			t.Fatal(err)
		}
		pids = append(pids, s.PID())
		if s.PID() == first {
			t.Errorf("PID after Restart = %d, the same as before", first)
		}
		if !gone(first) {
			t.Errorf("the server before Restart (PID %d) still runs", first)
		}
	})
	for _, pid := range pids {
		if !gone(pid) {
			t.Errorf("redis-server PID %d still runs after the test's cleanup", pid)
		}
	}
}

func TestRedisKillRestart(t *testing.T) {
	t.Parallel()
	s := memtest.RedisWith(t, &memtest.RedisOptions{Private: true})
	c := s.Client()
	ctx := t.Context()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	// A client that gives up at once (the default one retries its dials
	// for a second or so).
	fast := s.NewClient(func(o *redis.Options) { o.DialerRetries, o.MaxRetries = 1, -1 })
	if err := fast.Get(ctx, "k").Err(); err == nil {
		t.Fatal("GET on a killed server succeeded")
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	// The same client reconnects by itself; the data died with the process.
	if err := c.Get(ctx, "k").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET k after Kill and Restart: err = %v, want redis.Nil (data lost)", err)
	}
	if err := c.Set(ctx, "k", "v2", 0).Err(); err != nil {
		t.Fatalf("SET after Restart: %v", err)
	}
	if got := c.Get(ctx, "k").Val(); got != "v2" {
		t.Errorf("GET k = %q, want v2", got)
	}
}

func TestRedisPauseResume(t *testing.T) {
	t.Parallel()
	s := memtest.RedisWith(t, &memtest.RedisOptions{Private: true})
	c := s.NewClient(func(o *redis.Options) {
		o.ReadTimeout = 100 * time.Millisecond
		o.WriteTimeout = 100 * time.Millisecond
		o.MaxRetries = -1 // none: see the timeout itself
	})
	ctx := t.Context()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Pause(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := c.Ping(ctx).Err()
	var nerr net.Error
	if !errors.As(err, &nerr) || !nerr.Timeout() {
		t.Fatalf("PING on a paused server: err = %v, want a timeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the timeout took %v, want about 100ms", d)
	}
	if err := s.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after Resume: %v", err)
	}
	// A paused server must still be stopped by the cleanup (SIGKILL works on
	// a stopped process).
	if err := s.Pause(); err != nil {
		t.Fatal(err)
	}
}

func TestRedisArgs(t *testing.T) {
	t.Parallel()
	s := memtest.RedisWith(t, &memtest.RedisOptions{Args: []string{"--maxmemory", "1mb", "--maxmemory-policy", "noeviction"}})
	ctx := t.Context()
	got, err := s.Client().ConfigGet(ctx, "maxmemory").Result()
	if err != nil {
		t.Fatal(err)
	}
	if got["maxmemory"] != "1048576" {
		t.Errorf("maxmemory = %q, want 1048576", got["maxmemory"])
	}
	// The fixture's own settings hold too: no persistence.
	if got := s.Client().ConfigGet(ctx, "save").Val()["save"]; got != "" {
		t.Errorf("save = %q, want empty", got)
	}
	if got := s.Client().ConfigGet(ctx, "appendonly").Val()["appendonly"]; got != "no" {
		t.Errorf("appendonly = %q, want no", got)
	}
}

func TestStartRedisNotInstalled(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := memtest.StartRedis(context.Background(), t.TempDir(), nil)
	if !errors.Is(err, memtest.ErrNotInstalled) {
		t.Fatalf("err = %v, want ErrNotInstalled", err)
	}
	if want := "sudo apt-get install -y redis-server postgresql"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name the install command %q", err, want)
	}
}

// sharedServer starts a private redis-server to play the shared one and
// points MEMSTORE_REDIS_URL at it for the rest of the test (so the test
// cannot be parallel).
func sharedServer(t *testing.T, opts *memtest.RedisOptions) *memtest.RedisServer {
	t.Helper()
	srv, err := memtest.StartRedis(t.Context(), t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	t.Setenv(memtest.EnvRedisURL, srv.URL())
	return srv
}

func dbClient(t *testing.T, srv *memtest.RedisServer, db int) *redis.Client {
	t.Helper()
	o := srv.Options()
	o.DB = db
	c := redis.NewClient(o)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRedisSharedURL(t *testing.T) {
	srv := sharedServer(t, nil)
	ctx := t.Context()
	for db := 1; db < 16; db++ {
		if err := dbClient(t, srv, db).Set(ctx, "seed", db, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}

	var db int
	t.Run("test", func(t *testing.T) {
		s := memtest.Redis(t)
		if !s.Shared() || s.PID() != 0 || s.Prefix() != "" {
			t.Fatalf("Shared() = %v, PID() = %d, Prefix() = %q; want true, 0, empty", s.Shared(), s.PID(), s.Prefix())
		}
		db = s.DB()
		if db < 1 || db > 15 {
			t.Fatalf("DB() = %d, want 1..15", db)
		}
		if s.Addr() != srv.Addr() {
			t.Errorf("Addr() = %s, want the shared server's %s", s.Addr(), srv.Addr())
		}
		if n := s.Client().DBSize(ctx).Val(); n != 0 {
			t.Errorf("DBSIZE = %d at the start, want 0: the seed was not flushed", n)
		}
		other := 1 + db%15
		if got := dbClient(t, srv, other).Get(ctx, "seed").Val(); got == "" {
			t.Errorf("database %d lost its seed: the fixture flushed more than its own database", other)
		}
		if err := s.Client().Set(ctx, "k", "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
		// A second fixture at the same time gets another database.
		s2 := memtest.Redis(t)
		if s2.DB() == db {
			t.Errorf("two fixtures share database %d", db)
		}
		// NewClient and Options stay in the test's database.
		if got := s.NewClient(nil).Get(ctx, "k").Val(); got != "v" {
			t.Errorf("NewClient: GET k = %q, want v", got)
		}
		for name, f := range map[string]func() error{"Kill": s.Kill, "Restart": s.Restart, "Pause": s.Pause, "Resume": s.Resume} {
			if err := f(); !errors.Is(err, memtest.ErrShared) {
				t.Errorf("%s() = %v, want ErrShared", name, err)
			}
		}
		// Private on request, even with the URL set.
		if p := memtest.RedisWith(t, &memtest.RedisOptions{Private: true}); p.Shared() || p.PID() == 0 {
			t.Errorf("RedisOptions.Private: got a shared server")
		}
	})
	if n := dbClient(t, srv, db).DBSize(ctx).Val(); n != 0 {
		t.Errorf("database %d holds %d keys after the test, want 0", db, n)
	}
	if n := srv.Client().Keys(ctx, "memtest:lease:*").Val(); len(n) != 0 {
		t.Errorf("leases left after the test: %v", n)
	}
}

func TestRedisSharedPrefix(t *testing.T) {
	// One database only: nothing to SELECT, so the fixture isolates by prefix.
	srv := sharedServer(t, &memtest.RedisOptions{Args: []string{"--databases", "1"}})
	ctx := t.Context()
	if err := srv.Client().Set(ctx, "someone-else", "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	var prefix string
	t.Run("test", func(t *testing.T) {
		s := memtest.Redis(t)
		prefix = s.Prefix()
		if !s.Shared() || prefix == "" || s.DB() != 0 {
			t.Fatalf("Shared() = %v, Prefix() = %q, DB() = %d; want true, a prefix, 0", s.Shared(), prefix, s.DB())
		}
		for i := range 3 {
			if err := s.Client().Set(ctx, fmt.Sprint(prefix, i), i, 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
		if p2 := memtest.Redis(t).Prefix(); p2 == prefix {
			t.Errorf("two fixtures share prefix %q", prefix)
		}
	})
	if keys := srv.Client().Keys(ctx, prefix+"*").Val(); len(keys) != 0 {
		t.Errorf("keys under %q left after the test: %v", prefix, keys)
	}
	if got := srv.Client().Get(ctx, "someone-else").Val(); got != "x" {
		t.Errorf("a key outside the prefix was deleted")
	}
}

// A redis-server started on a port another server holds fails with
// "address in use" (and the fixture tries another port): the other server
// answering on the address must not pass for it. Before the check, a
// cluster node was once handed a neighbour's address and its setup failed.
func TestStartOnATakenPortFails(t *testing.T) {
	taken := memtest.RedisWith(t, &memtest.RedisOptions{Private: true})
	_, port, err := net.SplitHostPort(taken.Addr())
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	s, err := memtest.StartOnPort(t.Context(), t.TempDir(), p)
	if err == nil {
		s.Close()
		t.Fatalf("a second redis-server on taken port %d started without an error", p)
	}
	if !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("err %v, want address already in use", err)
	}
}
