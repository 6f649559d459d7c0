package memstore_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/memstore/memstore"
	"github.com/memstore/memstore/codec"
	"github.com/memstore/memstore/internal/inspect"
)

type profile struct {
	Name  string
	Score int64
	Tags  []string
}

func TestGetSetDelete(t *testing.T) {
	eachRedis(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		// A generous Redis budget: the counts below are about what is
		// cached, and a loaded machine (-race, the cluster's round trips)
		// can overrun the default 50ms, which skips a fill.
		s := store(e, &memstore.Options[profile]{DisableReconciler: true, RedisBudget: time.Second})
		if _, err := s.Get(ctx, "u1"); !errors.Is(err, memstore.ErrNotFound) {
			t.Fatalf("Get of a new key: err = %v, want ErrNotFound", err)
		}
		want := profile{Name: "ada", Score: 1<<62 + 1, Tags: []string{}}
		if err := s.Set(ctx, "u1", want); err != nil {
			t.Fatal(err)
		}
		mustSync(t, s)     // the write's end: reads may fill again
		for i := range 2 { // a miss that fills, then a hit
			got, err := s.Get(ctx, "u1")
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Fatalf("read %d: (-want +got)\n%s", i, d)
			}
		}
		if st := s.Stats(); st.Hits != 1 || st.DBLoads != 2 || st.Fills != 2 {
			t.Fatalf("stats: hits %d, DB loads %d, fills %d; want 1, 2, 2 (not-found before the set is cached too); rejected fills %d, errors %v", st.Hits, st.DBLoads, st.Fills, st.RejectedFills, st.Errors)
		}
		if err := s.Delete(ctx, "u1"); err != nil {
			t.Fatal(err)
		}
		mustSync(t, s)
		if _, ok := cached(t, e, s, "u1"); ok {
			t.Fatal("the cache still holds u1 after Delete")
		}
		if _, err := s.Get(ctx, "u1"); !errors.Is(err, memstore.ErrNotFound) {
			t.Fatalf("Get after Delete: err = %v, want ErrNotFound", err)
		}
		// The not-found state is cached as a header flag, so a second miss is a hit.
		if _, err := s.Get(ctx, "u1"); !errors.Is(err, memstore.ErrNotFound) {
			t.Fatalf("second Get after Delete: err = %v, want ErrNotFound", err)
		}
		raw, ok := cached(t, e, s, "u1")
		if !ok {
			t.Fatal("not-found is not cached")
		}
		h, _, err := codec.Open(raw)
		if err != nil || !h.NotFound {
			t.Fatalf("cached not-found entry: header %+v, err %v", h, err)
		}
	})
}

func TestVersionsAndCompareAndSet(t *testing.T) {
	eachRedis(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		s := store[string](e, nil)
		v1, err := s.CompareAndSet(ctx, "k", "a", 0)
		if err != nil || v1 != 1 {
			t.Fatalf("CAS on a new key = %d, %v; want 1, nil", v1, err)
		}
		if _, err := s.CompareAndSet(ctx, "k", "b", 0); !errors.Is(err, memstore.ErrConflict) {
			t.Fatalf("CAS expecting 0 on an existing key: %v, want ErrConflict", err)
		}
		got, ver, err := s.GetVersioned(ctx, "k")
		if err != nil || got != "a" || ver != 1 {
			t.Fatalf("GetVersioned = %q, %d, %v; want a, 1", got, ver, err)
		}
		if v2, err := s.CompareAndSet(ctx, "k", "b", ver); err != nil || v2 != 2 {
			t.Fatalf("CAS = %d, %v; want 2", v2, err)
		}
		if _, err := s.CompareAndSet(ctx, "k", "c", ver); !errors.Is(err, memstore.ErrConflict) {
			t.Fatalf("stale CAS: %v, want ErrConflict", err)
		}
		mustGet(t, s, "k", "b")
		if err := s.Delete(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		_, ver, err = s.GetVersioned(ctx, "k")
		if !errors.Is(err, memstore.ErrNotFound) || ver != 3 {
			t.Fatalf("GetVersioned after delete: version %d, err %v; want 3, ErrNotFound", ver, err)
		}
		if _, err := s.CompareAndSet(ctx, "k", "d", 3); err != nil {
			t.Fatalf("CAS on the tombstone's version: %v", err)
		}
		mustGet(t, s, "k", "d")
		if n := s.Stats().Errors["conflict"]; n != 2 {
			t.Fatalf("conflicts counted: %d, want 2", n)
		}
	})
}

