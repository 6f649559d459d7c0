// Package strategies holds the cache+DB stores the verifier runs: the real
// memstore store and the classic strategies that misremember, kept as
// reference implementations over the same Redis and database so the
// verifier can prove it catches each of them.
//
// Every store here implements Store over string values. The known-bad ones
// are a few dozen lines each; each file documents the interleaving that
// breaks it.
package strategies

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/memstore/memstore"
)

// Store is one instance of a cache+DB store, as the verifier drives it.
type Store interface {
	KV
	// Inspect returns the raw state of key in both tiers, for the
	// convergence check after healing.
	Inspect(ctx context.Context, key string) (Snapshot, error)
	// Evict drops key's cache entry, as Redis eviction would.
	Evict(ctx context.Context, key string) error
	// Close releases the instance (not the Redis client or the DB).
	Close() error
}

// KV is the string-valued view of a cache+DB store that the verifier, the
// conformance suite and the benchmarks drive. The reference strategies
// implement it directly; memstore's Store[string] through MemstoreKV.
//
// Errors follow the memstore sentinels: Get returns an error wrapping
// memstore.ErrNotFound for a missing key; a write error wrapping
// memstore.ErrOutcomeUnknown (or any error the store cannot rule out as
// "not applied") leaves the write's outcome unknown.
type KV interface {
	Get(ctx context.Context, key string) (string, error)
	Set(ctx context.Context, key, value string) error
	Delete(ctx context.Context, key string) error
}

// MemstoreKV returns the KV view of a string store.
func MemstoreKV(s *memstore.Store[string]) KV { return memstoreKV{s} }

type memstoreKV struct{ s *memstore.Store[string] }

func (k memstoreKV) Get(ctx context.Context, key string) (string, error) { return k.s.Get(ctx, key) }
func (k memstoreKV) Set(ctx context.Context, key, value string) error {
	return k.s.Set(ctx, key, value)
}
func (k memstoreKV) Delete(ctx context.Context, key string) error { return k.s.Delete(ctx, key) }

// Snapshot is one key's state in both tiers. Value fields hold the decoded
// value (the user's string), so tiers with different encodings compare.
type Snapshot struct {
	Cached      bool   // a reader would be served from the cache: a value, or a cached not-found (an entry readers pass over, such as an expired one, a lease or a tombstone, is not cached)
	CacheFound  bool   // ... and it says the key exists
	CacheValue  string // ... with this value
	DBFound     bool   // the DB has a live row
	DBValue     string
	CacheDetail string // free-form: what the raw cache entry was, for reports
}

// Config is what every store instance is built from.
type Config struct {
	Redis     redis.UniversalClient
	DB        *sql.DB
	Namespace string        // key prefix and row scope, no braces (as memstore's Options.Namespace); default "strategies"
	Hook      memstore.Hook // fired at every step (nil: none)
	TTL       time.Duration // cache TTL; default 10m
	// Migrate creates the schema; the verifier sets it on the first
	// instance of a run.
	Migrate bool
	// RedisBudget is memstore's Options.RedisBudget (0: its default). The
	// other strategies have no budget and ignore it.
	RedisBudget time.Duration
}

func (c Config) withDefaults() Config {
	if c.Namespace == "" {
		c.Namespace = "strategies"
	}
	if c.TTL <= 0 {
		c.TTL = 10 * time.Minute
	}
	return c
}

// Factory makes instances of one named store.
type Factory struct {
	Name string
	// ExpectPass says whether the verifier must find the store
	// linearizable. Known-bad strategies expect to be caught.
	ExpectPass bool
	// Doc is one paragraph on what the store does and how it breaks.
	Doc string
	New func(ctx context.Context, c Config) (Store, error)
}

// All returns every store, memstore first, then the known-bad strategies.
func All() []Factory {
	return []Factory{
		Memstore(),
		WriteDBDeleteCache(),
		DeleteCacheWriteDB(),
		WriteDBSetCache(),
		DoubleDelete(),
		LeaseNoIntent(),
	}
}

// Lookup returns the factory named name.
func Lookup(name string) (Factory, error) {
	var names []string
	for _, f := range All() {
		if f.Name == name {
			return f, nil
		}
		names = append(names, f.Name)
	}
	sort.Strings(names)
	return Factory{}, fmt.Errorf("unknown store %q (known: %v)", name, names)
}
