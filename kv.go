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
