package codec_test

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/memstore/memstore/codec"
)

type treeNode struct {
	Value int
	Kids  []treeNode
	Up    *treeNode
	Index map[string]*treeNode
}

type (
	celsius  float64
	blob     []byte
	hash     [4]byte
	flagSet  map[string]bool
	embedded struct{ Inner }
	Inner    struct{ X, Y int16 }
)

func TestBinaryTypes(t *testing.T) {
	t.Parallel()
	roundTrip(t, codec.Binary[treeNode](), treeNode{
		Value: 1,
		Kids:  []treeNode{{Value: 2, Kids: []treeNode{}}, {Value: 3, Index: map[string]*treeNode{"x": {Value: 4}, "nil": nil}}},
		Up:    &treeNode{Value: -1},
	})
	roundTrip(t, codec.Binary[celsius](), celsius(math.Copysign(0, -1)))
	roundTrip(t, codec.Binary[blob](), blob{})
	roundTrip(t, codec.Binary[blob](), nil)
	roundTrip(t, codec.Binary[hash](), hash{1, 2, 3, 4})
	roundTrip(t, codec.Binary[flagSet](), flagSet{"a": true, "b": false})
	roundTrip(t, codec.Binary[embedded](), embedded{Inner{-1, 2}})
	roundTrip(t, codec.Binary[[]struct{}](), make([]struct{}, 1000))
	roundTrip(t, codec.Binary[map[[2]int8]complex64](), map[[2]int8]complex64{{1, 2}: complex(float32(math.Inf(1)), 0)})
	roundTrip(t, codec.Binary[[]*int](), []*int{nil, new(int)})
	roundTrip(t, codec.Binary[map[any]int](), map[any]int{"s": 1, int8(1): 2, nil: 3, 1.5: 4, false: 5})
	roundTrip(t, codec.Binary[any](), nil)
	roundTrip(t, codec.Binary[[]any](), []any{
		true, int(-1), int8(-2), int16(-3), int32(-4), int64(-5), uint(1), uint8(2), uint16(3), uint32(4), uint64(5), uintptr(6),
		float32(1.5), float64(2.5), complex64(1i), complex128(2i), "s", []byte(nil), []byte{}, time.Unix(1, 2).UTC(),
		[]any(nil), []any{}, map[string]any(nil), map[string]any{"k": []any{nil}},
	})
}

func TestBinaryRefusesTypes(t *testing.T) {
	t.Parallel()
	refused(t, codec.Binary[chan int](), nil)
	refused(t, codec.Binary[func()](), nil)
	refused(t, codec.Binary[error](), nil)
	refused(t, codec.Binary[struct{ F fmt.Stringer }](), struct{ F fmt.Stringer }{})
	refused(t, codec.Binary[[]withUnexported](), nil) // the type is refused, even with no value of it
	refused(t, codec.Binary[any](), any(celsius(1)))
	refused(t, codec.Binary[any](), any(struct{}{}))
	refused(t, codec.Binary[any](), any([]int{1}))

	// The refusal is also a decode error: nothing of this type was ever stored.
	if _, err := codec.Binary[chan int]().Decode([]byte{0, 0, 0, 0}); !errors.Is(err, codec.ErrDecode) {
		t.Errorf("Decode for chan int: %v, want ErrDecode", err)
	}
}

func TestBinaryRefusesCycles(t *testing.T) {
	t.Parallel()
	n := &treeNode{Value: 1}
	n.Up = n
	refused(t, codec.Binary[*treeNode](), n)
	s := []any{nil}
	s[0] = s
	refused(t, codec.Binary[[]any](), s)
}

