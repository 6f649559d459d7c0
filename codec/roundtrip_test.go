package codec_test

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // America/New_York must load on machines without a zone database

	"github.com/google/go-cmp/cmp"
	"github.com/memstore/memstore/codec"
)

// exact makes go-cmp compare the way codec.Equal does. It is written
// independently of Equal, so the tests check Equal as well as the codecs.
var exact = cmp.Options{
	cmp.Comparer(func(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) }),
	cmp.Comparer(func(a, b float32) bool { return math.Float32bits(a) == math.Float32bits(b) }),
	cmp.Comparer(func(a, b complex128) bool {
		return math.Float64bits(real(a)) == math.Float64bits(real(b)) && math.Float64bits(imag(a)) == math.Float64bits(imag(b))
	}),
	cmp.Comparer(func(a, b time.Time) bool {
		_, oa := a.Zone()
		_, ob := b.Zone()
		return a.Equal(b) && a.Location().String() == b.Location().String() && oa == ob
	}),
	cmp.Exporter(func(reflect.Type) bool { return true }),
}

// tb is the part of testing.TB that the helpers use; *rapid.T has it too.
type tb interface {
	Helper()
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
}

// roundTrip encodes v with c, decodes it and requires the same value back.
func roundTrip[T any](t tb, c codec.Codec[T], v T) {
	t.Helper()
	b, err := c.Encode(v)
	if err != nil {
		t.Fatalf("%v Encode: %v", c.Format(), err)
	}
	got, err := c.Decode(b)
	if err != nil {
		t.Fatalf("%v Decode: %v", c.Format(), err)
	}
	if d := cmp.Diff(v, got, exact); d != "" {
		t.Fatalf("%v round trip differs (-want +got):\n%s", c.Format(), d)
	}
	if !codec.Equal(v, got) {
		t.Fatalf("%v round trip: go-cmp sees no difference but codec.Equal does", c.Format())
	}
}

// refused requires c.Encode(v) to fail with ErrInexact.
func refused[T any](t tb, c codec.Codec[T], v T) {
	t.Helper()
	b, err := c.Encode(v)
	if !errors.Is(err, codec.ErrInexact) {
		t.Fatalf("%v Encode = %q, %v; want an error wrapping ErrInexact", c.Format(), b, err)
	}
	t.Logf("%v refuses it: %v", c.Format(), err)
}

// jsonWhen says what JSON does with a value.
type jsonWhen int

const (
	jsonExact   jsonWhen = iota // round-trips
	jsonRefused                 // Encode returns ErrInexact
)

type valueCase struct {
	name string
	json jsonWhen
	run  func(t *testing.T, json jsonWhen)
}

// value makes a case that round-trips v through Binary (always exact) and
// through JSON as the case says.
func value[T any](name string, json jsonWhen, v T) valueCase {
	return valueCase{name, json, func(t *testing.T, json jsonWhen) {
		t.Run("binary", func(t *testing.T) { roundTrip(t, codec.Binary[T](), v) })
		t.Run("json", func(t *testing.T) {
			switch json {
			case jsonExact:
				roundTrip(t, codec.JSON[T](), v)
			case jsonRefused:
				refused(t, codec.JSON[T](), v)
			}
		})
	}}
}

type inner struct {
	N    int64
	Name string
	Next *inner
}

type outer struct {
	ID      uint64
	Ptr     *inner
	NilPtr  *inner
	Rows    []map[string]int64
	Nested  [2]inner
	Created time.Time
	Tags    []string
	NoTags  []string
	Blob    []byte
}

type withUnexported struct {
	Public  int
	private int
}

type omitEmpty struct {
	S []int `json:",omitempty"`
}

