package codec_test

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/memstore/memstore/codec"
	"pgregory.net/rapid"
)

// node is a recursive type with every shape Binary must keep: nil and empty
// slices and maps, nil pointers, floats by bits, times in named zones, and
// an any tree.
type node struct {
	I    int64
	U    uint64
	F    float64
	F32  float32
	S    string
	B    []byte
	T    time.Time
	A    any
	Next *node
	Kids []node
	M    map[string]*node
	FM   map[float64]int8
	Arr  [2]int16
}

var zones = func() []*time.Location {
	locs := []*time.Location{time.UTC, time.Local, time.FixedZone("X", 3600), time.FixedZone("", -1)}
	for _, name := range []string{"America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"} {
		loc, err := time.LoadLocation(name)
		if err != nil {
			panic(err)
		}
		locs = append(locs, loc)
	}
	return locs
}()

func drawFloat(t *rapid.T, label string) float64 {
	// Raw bits reach NaN payloads, -0, infinities and denormals.
	return math.Float64frombits(rapid.Uint64().Draw(t, label))
}

func drawBytes(t *rapid.T, label string) []byte {
	switch rapid.IntRange(0, 2).Draw(t, label+" shape") {
	case 0:
		return nil
	case 1:
		return []byte{}
	}
	return rapid.SliceOf(rapid.Byte()).Draw(t, label)
}

func drawTime(t *rapid.T) time.Time {
	sec := rapid.Int64Range(-1<<40, 1<<40).Draw(t, "sec")
	nsec := rapid.Int64Range(0, 999_999_999).Draw(t, "nsec")
	return time.Unix(sec, nsec).In(rapid.SampledFrom(zones).Draw(t, "zone"))
}

// drawAny draws a tree of the values an any may hold in Binary.
func drawAny(t *rapid.T, depth int) any {
	kinds := 9
	if depth <= 0 {
		kinds = 7 // no more nesting
	}
	switch rapid.IntRange(0, kinds-1).Draw(t, "any kind") {
	case 0:
		return nil
	case 1:
		return rapid.Bool().Draw(t, "bool")
	case 2:
		return rapid.Int64().Draw(t, "int64")
	case 3:
		return drawFloat(t, "float64")
	case 4:
		return string(drawBytes(t, "string"))
	case 5:
		return drawBytes(t, "bytes")
	case 6:
		return rapid.SampledFrom([]any{int8(-1), uint16(7), uint64(math.MaxUint64), float32(-0.5), complex(1, -1), drawTime(t)}).Draw(t, "other")
	case 7:
		if rapid.Bool().Draw(t, "nil slice") {
			return []any(nil)
		}
		s := make([]any, rapid.IntRange(0, 3).Draw(t, "len"))
		for i := range s {
			s[i] = drawAny(t, depth-1)
		}
		return s
	}
	if rapid.Bool().Draw(t, "nil map") {
		return map[string]any(nil)
	}
	m := map[string]any{}
	for range rapid.IntRange(0, 3).Draw(t, "len") {
		m[string(drawBytes(t, "key"))] = drawAny(t, depth-1)
	}
	return m
}

func drawNode(t *rapid.T, depth int) node {
	n := node{
		I:   rapid.Int64().Draw(t, "I"),
		U:   rapid.Uint64().Draw(t, "U"),
		F:   drawFloat(t, "F"),
		F32: math.Float32frombits(rapid.Uint32().Draw(t, "F32")),
		S:   string(drawBytes(t, "S")),
		B:   drawBytes(t, "B"),
		T:   drawTime(t),
		A:   drawAny(t, 2),
		Arr: [2]int16{rapid.Int16().Draw(t, "Arr0"), rapid.Int16().Draw(t, "Arr1")},
	}
	if depth <= 0 {
		return n
	}
	if rapid.Bool().Draw(t, "has Next") {
		next := drawNode(t, depth-1)
		n.Next = &next
	}
	switch rapid.IntRange(0, 2).Draw(t, "Kids shape") {
	case 1:
		n.Kids = []node{}
	case 2:
		for range rapid.IntRange(1, 2).Draw(t, "Kids len") {
			n.Kids = append(n.Kids, drawNode(t, depth-1))
		}
	}
	if rapid.Bool().Draw(t, "has M") {
		n.M = map[string]*node{}
		for range rapid.IntRange(0, 2).Draw(t, "M len") {
			var p *node
			if rapid.Bool().Draw(t, "M value") {
				v := drawNode(t, depth-1)
				p = &v
			}
			n.M[rapid.String().Draw(t, "M key")] = p
		}
	}
	if rapid.Bool().Draw(t, "has FM") {
		n.FM = map[float64]int8{}
		for range rapid.IntRange(0, 3).Draw(t, "FM len") {
			// No NaN keys: two NaNs with the same bits are refused by
			// design, and go-cmp cannot compare NaN keys (see TestNaNKeys).
			k := drawFloat(t, "FM key")
			if !math.IsNaN(k) {
				n.FM[k] = rapid.Int8().Draw(t, "FM value")
			}
		}
	}
	return n
}

func TestBinaryRoundTripProperty(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		v := drawNode(t, 2)
		roundTrip(t, codec.Binary[node](), v)
		roundTrip(t, codec.Binary[any](), drawAny(t, 4))
	})
}

// TestJSONNeverMisreadsProperty: whatever the value, JSON either reads it
// back exactly or refuses it; it never stores something that reads back
// different.
func TestJSONNeverMisreadsProperty(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		v := drawNode(t, 1)
		c := codec.JSON[node]()
		b, err := c.Encode(v)
		if err != nil {
			if !errors.Is(err, codec.ErrInexact) {
				t.Fatalf("Encode error %v does not wrap ErrInexact", err)
			}
			return
		}
		got, err := c.Decode(b)
		if err != nil {
			t.Fatalf("Decode of its own encoding: %v", err)
		}
		if !codec.Equal(v, got) {
			t.Fatalf("JSON accepted %+v but reads back %+v", v, got)
		}
	})
}

func TestEqualReflexiveProperty(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		v := drawNode(t, 2)
		if !codec.Equal(v, v) {
			t.Fatalf("Equal(v, v) = false for %+v", v)
		}
	})
}
