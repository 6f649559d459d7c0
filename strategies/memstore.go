package strategies

import (
	"context"

	"github.com/memstore/memstore"
	"github.com/memstore/memstore/codec"
	"github.com/memstore/memstore/internal/inspect"
)

// Memstore is the real store: lease-guarded fills, write intents fenced
// against Redis data loss, and the outbox reconciler. Its guarantee, as the
// package memstore states it: linearizable per key under every fault the
// verifier injects, Redis data loss included. The verifier must find it so.
func Memstore() Factory {
	return Factory{
		Name:       "memstore",
		ExpectPass: true,
		Doc:        "memstore: per-fill leases, write intents recorded before the DB commit and fenced in the DB when Redis loses them, an outbox reconciler. Linearizable per key under every fault, Redis data loss included.",
		New: func(ctx context.Context, c Config) (Store, error) {
			c = c.withDefaults()
			s, err := memstore.New(c.Redis, c.DB, &memstore.Options[string]{
				Namespace:         c.Namespace,
				Codec:             codec.String(),
				TTL:               c.TTL,
				Hook:              c.Hook,
				ReconcileInterval: 200_000_000, // 200ms: repairs land within a short run
				ReconcileAge:      1_000_000_000,
				RedisBudget:       c.RedisBudget,
			})
			if err != nil {
				return nil, err
			}
			if c.Migrate {
				if err := s.Migrate(ctx); err != nil {
					s.Close()
					return nil, err
				}
			}
			return &memstoreStore{s: s, kv: MemstoreKV(s), c: c}, nil
		},
	}
}

type memstoreStore struct {
	s  *memstore.Store[string]
	kv KV
	c  Config
}

func (m *memstoreStore) Get(ctx context.Context, key string) (string, error) {
	return m.kv.Get(ctx, key)
}
func (m *memstoreStore) Set(ctx context.Context, key, v string) error { return m.kv.Set(ctx, key, v) }
func (m *memstoreStore) Delete(ctx context.Context, key string) error { return m.kv.Delete(ctx, key) }
func (m *memstoreStore) Close() error                                 { return m.s.Close() }

// Sync waits for the store's background work (the ends of writes).
func (m *memstoreStore) Sync(ctx context.Context) error { return m.s.Sync(ctx) }

// Unwrap returns the underlying store, for tests that need its full API.
func (m *memstoreStore) Unwrap() *memstore.Store[string] { return m.s }

func (m *memstoreStore) Evict(ctx context.Context, key string) error {
	return inspect.Evict(ctx, m.c.Redis, m.c.Namespace, key)
}

func (m *memstoreStore) Inspect(ctx context.Context, key string) (Snapshot, error) {
	var snap Snapshot
	c, err := inspect.ReadCache(ctx, m.c.Redis, m.c.Namespace, key)
	switch {
	case err != nil:
		return snap, err
	case c.Corrupt != nil:
		// Never served (a reader drops it and reloads), but nothing of
		// memstore's writes such bytes: shown, so convergence flags them.
		snap.Cached, snap.CacheFound, snap.CacheValue = true, true, string(c.Raw)
		snap.CacheDetail = "corrupt entry: " + c.Corrupt.Error()
	case c.Cached:
		snap.Cached, snap.CacheFound, snap.CacheValue = true, !c.NotFound, string(c.Payload)
		snap.CacheDetail = "sealed entry, version " + itoa(c.Version)
	}
	row, err := inspect.ReadRow(ctx, m.c.DB, m.c.Namespace, key)
	if err != nil {
		return snap, err
	}
	if row.Found && !row.Tombstone {
		snap.DBFound, snap.DBValue = true, string(row.Value)
	}
	return snap, nil
}

var _ Store = (*memstoreStore)(nil)
