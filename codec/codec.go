package codec

import (
	"encoding/json"
	"errors"
	"fmt"
	"unsafe"
)

// Format names an encoding. It is stored in every entry header (and in the
// database row), so a reader can tell which codec wrote the payload and
// refuse bytes written by another one instead of misreading them.
//
// The values are part of the stored format: they are never renumbered or
// reused, and an incompatible change to an encoding gets a new value.
type Format uint8

// The registered formats. 0 is invalid so that a zeroed header or row never
// names a real encoding.
const (
	FormatInvalid Format = 0
	FormatJSON    Format = 1 // encoding/json text: JSON
	FormatString  Format = 2 // the string's bytes, verbatim: String
	FormatBinary  Format = 3 // schema fingerprint + reflection-based binary: Binary
	FormatBytes   Format = 4 // a nil tag byte + the bytes verbatim: Bytes
)

func (f Format) String() string {
	switch f {
	case FormatJSON:
		return "json"
	case FormatString:
		return "string"
	case FormatBinary:
		return "binary"
	case FormatBytes:
		return "bytes"
	}
	return fmt.Sprintf("format(%d)", uint8(f))
}

// Codec turns values of type T into bytes and back.
//
// Encode must return an error, rather than bytes, for a value that would not
// read back exactly (see Equal); the codecs of this package guarantee it.
// Decode must never panic, whatever the input, must not modify b (it may
// view memory the caller holds as a Go string), and must not keep b: the
// caller may reuse it.
type Codec[T any] interface {
	Format() Format
	Encode(v T) ([]byte, error)
	Decode(b []byte) (T, error)
}

// KeepingDecoder is implemented by a codec whose Decode can return a value
// that shares b's memory, when the caller promises that b is never
// modified or reused: memstore passes bytes of a Redis reply or of a row
// it has read for this call alone. String's does: the string it returns
// views b, saving a copy of every value read.
type KeepingDecoder[T any] interface {
	DecodeKeeping(b []byte) (T, error)
}

// Sentinel errors. Every error of this package wraps exactly one of them.
var (
	// ErrInexact: Encode could not produce bytes that decode back to a value
	// equal to the input (per Equal). Either the codec does not support the
	// type or the value (a channel, NaN in JSON), or the read-back differs
	// (an int64 inside an any through JSON). Nothing should be stored.
	ErrInexact = errors.New("codec: value does not round-trip exactly")
	// ErrDecode: the bytes are not a valid encoding of the requested type.
	ErrDecode = errors.New("codec: cannot decode")
	// ErrCorrupt: a sealed entry failed its header, length or checksum test
	// (see Open). The entry must be dropped, never decoded.
	ErrCorrupt = errors.New("codec: corrupt entry")
)

// Compile-time checks that the codecs implement Codec.
var (
	_ Codec[int]             = JSONCodec[int]{}
	_ Codec[int]             = BinaryCodec[int]{}
	_ Codec[string]          = stringCodec{}
	_ KeepingDecoder[string] = stringCodec{}
	_ Codec[[]byte]          = bytesCodec{}
	_ Codec[int]             = exact[int]{}
)

// JSON returns the JSON codec for T with the exactness check on. It is the
// default codec: readable in the database, and any type that encoding/json
// handles works, as long as the value reads back equal.
func JSON[T any]() Codec[T] { return JSONCodec[T]{} }

// JSONCodec encodes with encoding/json. The zero value is ready to use and
// verifies every Encode.
//
// JSON cannot represent everything Go can, and the losses are silent in
// encoding/json: an int64 inside an any reads back as a float64, a time
// loses its Location name, invalid UTF-8 becomes U+FFFD, an omitempty empty
// slice reads back nil, unexported fields vanish. A time keeps its zone only
// in UTC: JSON decodes an offset as the reading process's Local zone or as a
// nameless one, so Encode refuses times in any other Location. That is why Encode decodes
// its own output and compares (see Equal), returning ErrInexact on any
// difference. encoding/json's own errors (NaN, ±Inf, channels) wrap
// ErrInexact as well.
type JSONCodec[T any] struct {
	// SkipVerify turns the read-back check off, saving one Decode and one
	// Equal per Encode. Only for types known to round-trip (no any, no
	// floats that may be NaN, no times outside UTC, no strings that may be
	// invalid UTF-8). Default false: verify.
	SkipVerify bool
}

func (JSONCodec[T]) Format() Format { return FormatJSON }

