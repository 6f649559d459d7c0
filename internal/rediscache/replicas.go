package rediscache

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrReplicas is AwaitReplicas's error when too few replicas acknowledged in
// time. It is an outage for the write: its begin may be lost in a failover.
var ErrReplicas = errors.New("redis: too few replicas acknowledged the write intent")

// Replicated reports whether rdb's writes go to a master with replicas that
// a failover may promote: a cluster client, or a Sentinel failover client.
func Replicated(rdb redis.UniversalClient) bool {
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		return true
	case *redis.Client:
		// NewFailoverClient names its address so.
		return c.Options().Addr == "FailoverClient"
	}
	return false
}

// AwaitReplicas waits, for up to timeout, until n replicas of each master
// serving keys have every write that master had applied when it was called,
// the begins of keys among them, with Redis's WAIT.
//
// WAIT waits for the writes of its own connection, and a pooled client may
// have sent the begin on another. So it is sent, on one connection of the
// key's master, right after a write of its own: field "a" of the key's
// stripe marker, which the begin has just written, so it is on the node
// that ran the begin even while its slot migrates. No script reads that
// field. A master's replication stream is one sequence, so a replica that
// has this write has the begin too. If the marker has moved (MOVED, or ASK
// while the slot migrates: then the begin ran on the target as well), the
// write and WAIT go where the redirection says.
func (c *Cache) AwaitReplicas(ctx context.Context, keys []string, n int, timeout time.Duration) error {
	type node struct {
		client *redis.Client
		marker string
	}
	var nodes []node
	cc, _ := c.rdb.(*redis.ClusterClient)
	switch rdb := c.rdb.(type) {
	case *redis.ClusterClient:
		seen := map[string]bool{}
		for _, k := range keys {
			m, err := rdb.MasterForKey(ctx, c.Key(k))
			if err != nil {
				return err
			}
			if addr := m.Options().Addr; !seen[addr] {
				seen[addr] = true
				nodes = append(nodes, node{m, c.Marker(c.Stripe(k))})
			}
		}
	case *redis.Client:
		nodes = []node{{rdb, c.Marker(c.Stripe(keys[0]))}}
	default:
		return fmt.Errorf("rediscache: replica acknowledgements need a cluster or a failover client, not %T", c.rdb)
	}
	for _, nd := range nodes {
		err := awaitOn(ctx, nd.client, nd.marker, false, n, timeout)
		where := nd.client.Options().Addr
		if kind, addr, ok := redirection(err); ok && cc != nil {
			to, ferr := masterAt(ctx, cc, addr)
			if ferr != nil {
				return fmt.Errorf("replica acks on %s: %w", where, errors.Join(err, ferr))
			}
			where += " then " + addr
			err = awaitOn(ctx, to, nd.marker, kind == "ASK", n, timeout)
		}
		if err != nil {
			return fmt.Errorf("replica acks on %s: %w", where, err)
		}
	}
	return nil
}

// awaitOn writes marker's field "a" on node (after ASKING, if asking) and
// WAITs for n replicas on the same connection.
func awaitOn(ctx context.Context, node *redis.Client, marker string, asking bool, n int, timeout time.Duration) error {
	var set *redis.IntCmd
	var wait *redis.Cmd
	_, _ = node.Pipelined(ctx, func(p redis.Pipeliner) error {
		if asking {
			p.Do(ctx, "ASKING")
		}
		set = p.HSet(ctx, marker, "a", 1)
		wait = p.Do(ctx, "WAIT", n, ms(timeout)) // never 0: that waits for ever
		return nil
	})
	if err := set.Err(); err != nil {
		return err
	}
	got, err := wait.Int64()
	if err != nil {
		return err
	}
	if got < int64(n) {
		return fmt.Errorf("%w: %d of %d within %v", ErrReplicas, got, n, timeout)
	}
	return nil
}

// redirection reads a MOVED or ASK reply: its kind and the node it names.
func redirection(err error) (kind, addr string, ok bool) {
	var re redis.Error
	if !errors.As(err, &re) {
		return "", "", false
	}
	f := strings.Fields(re.Error())
	if len(f) != 3 || f[0] != "MOVED" && f[0] != "ASK" {
		return "", "", false
	}
	return f[0], f[2], true
}

// masterAt is the cluster client's client of the master at addr.
func masterAt(ctx context.Context, cc *redis.ClusterClient, addr string) (*redis.Client, error) {
	var mu sync.Mutex
	var found *redis.Client
	err := cc.ForEachMaster(ctx, func(_ context.Context, m *redis.Client) error {
		if m.Options().Addr == addr {
			mu.Lock()
			found = m
			mu.Unlock()
		}
		return nil
	})
	if err == nil && found == nil {
		err = fmt.Errorf("rediscache: no master at %s", addr)
	}
	return found, err
}
