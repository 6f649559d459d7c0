// Package inspect reads and drops memstore's state for one key, for the
// module's own tests and tools (the verifier's memstore strategy, the
// benchmarks, the consistency monitor). They go through it rather than the
// raw layout, so a change of layout (internal/rediscache,
// internal/sqlstore) changes this package and nothing else.
package inspect

import (
	"context"
	"database/sql"
	"errors"

	"github.com/redis/go-redis/v9"

	"github.com/memstore/memstore/codec"
	"github.com/memstore/memstore/internal/rediscache"
	"github.com/memstore/memstore/internal/sqlstore"
)

// Key returns the Redis key of a logical key's cached entry in namespace
// ns.
func Key(ns, key string) string { return rediscache.KeyOf(ns, key) }

// Cache is a key's cache entry as a reader would be served it.
type Cache struct {
	Cached   bool   // a reader would be served from the cache (a value or a cached not-found)
	Raw      []byte // the sealed entry, if cached
	NotFound bool   // the entry says the key has no value
	Version  uint64 // the row version the entry holds
	Payload  []byte // the encoded value (without the header)
	Corrupt  error  // the entry failed its header or checksum test (Cached is then false)
}

// ReadCache returns key's cache entry in namespace ns. A hit is what the
// store's hit path reads: the entry, checked by its header.
func ReadCache(ctx context.Context, rdb redis.UniversalClient, ns, key string) (Cache, error) {
	raw, err := rdb.Get(ctx, Key(ns, key)).Bytes()
	if errors.Is(err, redis.Nil) {
		return Cache{}, nil
	}
	if err != nil {
		return Cache{}, err
	}
	h, payload, err := codec.Open(raw)
	if err != nil {
		return Cache{Raw: raw, Corrupt: err}, nil
	}
	return Cache{Cached: true, Raw: raw, NotFound: h.NotFound, Version: h.Version, Payload: payload}, nil
}

// Evict drops key's cached entry and lease in namespace ns, as Redis
// eviction would, never its intents (they live in the stripe's marker).
func Evict(ctx context.Context, rdb redis.UniversalClient, ns, key string) error {
	return rdb.Del(ctx, Key(ns, key), rediscache.LeaseOf(ns, key)).Err()
}

// WriteRaw replaces key's cached entry in namespace ns with raw bytes, as
// a foreign writer, a damaged server or a replica rolled back to an older
// entry would: for tests of what readers do with such entries.
func WriteRaw(ctx context.Context, rdb redis.UniversalClient, ns, key string, raw []byte) error {
	return rdb.Set(ctx, Key(ns, key), raw, 0).Err()
}

// Row is key's row as the database holds it.
type Row = sqlstore.Row

// ReadRow returns key's row in namespace ns (Found false if none).
func ReadRow(ctx context.Context, db *sql.DB, ns, key string) (Row, error) {
	return sqlstore.ReadRow(ctx, db, ns, key)
}
