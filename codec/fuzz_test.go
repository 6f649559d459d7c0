package codec_test

import (
	"bytes"
	"errors"
	"math"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/memstore/memstore/codec"
)

func FuzzOpen(f *testing.F) {
	f.Add(codec.Seal(nil, codec.Header{Format: codec.FormatJSON, Version: 1}, []byte(`{"a":1}`)))
	f.Add(codec.Seal(nil, codec.Header{NotFound: true, Version: 2}, nil))
	f.Add(codec.Seal(nil, codec.Header{Format: codec.FormatString}, nil))
	f.Add([]byte{})
	f.Add([]byte(`"hello"`))
	f.Add([]byte{0xC5, 0x4D, 1, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, payload, err := codec.Open(b)
		if err != nil {
			if !errors.Is(err, codec.ErrCorrupt) {
				t.Fatalf("Open error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		// Open accepts only what Seal writes.
		if re := codec.Seal(nil, h, payload); !bytes.Equal(re, b) {
			t.Fatalf("Open(%x) = %+v, %x, which seals to %x", b, h, payload, re)
		}
	})
}

// fuzzRec has a field of every kind Binary supports.
type fuzzRec struct {
	B   bool
	I   int64
	I8  int8
	U   uint32
	F   float64
	F32 float32
	C   complex64
	S   string
	Bs  []byte
	Arr [3]uint16
	P   *fuzzRec
	L   []fuzzRec
	M   map[string]int
	FM  map[float32]bool
	A   any
	T   time.Time
	E   struct{}
}

// FuzzBinaryDecode decodes arbitrary bodies behind a valid type fingerprint
// (a wrong fingerprint is refused at once, so fuzzing it finds nothing).
// Decode must not panic, and what it accepts must encode back to the same
// bytes (the encoding is canonical) and pass the exactness check.
func FuzzBinaryDecode(f *testing.F) {
	recFP := fingerprintBytes[fuzzRec](f)
	anyFP := fingerprintBytes[any](f)
	ny := newYork(f)
	seeds := []any{
		fuzzRec{},
		fuzzRec{B: true, I: math.MinInt64, I8: -1, U: 7, F: math.NaN(), F32: float32(math.Inf(-1)), C: 1i, S: "\xff",
			Bs: []byte{}, P: &fuzzRec{}, L: []fuzzRec{{}}, M: map[string]int{"a": 1, "b": 2}, FM: map[float32]bool{1: true},
			A: []any{int8(1), "x", nil}, T: time.Date(2024, 3, 10, 7, 0, 0, 0, ny)},
		map[string]any{"k": []any{1.5, uint16(3), time.Unix(0, 0).UTC(), []byte(nil), map[string]any{}}},
	}
	for _, s := range seeds {
		var b []byte
		var err error
		if r, ok := s.(fuzzRec); ok {
			b, err = codec.Binary[fuzzRec]().Encode(r)
		} else {
			b, err = codec.Binary[any]().Encode(s)
		}
		if err != nil {
			f.Fatal(err)
		}
		_, isAny := s.(map[string]any)
		f.Add(isAny, b[4:])
	}
	f.Fuzz(func(t *testing.T, asAny bool, body []byte) {
		if asAny {
			decodeCanonical[any](t, append(bytes.Clone(anyFP), body...))
		} else {
			decodeCanonical[fuzzRec](t, append(bytes.Clone(recFP), body...))
		}
	})
}

func fingerprintBytes[T any](t testing.TB) []byte {
	t.Helper()
	var zero T
	b, err := codec.Binary[T]().Encode(zero)
	if err != nil {
		t.Fatal(err)
	}
	return b[:4]
}

func decodeCanonical[T any](t *testing.T, b []byte) {
	v, err := codec.Binary[T]().Decode(b)
	if err != nil {
		if !errors.Is(err, codec.ErrDecode) {
			t.Fatalf("Decode error %v does not wrap ErrDecode", err)
		}
		return
	}
	re, err := codec.Binary[T]().Encode(v)
	if err != nil {
		t.Fatalf("Decode(%x) = %+v, which does not encode: %v", b, v, err)
	}
	if !bytes.Equal(re, b) {
		t.Fatalf("Decode(%x) = %+v, which encodes to %x", b, v, re)
	}
}

type small struct {
	S string
	B []byte
	I int64
	F float64
}

// FuzzRoundTrip checks the package guarantee on arbitrary values: through
// every codec, a value either reads back Equal or is refused with
// ErrInexact. Binary, String and Bytes must never refuse; JSON must not
// refuse what it can represent (valid UTF-8, finite floats).
func FuzzRoundTrip(f *testing.F) {
	f.Add("", []byte(nil), int64(0), uint64(0))
	f.Add("\xff", []byte{}, int64(1<<62+1), math.Float64bits(math.NaN()))
	f.Add("null", []byte("__notfound__"), int64(math.MinInt64), math.Float64bits(math.Copysign(0, -1)))
	f.Fuzz(func(t *testing.T, s string, b []byte, i int64, bits uint64) {
		if len(b) == 0 && i%2 == 0 {
			b = nil
		}
		fl := math.Float64frombits(bits)
		validUTF8 := utf8.ValidString(s)
		finite := !math.IsNaN(fl) && !math.IsInf(fl, 0)

		roundTrip(t, codec.String(), s)
		roundTrip(t, codec.Bytes(), b)

		exactOrRefused(t, codec.JSON[string](), s, validUTF8)
		exactOrRefused(t, codec.JSON[[]byte](), b, true)
		exactOrRefused(t, codec.JSON[int64](), i, true)
		exactOrRefused(t, codec.JSON[float64](), fl, finite)
		exactOrRefused(t, codec.JSON[small](), small{s, b, i, fl}, validUTF8 && finite)
		exactOrRefused(t, codec.JSON[any](), any(s), validUTF8)

		exactOrRefused(t, codec.Binary[string](), s, true)
		exactOrRefused(t, codec.Binary[[]byte](), b, true)
		exactOrRefused(t, codec.Binary[int64](), i, true)
		exactOrRefused(t, codec.Binary[float64](), fl, true)
		exactOrRefused(t, codec.Binary[small](), small{s, b, i, fl}, true)
		exactOrRefused(t, codec.Binary[any](), any(i), true)
	})
}

// exactOrRefused requires v to read back exactly through c or, unless
// mustAccept, to be refused with ErrInexact.
func exactOrRefused[T any](t *testing.T, c codec.Codec[T], v T, mustAccept bool) {
	t.Helper()
	b, err := c.Encode(v)
	if err != nil {
		if mustAccept || !errors.Is(err, codec.ErrInexact) {
			t.Fatalf("%v Encode(%#v): %v", c.Format(), v, err)
		}
		return
	}
	got, err := c.Decode(b)
	if err != nil {
		t.Fatalf("%v Decode of its own encoding %q: %v", c.Format(), b, err)
	}
	if !codec.Equal(v, got) {
		t.Fatalf("%v accepted %#v but reads back %#v", c.Format(), v, got)
	}
}
