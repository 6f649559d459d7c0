package memstore_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"pgregory.net/rapid"

	"github.com/memstore/memstore"
	"github.com/memstore/memstore/internal/inspect"
	"github.com/memstore/memstore/internal/rediscache"
	"github.com/memstore/memstore/memtest"
)

// The properties of issue 17, over every namespace and key the store
// accepts: distinct (namespace, key) pairs never share a Redis key, a key's
// hash slot is its own (the same in every namespace, and its marker's), and
// no marker is ever named like a key hash. The oracle is this file's own
// reading of Redis's rules (a name decoder, CRC16 of the cluster spec) and
// CLUSTER KEYSLOT of a real cluster-enabled redis-server, not the layout
// code under test.

// trickyRunes are the runes names collide on, drawn often.
var trickyRunes = []rune{'{', '}', ':', 'm', 'a', 'b', 'ÿ', '\\', ' '}

func nameGen(runes []rune) *rapid.Generator[string] {
	return rapid.StringOfN(rapid.OneOf(rapid.SampledFrom(runes), rapid.Rune()), 1, 12, -1)
}

// namespaceGen draws namespaces the store accepts: tricky runes but braces,
// and now and then one derived from another namespace or key, the way the
// issue's collision was built.
func namespaceGen() *rapid.Generator[string] {
	plain := nameGen([]rune{':', 'm', 'a', 'b', 'ÿ', '\\', ' '})
	return rapid.Custom(func(t *rapid.T) string {
		ns := plain.Draw(t, "ns")
		if rapid.Bool().Draw(t, "derived") {
			ns += rapid.SampledFrom([]string{":", "::", ":m", "}", "{"}).Draw(t, "join") + plain.Draw(t, "tail")
		}
		return ns
	}).Filter(func(ns string) bool { return memstore.CheckNamespace(ns) == nil })
}

// keyGen draws keys the store accepts, braces included.
func keyGen() *rapid.Generator[string] {
	return nameGen(trickyRunes).Filter(func(k string) bool { return memstore.CheckKey(k) == nil })
}

// decode reads a key hash's name back into its (namespace, key), by the
// layout's rule: the namespace runs to the first "{" (less the ":" before
// it), the tag to the last "}", and a 0xFF in the tag is a key's "}". It
// is the proof of injectivity: a name that decodes to one pair names no
// other.
func decode(name string) (ns, key string, ok bool) {
	open := strings.IndexByte(name, '{')
	if open < 1 || name[open-1] != ':' || !strings.HasSuffix(name, "}") {
		return "", "", false
	}
	tag := name[open+1 : len(name)-1]
	if strings.IndexByte(tag, '}') >= 0 {
		return "", "", false
	}
	return name[:open-1], strings.ReplaceAll(tag, "\xff", "}"), true
}

// crc16 is CRC-16/XMODEM as the Redis Cluster specification gives it
// (polynomial 0x1021, initial value 0, no reflection).
func crc16(s string) uint16 {
	var crc uint16
	for _, c := range []byte(s) {
		for i := 7; i >= 0; i-- {
			bit := (c>>uint(i))&1 == 1
			top := crc&0x8000 != 0
			crc <<= 1
			if bit != top {
				crc ^= 0x1021
			}
		}
	}
	return crc
}

// keySlot is Redis Cluster's slot of a name: the first "{...}" with
// something inside is hashed instead of the name.
func keySlot(name string) int {
	if s := strings.IndexByte(name, '{'); s >= 0 {
		if e := strings.IndexByte(name[s+1:], '}'); e > 0 {
			name = name[s+1 : s+1+e]
		}
	}
	return int(crc16(name) % 16384)
}

func TestLayoutCRC16(t *testing.T) {
	// The check value the Redis Cluster specification gives.
	if got, want := crc16("123456789"), uint16(0x31C3); got != want {
		t.Fatalf("crc16(123456789) = %#x, want %#x", got, want)
	}
}

func TestLayoutRefusesBraces(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ns := nameGen(trickyRunes).Draw(t, "ns")
		err := memstore.CheckNamespace(ns)
		if strings.ContainsAny(ns, "{}") && err == nil {
			t.Fatalf("namespace %q holds a brace, and is accepted", ns)
		}
	})
}

func TestLayoutInjective(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ns1, k1 := namespaceGen().Draw(t, "ns1"), keyGen().Draw(t, "k1")
		ns2, k2 := namespaceGen().Draw(t, "ns2"), keyGen().Draw(t, "k2")
		if rapid.Bool().Draw(t, "same namespace") {
			ns2 = ns1
		}
		n1, n2 := inspect.Key(ns1, k1), inspect.Key(ns2, k2)
		if ns, k, ok := decode(n1); !ok || ns != ns1 || k != k1 {
			t.Fatalf("name %q of (%q, %q) decodes to (%q, %q, %v)", n1, ns1, k1, ns, k, ok)
		}
		if (ns1 != ns2 || k1 != k2) && n1 == n2 {
			t.Fatalf("(%q, %q) and (%q, %q) share the Redis key %q", ns1, k1, ns2, k2, n1)
		}
		// No marker, of any namespace and stripe, is named like a key hash.
		stripe := rapid.IntRange(0, rediscache.Slots-1).Draw(t, "stripe")
		for _, m := range []string{rediscache.MarkerOf(ns2, stripe), rediscache.MarkerOf(ns2, keySlot(n1))} {
			if m == n1 {
				t.Fatalf("marker %q is the key hash of (%q, %q)", m, ns1, k1)
			}
			if _, _, ok := decode(m); ok {
				t.Fatalf("marker %q decodes as a key hash", m)
			}
		}
	})
}