// TestBinaryTypeFingerprint shows that bytes written for one shape of a
// struct are refused by another, instead of landing in the wrong fields.
func TestBinaryTypeFingerprint(t *testing.T) {
	t.Parallel()
	type v1 struct {
		A int64
		B string
	}
	type v2 struct {
		A int64
		C int64
		B string
	}
	type renamed struct {
		A int64
		D string
	}
	type sameShape struct { // another type, same fields: compatible
		A int64
		B string
	}
	b, err := codec.Binary[v1]().Encode(v1{A: 1, B: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := codec.Binary[v2]().Decode(b); !errors.Is(err, codec.ErrDecode) {
		t.Errorf("decoded v1 bytes as v2: %+v, %v; want ErrDecode", v, err)
	}
	if v, err := codec.Binary[renamed]().Decode(b); !errors.Is(err, codec.ErrDecode) {
		t.Errorf("decoded v1 bytes as renamed: %+v, %v; want ErrDecode", v, err)
	}
	if v, err := codec.Binary[sameShape]().Decode(b); err != nil || v != (sameShape{1, "x"}) {
		t.Errorf("decoded v1 bytes as sameShape: %+v, %v; want {1 x}", v, err)
	}
}

// TestBinaryTimeZones covers how Decode rebuilds a Location.
func TestBinaryTimeZones(t *testing.T) {
	t.Parallel()
	ny := newYork(t)
	winter := time.Date(2024, 1, 15, 12, 0, 0, 1, ny)
	summer := time.Date(2024, 7, 15, 12, 0, 0, 1, ny)
	c := codec.Binary[time.Time]()
	tests := []struct {
		name string
		in   time.Time
		loc  *time.Location // the Location Decode must give, if not nil
	}{
		{"UTC", winter.UTC(), time.UTC},
		{"Local", winter.Local(), time.Local},
		{"named, winter", winter, nil},
		{"named, summer", summer, nil},
		{"fixed zone with a zone's name but another offset", winter.In(time.FixedZone("America/New_York", 3600)), nil},
		{"fixed zone named UTC with an offset", winter.In(time.FixedZone("UTC", 3600)), nil},
		{"fixed zone named Local", winter.In(time.FixedZone("Local", 12345)), nil},
		{"unknown zone name", winter.In(time.FixedZone("Mars/Olympus_Mons", -1)), nil},
		{"empty zone name", winter.In(time.FixedZone("", 0)), nil},
		{"path-like zone name", winter.In(time.FixedZone("../../etc/passwd", 60)), nil},
		{"year 1", time.Date(1, 1, 1, 0, 0, 0, 0, ny), nil},
		{"year 9999", time.Date(9999, 12, 31, 23, 59, 59, 999999999, ny), nil},
		{"before 1970", time.Unix(-1, 999999999).UTC(), time.UTC},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			roundTrip(t, c, tt.in)
			if tt.loc == nil {
				return
			}
			b, _ := c.Encode(tt.in)
			got, _ := c.Decode(b)
			if got.Location() != tt.loc {
				t.Errorf("Location = %p (%v), want %p (%v)", got.Location(), got.Location(), tt.loc, tt.loc)
			}
		})
	}
}