func TestRefresh(t *testing.T) {
	eachRedis(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		s := store[string](e, nil)
		mustSet(t, s, "k", "v1")
		mustGet(t, s, "k", "v1")
		// Change the row behind the store's back: only Refresh sees it.
		if _, err := e.db.Exec(`UPDATE memstore_entries SET value = '"v2"'`); err != nil {
			t.Fatal(err)
		}
		mustGet(t, s, "k", "v1")
		got, err := s.Refresh(ctx, "k")
		if err != nil || got != "v2" {
			t.Fatalf("Refresh = %q, %v; want v2", got, err)
		}
		mustGet(t, s, "k", "v2")
	})
}

func TestBatch(t *testing.T) {
	eachRedis(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		s := store[int](e, nil)
		in := map[string]int{}
		var keys []string
		for i := range 100 {
			k := "k" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + string(rune('A'+i/26))
			in[k] = i
			keys = append(keys, k)
		}
		if err := s.SetMany(ctx, in); err != nil {
			t.Fatal(err)
		}
		mustSync(t, s)
		for round := range 2 { // misses loaded in one query, then hits
			got, err := s.GetMany(ctx, append(keys, "absent"))
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(in, got); d != "" {
				t.Fatalf("round %d: (-want +got)\n%s", round, d)
			}
		}
		st := s.Stats()
		if st.Hits != 101 || st.DBLoads != 101 {
			t.Fatalf("hits %d, DB loads %d; want 101 each (every key loaded once, then hit once): %+v", st.Hits, st.DBLoads, st)
		}
		if err := s.DeleteMany(ctx, keys[:50]); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetMany(ctx, keys)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 50 {
			t.Fatalf("after DeleteMany of 50 of 100 keys, GetMany found %d", len(got))
		}
		for _, k := range keys[:50] {
			if _, ok := got[k]; ok {
				t.Fatalf("deleted key %q still read", k)
			}
		}
	})
}

func TestTTL(t *testing.T) {
	eachRedis(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		s := store(e, &memstore.Options[string]{TTL: time.Hour, DisableJitter: true, DisableReconciler: true})
		if err := s.Set(ctx, "short", "v", memstore.WithTTL(300*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		mustSet(t, s, "long", "v")
		mustGet(t, s, "short", "v")
		mustGet(t, s, "long", "v")
		ttl := e.admin().PTTL(ctx, inspect.Key(s.Namespace(), "short")).Val()
		if ttl <= 0 || ttl > 300*time.Millisecond {
			t.Fatalf("PTTL of the short entry = %v, want (0, 300ms]", ttl)
		}
		if ttl := e.admin().PTTL(ctx, inspect.Key(s.Namespace(), "long")).Val(); ttl < 59*time.Minute {
			t.Fatalf("PTTL of the default entry = %v, want about 1h", ttl)
		}
		deadline := time.Now().Add(3 * time.Second)
		for {
			if _, ok := cached(t, e, s, "short"); !ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the 300ms entry did not expire")
			}
			time.Sleep(5 * time.Millisecond)
		}
		mustGet(t, s, "short", "v") // the DB still has it; TTL bounds memory only
	})
}

