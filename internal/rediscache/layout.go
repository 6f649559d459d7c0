package rediscache

import (
	"errors"
	"strconv"
	"strings"
	"sync"
)

// The key layout of one namespace ns (a namespace never holds a brace):
//
//	ns:{key}       a logical key's cached entry: a plain string
//	ns:{key}:l     its fill lease, while one lives: a hash
//	ns:{tag}:m     one marker per stripe: the stripe's generation and the
//	               write intents of every key in it
//
// KeyOf, LeaseOf and MarkerOf are the only places these names are made;
// everything that needs a Redis key of memstore's (the store, the
// strategies, the tools, through internal/inspect) goes through them.
//
// Why no two (namespace, key) pairs share a Redis key: the namespace holds
// no brace, so the first '{' of a name always ends the namespace and opens
// the hash tag. Inside the tag, a '}' of the key is written as the byte
// 0xFF, which valid UTF-8 (and so a key) never holds: the tag is then the
// whole key, the name ends at the first '}' after it, and the name decodes
// back to exactly one pair. An entry ends with "}", a lease with "}:l", a
// marker with ":m", so none meets another.
//
// Why a key's slot depends on the key alone: the tag is the key (0xFF for
// each '}'), never empty, and Redis Cluster hashes the tag alone. So a key's
// entry and lease share its slot, every script touches one slot, the same
// in every namespace, and keys without a '}' hash exactly as the key itself
// does.
//
// A stripe is the set of keys whose intents share one marker. On Redis
// Cluster it is a hash slot (the marker's tag is chosen to hash to that
// slot, so every script stays single-slot); elsewhere the whole namespace
// is one stripe.

// ErrNamespace is returned for a namespace the layout cannot keep apart
// from others.
var ErrNamespace = errors.New("namespace must be non-empty and hold no '{' or '}'")

// CheckNamespace reports whether ns can be used as a namespace.
func CheckNamespace(ns string) error {
	if ns == "" || strings.ContainsAny(ns, "{}") {
		return ErrNamespace
	}
	return nil
}

// closeBrace stands for a '}' of a key inside its hash tag: a byte no valid
// UTF-8 string holds, so the escape is injective.
const closeBrace = 0xFF

// KeyOf returns the Redis key of a logical key's cached entry in namespace
// ns (ns must pass CheckNamespace, key must be valid UTF-8).
func KeyOf(ns, key string) string {
	return string(AppendKey(make([]byte, 0, len(ns)+len(key)+3), ns, key))
}

// LeaseOf returns the Redis key of a logical key's fill lease: its entry's
// key and ":l".
func LeaseOf(ns, key string) string {
	return string(append(AppendKey(make([]byte, 0, len(ns)+len(key)+5), ns, key), ":l"...))
}

// AppendKey appends KeyOf(ns, key) to b.
func AppendKey(b []byte, ns, key string) []byte {
	b = append(b, ns...)
	b = append(b, ':', '{')
	for {
		i := strings.IndexByte(key, '}')
		if i < 0 {
			break
		}
		b = append(b, key[:i]...)
		b = append(b, closeBrace)
		key = key[i+1:]
	}
	b = append(b, key...)
	return append(b, '}')
}

// MarkerOf returns the Redis key of the marker of a stripe in namespace ns.
func MarkerOf(ns string, stripe int) string {
	return ns + ":{" + slotTag(stripe) + "}:m"
}

// Slots is the number of Redis Cluster hash slots.
const Slots = 16384

// Slot returns the Redis Cluster hash slot of a Redis key, by the server's
// rule: the part between the first '{' and the next '}', if non-empty, is
// hashed instead of the whole key.
func Slot(key string) int {
	if s := strings.IndexByte(key, '{'); s >= 0 {
		if e := strings.IndexByte(key[s+1:], '}'); e > 0 {
			key = key[s+1 : s+1+e]
		}
	}
	return int(crc16(key) % Slots)
}

// crc16 is CRC-16/XMODEM, the checksum Redis Cluster hashes keys with.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// slotTag returns a short string that hashes to slot: the marker of a
// cluster stripe is named with it.
func slotTag(slot int) string {
	slotTagsOnce.Do(func() {
		left := Slots
		for i := 0; left > 0; i++ {
			t := strconv.FormatInt(int64(i), 36)
			if s := crc16(t) % Slots; slotTags[s] == "" {
				slotTags[s] = t
				left--
			}
		}
	})
	return slotTags[slot]
}

var (
	slotTagsOnce sync.Once
	slotTags     [Slots]string
)