// TestBinaryDecodeRejects feeds hand-made payloads that are not what Encode
// writes: the encoding is canonical, so each must be refused.
func TestBinaryDecodeRejects(t *testing.T) {
	t.Parallel()
	type rec struct {
		B bool
		I int8
		S []int
		M map[string]bool
		P *int
	}
	good, err := codec.Binary[rec]().Encode(rec{B: true, I: -1, S: []int{1}, M: map[string]bool{"a": true, "b": false}})
	if err != nil {
		t.Fatal(err)
	}
	fp := hex.EncodeToString(good[:4])
	// Body of good: 01 (B) 01 (I=-1) 02 02 (S len 1, elem 1) 03 01 61 01 01 62 00 (M) 00 (P nil)
	if got, want := hex.EncodeToString(good[4:]), "01010202030161010162"+"0000"; got != want {
		t.Fatalf("Encode body = %s, want %s (the cases below patch it)", got, want)
	}
	tests := map[string]string{
		"empty":                "",
		"short fingerprint":    fp[:6],
		"other fingerprint":    "00000000" + "01010202030161010162" + "0000",
		"bool 2":               fp + "02010202030161010162" + "0000",
		"int8 overflow":        fp + "01800202030161010162" + "0000",
		"varint not shortest":  fp + "0181000202030161010162" + "0000",
		"slice length too big": fp + "0101ff0f02030161010162" + "0000",
		"map keys unordered":   fp + "010102020301620101610100" + "00",
		"map key repeated":     fp + "010102020301610101610000",
		"pointer flag 2":       fp + "01010202030161010162" + "0002",
		"truncated":            fp + "0101020203016101",
		"trailing byte":        fp + "01010202030161010162" + "000000",
		"varint overflow":      fp + "0101ffffffffffffffffff7f",
	}
	for name, h := range tests {
		b, err := hex.DecodeString(h)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if v, err := codec.Binary[rec]().Decode(b); !errors.Is(err, codec.ErrDecode) {
			t.Errorf("%s: Decode = %+v, %v; want ErrDecode", name, v, err)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

func TestBinaryDecodeRejectsMore(t *testing.T) {
	t.Parallel()
	anyFP := fingerprint[any](t)
	timeFP := fingerprint[time.Time](t)
	floatFP := fingerprint[map[float64]int](t)
	tests := []struct {
		name string
		err  error
	}{
		{"unknown any tag", decodeHex[any](anyFP + "7f")},
		{"unhashable key", decodeHex[map[any]int](fingerprint[map[any]int](t) + "02" + "1401" + "00")},
		{"time nanoseconds", decodeHex[time.Time](timeFP + "00" + "80a8d6b907" + "00" + "00")},
		{"time offset", decodeHex[time.Time](timeFP + "00" + "00" + "00" + "8080808010")},
		{"-0 and +0 keys", decodeHex[map[float64]int](floatFP + "03" + "0000000000000000" + "00" + "0000000000000080" + "00")},
		{"huge zero-size map", decodeHex[map[struct{}]struct{}](fingerprint[map[struct{}]struct{}](t) + "ffffffffffffffff7f")},
	}
	for _, tt := range tests {
		if !errors.Is(tt.err, codec.ErrDecode) {
			t.Errorf("%s: Decode error = %v, want ErrDecode", tt.name, tt.err)
		} else {
			t.Logf("%s: %v", tt.name, tt.err)
		}
	}
}

func fingerprint[T any](t testing.TB) string {
	t.Helper()
	var zero T
	b, err := codec.Binary[T]().Encode(zero)
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:4])
}

func decodeHex[T any](h string) error {
	b, err := hex.DecodeString(h)
	if err != nil {
		panic(err)
	}
	_, err = codec.Binary[T]().Decode(b)
	return err
}

func TestBinaryDeepNesting(t *testing.T) {
	t.Parallel()
	// A list just under the nesting limit round-trips...
	var list *treeNode
	for i := range 4000 {
		list = &treeNode{Value: i, Up: list}
	}
	roundTrip(t, codec.Binary[*treeNode](), list)
	// ...and a hostile input nesting far deeper is refused, not a stack overflow.
	b, _ := hex.DecodeString(fingerprint[any](t))
	b = append(b, []byte(strings.Repeat("\x14\x02", 200000))...) // []any{[]any{...
	if _, err := codec.Binary[any]().Decode(b); !errors.Is(err, codec.ErrDecode) {
		t.Errorf("Decode of deep nesting: %v, want ErrDecode", err)
	}
}

func TestBinaryMapOrderIsCanonical(t *testing.T) {
	t.Parallel()
	m := map[string]int{}
	for i := range 200 {
		m[fmt.Sprint(i)] = i
	}
	first, err := codec.Binary[map[string]int]().Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		b, _ := codec.Binary[map[string]int]().Encode(m)
		if string(b) != string(first) {
			t.Fatal("two encodings of one map differ")
		}
	}
}
