// Package testenv builds the environment of the verifier (package verify),
// the benchmarks (benchkit) and the conformance suite (storetest): a Redis
// (a private redis-server, a private Redis Cluster, or one named by a URL or
// a seed list), a database (a SQLite file, a private PostgreSQL cluster or a
// URL), the options of every Redis client they make, and the stack of
// closers that releases it all.
//
// The store package never imports it: it is tooling around the store.
package testenv

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/memstore/memstore/memtest"
)

// ClusterScheme is the URL scheme that names a Redis Cluster by its seed
// nodes: redis+cluster://[user:password@]host:port,host:port.
const ClusterScheme = "redis+cluster"

// Redis is the Redis of one environment: a standalone server or a cluster,
// started here or named by the caller.
type Redis struct {
	// Server is the standalone server when it came from memtest (started
	// here or by the caller); nil otherwise.
	Server *memtest.RedisServer
	// Cluster is the private cluster when it came from memtest; nil
	// otherwise.
	Cluster *memtest.RedisCluster
	// Started reports whether the environment started this Redis (and
	// stops it at Close), so that nothing of another user's is in it.
	Started bool

	cluster  bool
	addrs    []string
	username string
	password string
	db       int
}

// Standalone is the Redis of a memtest server.
func Standalone(rs *memtest.RedisServer) *Redis {
	o := rs.Options()
	return &Redis{Server: rs, addrs: []string{o.Addr}, username: o.Username, password: o.Password, db: o.DB}
}

// OfCluster is the Redis of a memtest cluster.
func OfCluster(c *memtest.RedisCluster) *Redis {
	return &Redis{Cluster: c, cluster: true, addrs: c.Addrs()}
}

// Parse reads what a user names a Redis with: a redis:// (or rediss-less)
// URL of a standalone server, a redis+cluster://host:port,host:port URL
// of a cluster, or a comma-separated seed list of a cluster
// (host:port,host:port; a single host:port without a scheme is a cluster
// seed too).
func Parse(s string) (*Redis, error) {
	switch {
	case strings.HasPrefix(s, ClusterScheme+"://"):
		rest := strings.TrimPrefix(s, ClusterScheme+"://")
		r := &Redis{cluster: true}
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			ui, err := url.Parse("redis://" + rest[:at+1] + "x")
			if err != nil {
				return nil, fmt.Errorf("cluster URL %q: %w", s, err)
			}
			r.username = ui.User.Username()
			r.password, _ = ui.User.Password()
			rest = rest[at+1:]
		}
		if i := strings.IndexAny(rest, "/?"); i >= 0 {
			rest = rest[:i]
		}
		addrs, err := seeds(rest)
		if err != nil {
			return nil, fmt.Errorf("cluster URL %q: %w", s, err)
		}
		r.addrs = addrs
		return r, nil
	case strings.Contains(s, "://"):
		o, err := redis.ParseURL(s)
		if err != nil {
			return nil, err
		}
		return &Redis{addrs: []string{o.Addr}, username: o.Username, password: o.Password, db: o.DB}, nil
	}
	addrs, err := seeds(s)
	if err != nil {
		return nil, fmt.Errorf("cluster seed list %q: %w", s, err)
	}
	return &Redis{cluster: true, addrs: addrs}, nil
}

func seeds(s string) ([]string, error) {
	var addrs []string
	for a := range strings.SplitSeq(s, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if !strings.Contains(a, ":") {
			return nil, fmt.Errorf("%q is not host:port", a)
		}
		addrs = append(addrs, a)
	}
	if len(addrs) == 0 {
		return nil, errors.New("no host:port")
	}
	return addrs, nil
}

// IsCluster reports whether this is a Redis Cluster.
func (r *Redis) IsCluster() bool { return r.cluster }

// Addr is the standalone server's address, or the first seed of a cluster.
func (r *Redis) Addr() string { return r.addrs[0] }

// Addrs are the seeds of a cluster, or the standalone server's address.
func (r *Redis) Addrs() []string { return append([]string(nil), r.addrs...) }

// Private reports whether the run may kill, pause and reconfigure the
// servers: they were started by memtest for this environment alone.
func (r *Redis) Private() bool {
	switch {
	case r.Server != nil:
		return !r.Server.Shared()
	case r.Cluster != nil:
		return !r.Cluster.Shared()
	}
	return false
}

// Prefix is the key prefix a shared memtest server or cluster asks for;
// empty otherwise.
func (r *Redis) Prefix() string {
	switch {
	case r.Server != nil:
		return r.Server.Prefix()
	case r.Cluster != nil:
		return r.Cluster.Prefix()
	}
	return ""
}

