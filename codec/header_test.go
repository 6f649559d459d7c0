package codec_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/memstore/memstore/codec"
)

func TestSealOpen(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		h       codec.Header
		payload []byte
	}{
		{"value", codec.Header{Format: codec.FormatJSON, Version: 42}, []byte(`{"a":1}`)},
		{"empty payload", codec.Header{Format: codec.FormatString, Version: 1}, nil},
		{"not found", codec.Header{NotFound: true, Version: 9}, nil},
		{"max version", codec.Header{Format: codec.FormatBinary, Version: math.MaxUint64}, []byte{0}},
		{"payload is a sealed not-found entry", codec.Header{Format: codec.FormatString, Version: 3},
			codec.Seal(nil, codec.Header{NotFound: true, Version: 3}, nil)},
		{"payload is the magic", codec.Header{Format: codec.FormatBytes}, []byte{1, 0xC5, 0x4D}},
		{"large payload", codec.Header{Format: codec.FormatString, Version: 5}, bytes.Repeat([]byte("x"), 1<<20)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			prefix := []byte("prefix")
			sealed := codec.Seal(bytes.Clone(prefix), tt.h, tt.payload)
			if !bytes.HasPrefix(sealed, prefix) {
				t.Fatalf("Seal did not append to dst")
			}
			sealed = sealed[len(prefix):]
			if got, want := len(sealed), codec.HeaderSize+len(tt.payload); got != want {
				t.Errorf("sealed length = %d, want %d", got, want)
			}
			h, payload, err := codec.Open(sealed)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if d := cmp.Diff(tt.h, h); d != "" {
				t.Errorf("header differs (-want +got):\n%s", d)
			}
			if !bytes.Equal(payload, tt.payload) {
				t.Errorf("payload = %q, want %q", payload, tt.payload)
			}
		})
	}
}

// TestOpenDetectsDamage changes every byte of a small sealed entry to every
// other value, and cuts and extends it at every length: Open must refuse
// each one.
func TestOpenDetectsDamage(t *testing.T) {
	t.Parallel()
	for _, h := range []codec.Header{
		{Format: codec.FormatJSON, Version: 0x0102030405060708},
		{NotFound: true, Version: 77},
	} {
		payload := []byte(`"v"`)
		if h.NotFound {
			payload = nil
		}
		sealed := codec.Seal(nil, h, payload)
		for i := range sealed {
			for x := range 256 {
				if byte(x) == sealed[i] {
					continue
				}
				b := bytes.Clone(sealed)
				b[i] = byte(x)
				if _, _, err := codec.Open(b); !errors.Is(err, codec.ErrCorrupt) {
					t.Fatalf("byte %d set to %#x: Open error = %v, want ErrCorrupt", i, x, err)
				}
			}
		}
		for n := range len(sealed) {
			if _, _, err := codec.Open(sealed[:n]); !errors.Is(err, codec.ErrCorrupt) {
				t.Fatalf("cut to %d bytes: Open error = %v, want ErrCorrupt", n, err)
			}
		}
		for _, tail := range [][]byte{{0}, {1, 2, 3}, sealed} {
			if _, _, err := codec.Open(append(bytes.Clone(sealed), tail...)); !errors.Is(err, codec.ErrCorrupt) {
				t.Fatalf("extended by %q: Open error = %v, want ErrCorrupt", tail, err)
			}
		}
	}
}

func TestOpenRejectsForeign(t *testing.T) {
	t.Parallel()
	foreign := map[string][]byte{
		"nil":         nil,
		"empty":       {},
		"json string": []byte(`"hello"`),
		"json object": []byte(`{"a":1,"b":[1,2,3],"c":"a long enough string"}`),
		"raw text":    []byte("just some text that is longer than a header"),
		"magic only":  {0xC5, 0x4D},
		"header only": codec.Seal(nil, codec.Header{Format: codec.FormatJSON}, nil)[:codec.HeaderSize-1],
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 100 {
		b := make([]byte, r.IntN(64))
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		if i%2 == 0 && len(b) >= 2 {
			b[0], b[1] = 0xC5, 0x4D // past the magic, to the checks behind it
		}
		foreign["random "+string(rune('a'+i%26))+string(rune('a'+i/26))] = b
	}
	for name, b := range foreign {
		if h, p, err := codec.Open(b); !errors.Is(err, codec.ErrCorrupt) {
			t.Errorf("%s: Open = %+v, %q, %v; want ErrCorrupt", name, h, p, err)
		}
	}
}

// TestOpenRejectsWhatSealRefuses builds entries with a valid checksum whose
// header no Seal writes.
func TestOpenRejectsWhatSealRefuses(t *testing.T) {
	t.Parallel()
	// Patch a sealed not-found entry and recompute its checksum, so only the
	// header's consistency checks stand between it and acceptance.
	tests := map[string]func(b []byte) []byte{
		"not found with a format": func(b []byte) []byte { b[4] = byte(codec.FormatJSON); return b },
		"value without a format":  func(b []byte) []byte { b[3] = 0; return b },
		"unknown flag":            func(b []byte) []byte { b[3] |= 0x80; return b },
		"unknown layout":          func(b []byte) []byte { b[2] = 2; return b },
	}
	for name, patch := range tests {
		b := patch(codec.Seal(nil, codec.Header{NotFound: true, Version: 1}, nil))
		b = fixChecksum(b)
		if _, _, err := codec.Open(b); !errors.Is(err, codec.ErrCorrupt) {
			t.Errorf("%s: Open error = %v, want ErrCorrupt", name, err)
		}
	}
}

func TestSealPanicsOnContradiction(t *testing.T) {
	t.Parallel()
	tests := map[string]func(){
		"not found with payload": func() { codec.Seal(nil, codec.Header{NotFound: true}, []byte("x")) },
		"not found with format":  func() { codec.Seal(nil, codec.Header{NotFound: true, Format: codec.FormatJSON}, nil) },
		"value without format":   func() { codec.Seal(nil, codec.Header{}, []byte("x")) },
	}
	for name, f := range tests {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: Seal did not panic", name)
				}
			}()
			f()
		}()
	}
}

func TestOpenDoesNotAllocate(t *testing.T) {
	sealed := codec.Seal(nil, codec.Header{Format: codec.FormatJSON, Version: 3}, bytes.Repeat([]byte("v"), 100))
	allocs := testing.AllocsPerRun(100, func() {
		if _, _, err := codec.Open(sealed); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Open allocates %v times per call, want 0", allocs)
	}
}

// fixChecksum rewrites the CRC-32C of a sealed entry to match its bytes, as
// the layout in Seal's documentation defines it.
func fixChecksum(b []byte) []byte {
	const crcAt = codec.HeaderSize - 4
	tab := crc32.MakeTable(crc32.Castagnoli)
	crc := crc32.Update(crc32.Update(0, tab, b[:crcAt]), tab, b[codec.HeaderSize:])
	binary.BigEndian.PutUint32(b[crcAt:], crc)
	return b
}
