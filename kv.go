package memstore

import "context"

// KV is the string-valued view of a cache+DB store that the verifier, the
// conformance suite and the benchmarks drive. Store[string] satisfies it
// through Store.KV; the reference strategies implement it directly.
//
// Errors follow the memstore sentinels: Get returns ErrNotFound for a missing
// key; a write error wrapping ErrOutcomeUnknown (or any error the store cannot
// rule out as "not applied") leaves the write's outcome unknown.
type KV interface {
	Get(ctx context.Context, key string) (string, error)
	Set(ctx context.Context, key, value string) error
	Delete(ctx context.Context, key string) error
}

// NewKV returns the KV view of a string store.
func NewKV(s *Store[string]) KV { return kvStore{s} }

type kvStore struct{ s *Store[string] }

func (k kvStore) Get(ctx context.Context, key string) (string, error) { return k.s.Get(ctx, key) }
func (k kvStore) Set(ctx context.Context, key, value string) error    { return k.s.Set(ctx, key, value) }
func (k kvStore) Delete(ctx context.Context, key string) error        { return k.s.Delete(ctx, key) }
