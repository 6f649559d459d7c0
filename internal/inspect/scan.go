package inspect

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/memstore/memstore/internal/rediscache"
)

// Pattern returns the SCAN MATCH pattern of namespace ns's key hashes (a
// stripe's marker never matches it: it ends with ":m", a key hash with
// "}").
func Pattern(ns string) string {
	var b strings.Builder
	for _, r := range ns {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteString(":{*}")
	return b.String()
}

// KeyOfHash returns the logical key of a key hash of namespace ns, as SCAN
// returns it, and false for a Redis key that is not one.
func KeyOfHash(ns, redisKey string) (string, bool) {
	rest, ok := strings.CutPrefix(redisKey, ns+":{")
	if !ok || !strings.HasSuffix(rest, "}") {
		return "", false
	}
	return rest[:len(rest)-1], true
}

// Intent reports whether a write intent of key is recorded in its
// stripe's marker and its deadline (Redis clock) is later than now by this
// host's clock: a write of key may be in flight. It is one HGET.
func Intent(ctx context.Context, rdb redis.UniversalClient, ns, key string) (bool, error) {
	c := rediscache.New(rdb, ns, time.Second)
	s, err := rdb.HGet(ctx, c.Marker(c.Stripe(key)), "i:"+c.Key(key)).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	d, _, _ := strings.Cut(s, " ")
	ms, err := strconv.ParseInt(d, 10, 64)
	if err != nil {
		return true, nil // an intent of a layout we do not know: take it as live
	}
	return time.Now().UnixMilli() < ms, nil
}

// Restore puts back a cache entry read earlier (Cache.Raw) as key's value
// in namespace ns, the way a Redis failover to a replica that missed later
// writes brings an old entry back. For tests of what notices such an
// entry: the reconciler and the consistency monitor.
func Restore(ctx context.Context, rdb redis.UniversalClient, ns, key string, c Cache) error {
	return rdb.HSet(ctx, Key(ns, key), "v", c.Raw, "ver", c.Version).Err()
}