func newYork(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// markers are byte strings that mean something to the store or to this
// package. As user values they must round-trip as values.
func markers() map[string]string {
	return map[string]string{
		"magic":           "\xC5\x4D",
		"sealed notfound": string(codec.Seal(nil, codec.Header{NotFound: true, Version: 7}, nil)),
		"sealed value":    string(codec.Seal(nil, codec.Header{Format: codec.FormatString, Version: 1}, []byte("v"))),
		"null":            "null",
		"notfound":        "__notfound__",
		"empty":           "",
		"json string":     `"x"`,
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	ny := newYork(t)
	at := time.Date(2024, 1, 15, 9, 30, 0, 123456789, ny)
	nan := math.NaN()
	nanPayload := math.Float64frombits(0x7ff8_dead_beef_0001)
	negZero := math.Copysign(0, -1)
	big := strings.Repeat("memstore", 1<<17) // 1 MiB

	cases := []valueCase{
		value("int64 2^62+1", jsonExact, int64(1<<62+1)),
		value("int64 max", jsonExact, int64(math.MaxInt64)),
		value("int64 min", jsonExact, int64(math.MinInt64)),
		value("uint64 max", jsonExact, uint64(math.MaxUint64)),
		value("int8 min", jsonExact, int8(math.MinInt8)),
		value("any int64 2^62+1", jsonRefused, any(int64(1<<62+1))),
		value("any int", jsonRefused, any(1)),
		value("any uint64 max", jsonRefused, any(uint64(math.MaxUint64))),
		value("NaN", jsonRefused, nan),
		value("NaN with payload", jsonRefused, nanPayload),
		value("float32 signalling NaN", jsonRefused, math.Float32frombits(0x7f800001)),
		value("-0", jsonExact, negZero),
		value("+Inf", jsonRefused, math.Inf(1)),
		value("-Inf", jsonRefused, math.Inf(-1)),
		value("smallest denormal", jsonExact, math.SmallestNonzeroFloat64),
		value("complex", jsonRefused, complex(nan, negZero)),
		value("nil slice", jsonExact, []int(nil)),
		value("empty slice", jsonExact, []int{}),
		value("nil map", jsonExact, map[string]int(nil)),
		value("empty map", jsonExact, map[string]int{}),
		value("nil bytes", jsonExact, []byte(nil)),
		value("empty bytes", jsonExact, []byte{}),
		value("float keys", jsonRefused, map[float64]string{negZero: "-0", 0.5: "half", math.Inf(1): "inf"}),
		value("time New York", jsonRefused, at),
		value("time UTC", jsonExact, at.UTC()),
		value("time fixed zone", jsonRefused, at.In(time.FixedZone("X", 3600))),
		value("time unnamed fixed zone", jsonRefused, at.In(time.FixedZone("", -7200))),
		value("time Local", jsonRefused, at.Local()),
		value("time in a zone named UTC with an offset", jsonRefused, at.In(time.FixedZone("UTC", 3600))),
		value("time with monotonic reading", jsonExact, time.Now().UTC()),
		value("zero time", jsonExact, time.Time{}),
		value("invalid UTF-8", jsonRefused, "\xff\xfe\xc5"),
		value("empty string", jsonExact, ""),
		value("nested", jsonExact, outer{
			ID:      math.MaxUint64,
			Ptr:     &inner{N: -1, Name: "a", Next: &inner{N: 1 << 60}},
			Rows:    []map[string]int64{{"a": 1}, nil, {}},
			Nested:  [2]inner{{Name: "x"}, {Next: &inner{}}},
			Created: at.UTC(),
			NoTags:  []string{},
			Blob:    []byte{0, 1, 2},
		}),
		value("nested any", jsonExact, any(map[string]any{"a": []any{"x", true, nil, 1.5, map[string]any{}}, "b": nil})),
		value("nested any with an int", jsonRefused, any(map[string]any{"n": []any{int64(3)}})),
		value("1 MiB string", jsonExact, big),
		value("omitempty empty slice", jsonRefused, omitEmpty{S: []int{}}),
	}
	for name, m := range markers() {
		json := jsonExact
		if !isUTF8(m) {
			json = jsonRefused
		}
		cases = append(cases,
			value("marker string "+name, json, m),
			value("marker bytes "+name, jsonExact, []byte(m)),
		)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, c.json)
		})
	}
}