func (c JSONCodec[T]) Encode(v T) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInexact, err) // json errors say "json: "
	}
	if c.SkipVerify {
		return b, nil
	}
	if err := verify[T](c, v, b, true); err != nil {
		return nil, err
	}
	return b, nil
}

func (JSONCodec[T]) Decode(b []byte) (T, error) {
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		var zero T
		return zero, fmt.Errorf("%w: json payload: %w", ErrDecode, err)
	}
	return v, nil
}

// String returns the codec that stores a string's bytes verbatim (FormatString).
// Every string round-trips, including the empty string and invalid UTF-8, so
// it needs no check, and the database column holds exactly the user's bytes.
func String() Codec[string] { return stringCodec{} }

type stringCodec struct{}

func (stringCodec) Format() Format                  { return FormatString }
func (stringCodec) Encode(v string) ([]byte, error) { return []byte(v), nil }
func (stringCodec) Decode(b []byte) (string, error) { return string(b), nil }

// DecodeKeeping returns the string that views b, for a caller that never
// changes or reuses b (see KeepingDecoder).
func (stringCodec) DecodeKeeping(b []byte) (string, error) {
	return unsafe.String(unsafe.SliceData(b), len(b)), nil
}

// Bytes returns the codec for []byte (FormatBytes). The payload is one tag
// byte, 0 for a nil slice and 1 for any other, followed by the bytes. The tag
// costs a byte but keeps nil and empty apart, so every []byte round-trips
// and Set never has to refuse one.
func Bytes() Codec[[]byte] { return bytesCodec{} }

type bytesCodec struct{}

func (bytesCodec) Format() Format { return FormatBytes }

func (bytesCodec) Encode(v []byte) ([]byte, error) {
	if v == nil {
		return []byte{0}, nil
	}
	b := make([]byte, 1+len(v))
	b[0] = 1
	copy(b[1:], v)
	return b, nil
}

func (bytesCodec) Decode(b []byte) ([]byte, error) {
	switch {
	case len(b) == 1 && b[0] == 0:
		return nil, nil
	case len(b) >= 1 && b[0] == 1:
		// make, not append to nil: an empty payload must read back non-nil.
		v := make([]byte, len(b)-1)
		copy(v, b[1:])
		return v, nil
	case len(b) == 0:
		return nil, fmt.Errorf("%w: bytes: empty payload, want a tag byte", ErrDecode)
	}
	return nil, fmt.Errorf("%w: bytes: bad tag %#x", ErrDecode, b[0])
}

// Exact wraps a codec, typically one written by a user, with the exactness
// check: Encode decodes its own output and returns an error wrapping
// ErrInexact unless the result is Equal to the input. JSON and Binary already
// check, unless told to skip it.
func Exact[T any](c Codec[T]) Codec[T] { return exact[T]{c} }

type exact[T any] struct{ c Codec[T] }

func (e exact[T]) Format() Format             { return e.c.Format() }
func (e exact[T]) Decode(b []byte) (T, error) { return e.c.Decode(b) }

func (e exact[T]) Encode(v T) ([]byte, error) {
	b, err := e.c.Encode(v)
	if err != nil {
		return nil, err
	}
	if err := verify(e.c, v, b, false); err != nil {
		return nil, err
	}
	return b, nil
}

// verify decodes b with c and compares the result with v, the value b was
// encoded from. It is the whole exactness guarantee: whatever the codec, a
// value that would read back different is refused at Set time, in the
// process that has the original to compare with, instead of surfacing later
// as a wrong read.
//
// A read-back in this process can still miss a difference that only another
// process would see, if decoding depends on the process. encoding/json does
// for times: it decodes an offset as the reader's Local zone when they agree,
// else as a nameless fixed zone. So a time in Local written here reads back
// nameless on a machine in another zone, and a nameless one reads back as
// Local on a machine in that zone. utcTimes refuses every time not in UTC,
// the one zone JSON reads back the same everywhere.
func verify[T any](c Codec[T], v T, b []byte, utcTimes bool) error {
	got, err := c.Decode(b)
	if err != nil {
		return fmt.Errorf("%w: %v: the encoding does not decode: %w", ErrInexact, c.Format(), err)
	}
	if d := diff(&v, &got, utcTimes); d != "" {
		return fmt.Errorf("%w: %v: %s", ErrInexact, c.Format(), d)
	}
	return nil
}
