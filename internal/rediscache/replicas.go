package rediscache

import (
	"context"
	"errors"
	"fmt"
	"strings"
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
// key's master, right after a write of its own in the key's slot (a short
// lived ack key beside the stripe marker): a master's replication stream is
// one sequence, so a replica that has that write has the begin too.
func (c *Cache) AwaitReplicas(ctx context.Context, keys []string, n int, timeout time.Duration) error {
	type node struct {
		client *redis.Client
		ack    string
	}
	var nodes []node
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
				nodes = append(nodes, node{m, c.ackKey(k)})
			}
		}
	case *redis.Client:
		nodes = []node{{rdb, c.ackKey(keys[0])}}
	default:
		return fmt.Errorf("rediscache: replica acknowledgements need a cluster or a failover client, not %T", c.rdb)
	}
	for _, nd := range nodes {
		var wait *redis.Cmd
		_, err := nd.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, nd.ack, 1, time.Second)
			wait = p.Do(ctx, "WAIT", n, ms(timeout)) // never 0: that waits for ever
			return nil
		})
		if err != nil {
			return err
		}
		got, err := wait.Int64()
		if err != nil {
			return err
		}
		if got < int64(n) {
			return fmt.Errorf("%w: %d of %d within %v", ErrReplicas, got, n, timeout)
		}
	}
	return nil
}

// ackKey is the key AwaitReplicas writes in key's slot: the stripe's marker
// key with "a" for "m".
func (c *Cache) ackKey(key string) string {
	m := c.Marker(c.Stripe(key))
	return strings.TrimSuffix(m, "m") + "a"
}