func TestLayoutSlots(t *testing.T) {
	// A cluster-enabled server answers CLUSTER KEYSLOT without any slot
	// assigned: the real server's reading of each name.
	srv := memtest.RedisWith(t, &memtest.RedisOptions{Args: []string{"--cluster-enabled", "yes"}})
	rdb := srv.Client()
	ctx := context.Background()
	serverSlot := func(t *rapid.T, name string) int {
		n, err := rdb.ClusterKeySlot(ctx, name).Result()
		if err != nil {
			t.Fatalf("CLUSTER KEYSLOT %q: %v", name, err)
		}
		return int(n)
	}
	rapid.Check(t, func(t *rapid.T) {
		ns1, ns2, k := namespaceGen().Draw(t, "ns1"), namespaceGen().Draw(t, "ns2"), keyGen().Draw(t, "k")
		n1, n2 := inspect.Key(ns1, k), inspect.Key(ns2, k)
		slot := serverSlot(t, n1)
		if got := keySlot(n1); got != slot {
			t.Fatalf("this test's slot of %q is %d, the server's %d", n1, got, slot)
		}
		if got := rediscache.Slot(n1); got != slot {
			t.Fatalf("rediscache.Slot(%q) = %d, the server says %d", n1, got, slot)
		}
		// The slot is the key's alone: the same in every namespace, and for
		// a key without "}" the slot of the key itself.
		if got := serverSlot(t, n2); got != slot {
			t.Fatalf("key %q: slot %d in namespace %q, %d in %q", k, slot, ns1, got, ns2)
		}
		if !strings.Contains(k, "}") {
			if got := serverSlot(t, k); got != slot {
				t.Fatalf("key %q: slot %d as memstore's %q, %d as itself", k, slot, n1, got)
			}
		}
		// Every script is single-slot: the key's stripe marker shares it.
		if got := serverSlot(t, rediscache.MarkerOf(ns1, slot)); got != slot {
			t.Fatalf("marker of slot %d is in slot %d", slot, got)
		}
	})
}

// TestNamespaceIsolation is issue 17's reproduction against a real
// redis-server and SQLite: the namespace that built the collision is
// refused, and stores in namespaces that differ by the characters that
// collided never serve each other's entries.
func TestNamespaceIsolation(t *testing.T) {
	ctx := context.Background()
	srv := memtest.Redis(t)
	rdb := srv.NewClient(func(o *redis.Options) { o.ContextTimeoutEnabled = true })
	db := memtest.SQLite(t)

	for _, ns := range []string{"a:{b}", "a{", "}", "x:{y"} {
		_, err := memstore.New[string](rdb, db, &memstore.Options[string]{Namespace: ns, DisableReconciler: true})
		if err == nil {
			t.Fatalf("New accepted namespace %q", ns)
		}
		if !errors.Is(err, rediscache.ErrNamespace) || !strings.Contains(err.Error(), "Options.Namespace") {
			t.Errorf("New(%q): %v, want an error naming Options.Namespace and the brace rule", ns, err)
		}
	}

	open := func(ns string) *memstore.Store[string] {
		s, err := memstore.New[string](rdb, db, &memstore.Options[string]{Namespace: ns, DisableReconciler: true, AutoMigrate: true})
		if err != nil {
			t.Fatalf("New(%q): %v", ns, err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	namespaces := []string{"a", "a:", "a:b", "a:b:", "b"}
	keys := []string{"b}:{c", "c", "{b}:{c", "b", ":{c", "}", "b}", "{", "0}:m", ":m", "}c"}
	stores := map[string]*memstore.Store[string]{}
	for _, ns := range namespaces {
		stores[ns] = open(ns)
	}
	value := func(ns, key string) string { return "tenant " + ns + " key " + key }
	// Each store writes every other key, then reads them twice: the second
	// read is served from the cache it filled.
	for i, ns := range namespaces {
		for j, k := range keys {
			if (i+j)%2 == 0 {
				mustSet(t, stores[ns], k, value(ns, k))
				mustGet(t, stores[ns], k, value(ns, k))
				if c, err := inspect.ReadCache(ctx, rdb, ns, k); err != nil || !c.Cached {
					t.Fatalf("(%q, %q) not cached after a read: %+v, %v", ns, k, c, err)
				}
			}
		}
	}
	for i, ns := range namespaces {
		for j, k := range keys {
			got, err := stores[ns].Get(ctx, k)
			switch {
			case (i+j)%2 == 0 && (err != nil || got != value(ns, k)):
				t.Errorf("store %q Get(%q) = %q, %v; want its own %q", ns, k, got, err, value(ns, k))
			case (i+j)%2 != 0 && !errors.Is(err, memstore.ErrNotFound):
				t.Errorf("store %q Get(%q) = %q, %v; it never wrote the key, want ErrNotFound", ns, k, got, err)
			}
		}
	}
}