func isUTF8(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

func TestRawRoundTrip(t *testing.T) {
	t.Parallel()
	strs := []string{"", "x", "\xff\xfe", "null", strings.Repeat("\x00", 1000)}
	for _, m := range markers() {
		strs = append(strs, m)
	}
	for _, s := range strs {
		roundTrip(t, codec.String(), s)
		b, _ := codec.String().Encode(s)
		if string(b) != s {
			t.Errorf("String().Encode(%q) = %q, want the bytes verbatim", s, b)
		}
		roundTrip(t, codec.Bytes(), []byte(s))
	}
	roundTrip(t, codec.Bytes(), nil)
	roundTrip(t, codec.Bytes(), []byte{})
}

func TestBytesDecodeErrors(t *testing.T) {
	t.Parallel()
	for _, b := range [][]byte{nil, {}, {2}, {0, 0}, {0xff, 1}} {
		if v, err := codec.Bytes().Decode(b); !errors.Is(err, codec.ErrDecode) {
			t.Errorf("Bytes().Decode(%q) = %q, %v; want ErrDecode", b, v, err)
		}
	}
}

// TestInexactMessage checks that the error names where the value differs.
func TestInexactMessage(t *testing.T) {
	t.Parallel()
	type doc struct{ Meta map[string]any }
	_, err := codec.JSON[doc]().Encode(doc{Meta: map[string]any{"n": int64(1<<62 + 1)}})
	if !errors.Is(err, codec.ErrInexact) {
		t.Fatalf("Encode error = %v, want ErrInexact", err)
	}
	for _, want := range []string{`.Meta["n"]`, "int64(4611686018427387905)", "float64"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestUnexportedFields(t *testing.T) {
	t.Parallel()
	// JSON drops the field silently; the check catches it once it is set.
	roundTrip(t, codec.JSON[withUnexported](), withUnexported{Public: 1})
	refused(t, codec.JSON[withUnexported](), withUnexported{Public: 1, private: 2})
	// Binary refuses the type outright, whatever the value.
	refused(t, codec.Binary[withUnexported](), withUnexported{Public: 1})
}

func TestSkipVerify(t *testing.T) {
	t.Parallel()
	v := map[string]any{"n": int64(1<<62 + 1)}
	b, err := codec.JSONCodec[map[string]any]{SkipVerify: true}.Encode(v)
	if err != nil {
		t.Fatalf("Encode with SkipVerify: %v", err)
	}
	got, err := codec.JSON[map[string]any]().Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if codec.Equal(v, got) {
		t.Fatalf("JSON read back %v exactly; the test needs a lossy value", got)
	}
	roundTrip(t, codec.Codec[map[string]any](codec.BinaryCodec[map[string]any]{SkipVerify: true}), v)
}

// lossy is a user codec that drops the sign of negative numbers.
type lossy struct{}

func (lossy) Format() codec.Format         { return 99 }
func (lossy) Encode(v int) ([]byte, error) { return []byte{byte(max(v, -v))}, nil }
func (lossy) Decode(b []byte) (int, error) { return int(b[0]), nil }

func TestExact(t *testing.T) {
	t.Parallel()
	c := codec.Exact[int](lossy{})
	if c.Format() != 99 {
		t.Errorf("Format = %v, want the wrapped codec's", c.Format())
	}
	roundTrip(t, c, 5)
	refused(t, c, -5)
}

// TestNaNKeys is apart from TestRoundTrip because go-cmp cannot compare maps
// with NaN keys.
func TestNaNKeys(t *testing.T) {
	t.Parallel()
	v := map[float64]int{math.NaN(): 1, math.Float64frombits(0x7ff8_0000_0000_0002): 2, 0: 3}
	c := codec.Binary[map[float64]int]()
	b, err := c.Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !codec.Equal(v, got) {
		t.Fatalf("read back %v, want %v", got, v)
	}
	sum := 0
	for k, n := range got {
		if math.IsNaN(k) && math.Float64bits(k) != uint64(0x7ff8_0000_0000_0000+n) {
			t.Errorf("NaN key %#x holds %d", math.Float64bits(k), n)
		}
		sum += n
	}
	if sum != 6 {
		t.Errorf("values sum to %d, want 6", sum)
	}

	// Two NaN keys with the same bits have one encoding: refused.
	v = map[float64]int{math.NaN(): 1}
	v[math.NaN()] = 2
	refused(t, c, v)
}
