package memtest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/memstore/memstore/internal/randhex"
)

// A shared server is split among tests, which may run in many test binaries
// at once (go test runs packages in parallel) or on many machines. A test
// owns a database index while it holds a lease on it: a key in the database
// the URL names, set with NX and an expiry that a goroutine renews, so the
// index of a test binary that crashed frees itself after leaseTTL.
const (
	leaseTTL     = 60 * time.Second
	leaseRenew   = leaseTTL / 3
	leaseWaitMax = 2 * time.Minute // then fail: too many tests for the databases
	leaseKeyFmt  = "memtest:lease:db:%d"
)

var (
	renewLease = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0`)
	releaseLease = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
end
return 0`)
)

// openSharedRedis isolates a test on the shared server at rawURL: a leased
// database index of its own, flushed before and after; or, where there is no
// other database to select, a key prefix whose keys are deleted before and
// after.
func openSharedRedis(ctx context.Context, rawURL string) (*RedisServer, error) {
	base, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvRedisURL, err)
	}
	base.ContextTimeoutEnabled = true // as memstore requires
	admin := redis.NewClient(base)
	if err := admin.Ping(ctx).Err(); err != nil {
		admin.Close()
		return nil, fmt.Errorf("shared Redis %s (%s): %w", base.Addr, EnvRedisURL, err)
	}
	s, err := leaseDB(ctx, admin, base)
	if errors.Is(err, errNoSelect) {
		s, err = prefixIsolation(ctx, admin, base)
	}
	if err != nil {
		admin.Close()
		return nil, err
	}
	return s, nil
}

var errNoSelect = errors.New("no database to select")

// databases asks the server how many databases it has; 16 (Redis's default)
// when CONFIG is not allowed.
func databases(ctx context.Context, c *redis.Client) int {
	v, err := c.ConfigGet(ctx, "databases").Result()
	if err != nil {
		return 16
	}
	n, err := strconv.Atoi(v["databases"])
	if err != nil {
		return 16
	}
	return n
}

func leaseDB(ctx context.Context, admin *redis.Client, base *redis.Options) (*RedisServer, error) {
	n := databases(ctx, admin)
	if n < 2 {
		return nil, errNoSelect
	}
	token := randhex.String(16)
	deadline := time.Now().Add(leaseWaitMax)
	for {
		for db := 0; db < n; db++ {
			if db == base.DB {
				continue // holds the leases
			}
			key := fmt.Sprintf(leaseKeyFmt, db)
			ok, err := admin.SetNX(ctx, key, token, leaseTTL).Result()
			if err != nil {
				return nil, fmt.Errorf("shared Redis %s: lease database %d: %w", base.Addr, db, err)
			}
			if !ok {
				continue
			}
			s, err := useLeasedDB(ctx, admin, base, db, key, token)
			if err != nil {
				_ = releaseLease.Run(context.WithoutCancel(ctx), admin, []string{key}, token).Err()
			}
			return s, err
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("shared Redis %s: all %d databases stayed leased to other tests for %v; run fewer tests at once (-p, -parallel) or use private servers (unset %s)",
				base.Addr, n-1, leaseWaitMax, EnvRedisURL)
		}
		select {
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func useLeasedDB(ctx context.Context, admin *redis.Client, base *redis.Options, db int, key, token string) (*RedisServer, error) {
	o := *base
	o.DB = db
	s := &RedisServer{base: &o, shared: true}
	s.client = redis.NewClient(s.Options())
	if err := s.client.FlushDB(ctx).Err(); err != nil {
		s.client.Close()
		if isSelectRefused(err) {
			return nil, errNoSelect
		}
		return nil, fmt.Errorf("shared Redis %s: flush database %d: %w", base.Addr, db, err)
	}
	stop := make(chan struct{})
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		t := time.NewTicker(leaseRenew)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				_ = renewLease.Run(context.Background(), admin, []string{key}, token, leaseTTL.Milliseconds()).Err()
			}
		}
	}()
	s.cleanup = func(ctx context.Context) error {
		close(stop)
		<-renewed
		err := s.client.FlushDB(ctx).Err()
		if err != nil {
			err = fmt.Errorf("shared Redis %s: flush database %d after the test: %w", base.Addr, db, err)
		} else {
			// Release only a clean database: a lease left to expire keeps
			// others away from data this test could not remove.
			err = releaseLease.Run(ctx, admin, []string{key}, token).Err()
		}
		admin.Close()
		return err
	}
	return s, nil
}

// isSelectRefused reports whether the server refused the SELECT that the
// client sends on connect: Redis Cluster and some proxies allow database 0
// only.
func isSelectRefused(err error) bool {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return false
	}
	msg := strings.ToUpper(rerr.Error())
	return strings.Contains(msg, "SELECT") || strings.Contains(msg, "DB INDEX")
}

func prefixIsolation(ctx context.Context, admin *redis.Client, base *redis.Options) (*RedisServer, error) {
	s := &RedisServer{base: base, shared: true, prefix: "memtest:" + randhex.String(8) + ":"}
	s.client = redis.NewClient(s.Options())
	if err := deletePrefix(ctx, s.client, s.prefix); err != nil {
		s.client.Close()
		return nil, fmt.Errorf("shared Redis %s: clear prefix %q: %w", base.Addr, s.prefix, err)
	}
	s.cleanup = func(ctx context.Context) error {
		admin.Close()
		if err := deletePrefix(ctx, s.client, s.prefix); err != nil {
			return fmt.Errorf("shared Redis %s: clear prefix %q after the test: %w", base.Addr, s.prefix, err)
		}
		return nil
	}
	return s, nil
}

// deletePrefix deletes every key under prefix (which holds no glob
// characters).
func deletePrefix(ctx context.Context, c redis.UniversalClient, prefix string) error {
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var batch []string
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 1000 {
			if err := c.Unlink(ctx, batch...).Err(); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if err := iter.Err(); err != nil {
		return err
	}
	if len(batch) > 0 {
		return c.Unlink(ctx, batch...).Err()
	}
	return nil
}
