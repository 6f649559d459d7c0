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

// Pattern returns the SCAN MATCH pattern of namespace ns's cached entries
// (a lease or a stripe's marker never matches it).
func Pattern(ns string) string {
	prefix, suffix := entryAffixes(ns)
	return GlobEscape(prefix) + "*" + GlobEscape(suffix)
}

// KeyOfEntry returns the logical key of a cached entry's Redis key in
// namespace ns, as SCAN returns it, and false for a Redis key that is not
// one.
func KeyOfEntry(ns, redisKey string) (string, bool) {
	prefix, suffix := entryAffixes(ns)
	rest, ok := strings.CutPrefix(redisKey, prefix)
	if !ok || !strings.HasSuffix(rest, suffix) {
		return "", false
	}
	key := strings.ReplaceAll(rest[:len(rest)-len(suffix)], "\xff", "}") // the layout's escape of '}'
	return key, rediscache.KeyOf(ns, key) == redisKey
}

// entryAffixes splits the entry key of any logical key in ns around the
// key, so the pattern follows rediscache's layout.
func entryAffixes(ns string) (prefix, suffix string) {
	const mark = "\x00"
	p, s, _ := strings.Cut(rediscache.KeyOf(ns, mark), mark)
	return p, s
}

// GlobEscape quotes the characters SCAN's MATCH (and KEYS) treat
// specially, so s matches only itself.
func GlobEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
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