// URL names this Redis for another process (Parse reads it back):
// redis://host:port/db, or redis+cluster://host:port,... for a cluster.
// addr, when not empty, replaces a standalone server's address (a proxy in
// front of it). Credentials are kept.
func (r *Redis) URL(addr string) string {
	ui := ""
	if r.password != "" || r.username != "" {
		ui = url.UserPassword(r.username, r.password).String() + "@"
	}
	if r.cluster {
		return ClusterScheme + "://" + ui + strings.Join(r.addrs, ",")
	}
	if addr == "" {
		addr = r.addrs[0]
	}
	return fmt.Sprintf("redis://%s%s/%d", ui, addr, r.db)
}

// String describes the Redis for reports, without credentials.
func (r *Redis) String() string {
	if r.cluster {
		return "Redis Cluster " + strings.Join(r.addrs, ",")
	}
	return "redis " + r.addrs[0]
}

// The client options every environment uses: short timeouts, so that a
// faulty Redis fails calls quickly, and the call's context bounding every
// command (ContextTimeoutEnabled, which memstore wants).
const (
	clientTimeout = 250 * time.Millisecond
	poolSize      = 32
	// MaxRedirects on a cluster: MOVED and ASK during a migration or a
	// failover, and TRYAGAIN, are followed up to this many times.
	maxRedirects = 8
)

// Options returns the options of a new client. addr, when not empty,
// replaces a standalone server's address (a proxy in front of it); on a
// cluster the nodes' announced addresses are used, and addr must be empty.
func (r *Redis) Options(addr string) *redis.UniversalOptions {
	o := &redis.UniversalOptions{
		Addrs:                 r.Addrs(),
		Username:              r.username,
		Password:              r.password,
		DB:                    r.db,
		IsClusterMode:         r.cluster,
		ContextTimeoutEnabled: true,
		DialTimeout:           clientTimeout,
		ReadTimeout:           clientTimeout,
		WriteTimeout:          clientTimeout,
		PoolTimeout:           clientTimeout,
		// One quick retry on a broken connection, as applications run:
		// after a restart or a partition the pool holds dead
		// connections, and a store should not be judged on each of them
		// failing once.
		MaxRetries:      1,
		MinRetryBackoff: time.Millisecond,
		MaxRetryBackoff: 4 * time.Millisecond,
		PoolSize:        poolSize,
	}
	if r.cluster {
		o.DB = 0
		o.MaxRedirects = maxRedirects
	} else if addr != "" {
		o.Addrs = []string{addr}
	}
	return o
}

// NewClient returns a new client with Options(addr): a *redis.Client, or a
// *redis.ClusterClient on a cluster. The caller closes it.
func (r *Redis) NewClient(addr string) redis.UniversalClient {
	o := r.Options(addr)
	if r.cluster {
		return redis.NewClusterClient(o.Cluster())
	}
	return redis.NewClient(o.Simple())
}

// ForEachServer runs fn on every server that holds keys: the standalone
// server, or every master of a cluster (through c, which must be a client
// of this Redis).
func ForEachServer(ctx context.Context, c redis.UniversalClient, fn func(context.Context, *redis.Client) error) error {
	switch c := c.(type) {
	case *redis.ClusterClient:
		return c.ForEachMaster(ctx, fn)
	case *redis.Client:
		return fn(ctx, c)
	}
	return fmt.Errorf("testenv: unsupported Redis client %T", c)
}

// DeletePattern deletes every key matching pattern on every server,
// a SCAN page at a time, and returns how many it deleted.
func DeletePattern(ctx context.Context, c redis.UniversalClient, pattern string) (int, error) {
	var mu sync.Mutex
	total := 0
	err := ForEachServer(ctx, c, func(ctx context.Context, n *redis.Client) error {
		var cursor uint64
		for {
			keys, next, err := n.Scan(ctx, cursor, pattern, 1000).Result()
			if err != nil {
				return err
			}
			// One DEL per key, in one pipeline: a page's keys are in many
			// slots, and a DEL of keys in different slots fails on a
			// cluster node.
			if len(keys) > 0 {
				_, err := n.Pipelined(ctx, func(p redis.Pipeliner) error {
					for _, k := range keys {
						p.Del(ctx, k)
					}
					return nil
				})
				if err != nil {
					return err
				}
			}
			mu.Lock()
			total += len(keys)
			mu.Unlock()
			if cursor = next; cursor == 0 {
				return nil
			}
		}
	})
	return total, err
}
