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
// The first brace of each always opens the logical key's hash tag (a
// namespace never holds a brace), so two (namespace, key) pairs never
// share a Redis key, and a key's entry and lease share its slot, which
// depends on the key alone. An entry ends with "}", a lease with ":l", a
// marker with ":m", so none meets another.
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
