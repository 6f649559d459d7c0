package memstore_test

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/memstore/memstore"
	"github.com/memstore/memstore/codec"
	"github.com/memstore/memstore/internal/inspect"
	"github.com/memstore/memstore/memtest"
	"github.com/memstore/memstore/strategies"
)

// The hot paths of the store beside their physical floor, measured in the
// same run. Run them with
//
//	go test -run '^$' -bench . -benchmem .
//
// and compare each pair: BenchmarkGetHit with BenchmarkRawGet,
// BenchmarkSet with BenchmarkNaiveWriteDBDelete, BenchmarkGetMany100 with
// BenchmarkRawMGet100. Every benchmark has a goroutines=1 and a
// goroutines=16 case. Values are 128-byte strings with the String codec;
// the raw rows move values as long as the store's sealed entry. `memstore
// bench` (package benchkit) measures the same and more, as a table.

const benchValueSize = 128

var benchValue = strings.Repeat("v", benchValueSize)

// benchEnv is a private Redis and a SQLite database for one benchmark.
func benchEnv(b *testing.B) *env {
	b.Helper()
	e := &env{t: b, redis: memtest.RedisWith(b, &memtest.RedisOptions{Private: true}), db: memtest.SQLite(b)}
	e.rdb = e.client()
	return e
}

func benchStore(b *testing.B, e *env) *memstore.Store[string] {
	b.Helper()
	return store(e, &memstore.Options[string]{Codec: codec.String(), DisableReconciler: true})
}

// benchKeys returns n keys.
func benchKeys(prefix string, n int) []string {
	ks := make([]string, n)
	for i := range ks {
		ks[i] = prefix + strconv.Itoa(i)
	}
	return ks
}

// rawKeys sets n plain Redis strings the size of a sealed entry and
// returns their keys, named as memstore names its key hashes (namespace
// "raw"), so raw Redis baselines hash and spread as the store's keys do.
func rawKeys(b *testing.B, e *env, n int) []string {
	b.Helper()
	ks := benchKeys("hot-", n)
	raw := strings.Repeat("v", codec.HeaderSize+benchValueSize)
	for i, k := range ks {
		ks[i] = inspect.Key("raw", k)
		if err := e.rdb.Set(context.Background(), ks[i], raw, 10*time.Minute).Err(); err != nil {
			b.Fatal(err)
		}
	}
	return ks
}

// parallel runs op b.N times on g goroutines (1: the benchmark's own),
// giving each call a distinct index.
func parallel(b *testing.B, g int, op func(i int) error) {
	b.Helper()
	b.ReportAllocs()
	b.ResetTimer()
	if g == 1 {
		for i := 0; b.Loop(); i++ {
			if err := op(i); err != nil {
				b.Fatal(err)
			}
		}
		return
	}
	// RunParallel starts p·GOMAXPROCS goroutines.
	b.SetParallelism((g + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	var next atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := op(int(next.Add(1))); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// goroutines runs f as the goroutines=1 and goroutines=16 sub-benchmarks.
func goroutines(b *testing.B, f func(b *testing.B, g int)) {
	for _, g := range []int{1, 16} {
		b.Run(fmt.Sprintf("goroutines=%d", g), func(b *testing.B) { f(b, g) })
	}
}

const benchHot = 256

func BenchmarkGetHit(b *testing.B) {
	e := benchEnv(b)
	s := benchStore(b, e)
	ctx := context.Background()
	keys := benchKeys("hot-", benchHot)
	for _, k := range keys {
		mustSet(b, s, k, benchValue)
		mustGet(b, s, k, benchValue) // fills
	}
	goroutines(b, func(b *testing.B, g int) {
		parallel(b, g, func(i int) error {
			_, err := s.Get(ctx, keys[i%len(keys)])
			return err
		})
		if st := s.Stats(); st.Misses > benchHot {
			b.Fatalf("%d misses: the keys were not cached", st.Misses)
		}
	})
}

func BenchmarkRawGet(b *testing.B) {
	e := benchEnv(b)
	ctx := context.Background()
	keys := rawKeys(b, e, benchHot)
	goroutines(b, func(b *testing.B, g int) {
		parallel(b, g, func(i int) error {
			return e.rdb.Get(ctx, keys[i%len(keys)]).Err()
		})
	})
}

func BenchmarkSet(b *testing.B) {
	e := benchEnv(b)
	s := benchStore(b, e)
	ctx := context.Background()
	keys := benchKeys("set-", benchHot)
	goroutines(b, func(b *testing.B, g int) {
		parallel(b, g, func(i int) error {
			return s.Set(ctx, keys[i%len(keys)], nthValue(i))
		})
	})
}

// nthValue is benchValue with its end replaced by i: every write stores a
// value no earlier one did. A database skips a write that changes nothing,
// so rewriting one value would measure no write at all.
func nthValue(i int) string {
	n := strconv.Itoa(i)
	return benchValue[:benchValueSize-len(n)] + n
}

// BenchmarkNaiveWriteDBDelete is the write most caches do: UPSERT the row,
// then DEL the cache entry (strategies.WriteDBDeleteCache, without a hook).
func BenchmarkNaiveWriteDBDelete(b *testing.B) {
	e := benchEnv(b)
	ctx := context.Background()
	kv, err := strategies.WriteDBDeleteCache().New(ctx, strategies.Config{Redis: e.rdb, DB: e.db, Namespace: "naive", Migrate: true})
	if err != nil {
		b.Fatal(err)
	}
	keys := benchKeys("set-", benchHot)
	goroutines(b, func(b *testing.B, g int) {
		parallel(b, g, func(i int) error {
			return kv.Set(ctx, keys[i%len(keys)], nthValue(i))
		})
	})
}

func BenchmarkGetMany100(b *testing.B) {
	e := benchEnv(b)
	s := benchStore(b, e)
	ctx := context.Background()
	keys := benchKeys("hot-", benchHot)
	m := make(map[string]string, len(keys))
	for _, k := range keys {
		m[k] = benchValue
	}
	if err := s.SetMany(ctx, m); err != nil {
		b.Fatal(err)
	}
	if _, err := s.GetMany(ctx, keys); err != nil { // fills
		b.Fatal(err)
	}
	batches := benchBatches(keys, 100)
	goroutines(b, func(b *testing.B, g int) {
		parallel(b, g, func(i int) error {
			got, err := s.GetMany(ctx, batches[i%len(batches)])
			if err == nil && len(got) != 100 {
				err = fmt.Errorf("GetMany returned %d values, want 100", len(got))
			}
			return err
		})
	})
}

func BenchmarkRawMGet100(b *testing.B) {
	e := benchEnv(b)
	ctx := context.Background()
	keys := rawKeys(b, e, benchHot)
	batches := benchBatches(keys, 100)
	goroutines(b, func(b *testing.B, g int) {
		parallel(b, g, func(i int) error {
			return e.rdb.MGet(ctx, batches[i%len(batches)]...).Err()
		})
	})
}

// benchBatches returns one window of size keys starting at every key,
// wrapping around.
func benchBatches(keys []string, size int) [][]string {
	out := make([][]string, len(keys))
	for i := range out {
		for j := range size {
			out[i] = append(out[i], keys[(i+j)%len(keys)])
		}
	}
	return out
}
