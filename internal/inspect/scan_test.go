package inspect

import (
	"path"
	"testing"

	"github.com/memstore/memstore/internal/rediscache"
)

// SCAN's names decode back to their keys, braces included, and only
// entries match the pattern: never a lease or a marker.
func TestKeyOfEntry(t *testing.T) {
	const ns = "app"
	for _, key := range []string{"a", "a}b", "}x", "{y}", "x}:l", "ü"} {
		name := rediscache.KeyOf(ns, key)
		if got, ok := KeyOfEntry(ns, name); !ok || got != key {
			t.Errorf("KeyOfEntry(%q) = %q, %v; want %q, true", name, got, ok, key)
		}
		if ok, _ := path.Match(Pattern(ns), name); !ok {
			t.Errorf("Pattern %q does not match entry %q", Pattern(ns), name)
		}
		for _, other := range []string{rediscache.LeaseOf(ns, key), rediscache.MarkerOf(ns, 0), rediscache.KeyOf("other", key)} {
			if _, ok := KeyOfEntry(ns, other); ok {
				t.Errorf("KeyOfEntry(%q) took a non-entry for an entry", other)
			}
			if ok, _ := path.Match(Pattern(ns), other); ok {
				t.Errorf("Pattern %q matches %q, which is no entry of %s", Pattern(ns), other, ns)
			}
		}
	}
}