func TestBadInput(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		s := store(e, &memstore.Options[float64]{MaxKeySize: 16, MaxValueSize: 64, DisableReconciler: true})
		bs := store(e, &memstore.Options[[]byte]{Namespace: "bytes", Codec: codec.Bytes(), MaxValueSize: 64, DisableReconciler: true})
		canceled, cancel := context.WithCancel(ctx)
		cancel()
		cases := []struct {
			name string
			err  error
			want error
		}{
			{"empty key", s.Set(ctx, "", 1), memstore.ErrInvalidKey},
			{"long key", s.Set(ctx, strings.Repeat("k", 17), 1), memstore.ErrInvalidKey},
			{"empty key get", func() error { _, err := s.Get(ctx, ""); return err }(), memstore.ErrInvalidKey},
			{"large value", bs.Set(ctx, "big", make([]byte, 65)), memstore.ErrTooLarge},
			{"inexact value", s.Set(ctx, "nan", math.NaN()), memstore.ErrCodec},
			{"canceled set", s.Set(canceled, "c", 1), context.Canceled},
			{"canceled get", func() error { _, err := s.Get(canceled, "c"); return err }(), context.Canceled},
			{"negative TTL", s.Set(ctx, "ttl", 1, memstore.WithTTL(-time.Second)), memstore.ErrInvalidOption},
			{"TTL under 1ms", s.Set(ctx, "ttl", 1, memstore.WithTTL(time.Microsecond)), memstore.ErrInvalidOption},
		}
		for _, c := range cases {
			if !errors.Is(c.err, c.want) {
				t.Errorf("%s: err = %v, want %v", c.name, c.err, c.want)
			}
			var oe *memstore.OpError
			if !errors.As(c.err, &oe) {
				t.Errorf("%s: %T is not an *OpError", c.name, c.err)
			}
		}
		var rows int
		if err := e.db.QueryRow(`SELECT COUNT(*) FROM memstore_entries`).Scan(&rows); err != nil || rows != 0 {
			t.Fatalf("rows after bad input: %d (%v), want 0", rows, err)
		}
		if n, _ := e.redis.Client().DBSize(ctx).Result(); n != 0 {
			t.Fatalf("Redis keys after bad input: %d, want 0", n)
		}
		// Errors read once: the sentinel's "memstore: " is not repeated.
		_, err := s.Get(ctx, "absent")
		if got, want := err.Error(), `memstore get "absent": not found`; got != want {
			t.Errorf("error text %q, want %q", got, want)
		}
		if !errors.Is(err, memstore.ErrNotFound) {
			t.Errorf("errors.Is(%v, ErrNotFound) = false", err)
		}
	})
}

// A corrupt or foreign cache entry is dropped and reloaded, never decoded.
func TestUndecodableCacheEntry(t *testing.T) {
	eachRedis(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		s := store[string](e, nil)
		mustSet(t, s, "k", "truth")
		mustGet(t, s, "k", "truth")
		raw, _ := cached(t, e, s, "k")
		flipped := append([]byte(nil), raw...)
		flipped[len(flipped)-1] ^= 1
		for name, bad := range map[string][]byte{
			"bit flip":         flipped,
			"foreign json":     []byte(`"lies"`),
			"empty":            {},
			"other codec":      codec.Seal(nil, codec.Header{Format: codec.Bytes().Format(), Version: 1}, []byte(`"lies"`)),
			"truncated header": raw[:3],
		} {
			if err := inspect.WriteRaw(ctx, e.admin(), s.Namespace(), "k", bad); err != nil {
				t.Fatal(err)
			}
			mustGet(t, s, "k", "truth")
			if got, ok := cached(t, e, s, "k"); !ok || string(got) != string(raw) {
				t.Fatalf("%s: the bad entry was not replaced by a reload", name)
			}
		}
		if n := s.Stats().Corrupt; n != 5 {
			t.Fatalf("corrupt entries counted: %d, want 5", n)
		}
	})
}

func TestConcurrentWritersConverge(t *testing.T) {
	eachRedis(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		a := store[int](e, nil)
		b := storeOn(e, e.client(), &memstore.Options[int]{Namespace: a.Namespace(), DisableReconciler: true})
		var wg sync.WaitGroup
		for w := range 4 {
			s := a
			if w%2 == 1 {
				s = b
			}
			wg.Go(func() {
				for i := range 25 {
					k := []string{"x", "y", "z"}[i%3]
					if err := s.Set(ctx, k, w*1000+i); err != nil {
						t.Error(err)
					}
					if _, err := s.Get(ctx, k); err != nil && !errors.Is(err, memstore.ErrNotFound) {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		for _, k := range []string{"x", "y", "z"} {
			var dbv string
			if err := e.db.QueryRow(`SELECT value FROM memstore_entries WHERE key = '` + k + `'`).Scan(&dbv); err != nil {
				t.Fatal(err)
			}
			got, err := b.Get(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			if want := strings.TrimSpace(dbv); want != itoa(got) {
				t.Fatalf("%s: store reads %d, DB row holds %s", k, got, want)
			}
		}
	})
}

func itoa(i int) string {
	b, _ := codec.JSON[int]().Encode(i)
	return string(b)
}
