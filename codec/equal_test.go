package codec_test

import (
	"math"
	"net"
	"testing"
	"time"

	"github.com/memstore/memstore/codec"
)

type hidden struct {
	Name  string
	count int
	when  time.Time
	ratio float32
	m     map[string]hidden
}

func TestEqual(t *testing.T) {
	t.Parallel()
	ny := newYork(t)
	at := time.Date(2024, 1, 15, 9, 30, 0, 0, ny)
	nan := math.NaN()
	otherNaN := math.Float64frombits(0x7ff8_0000_0000_0002)
	negZero := math.Copysign(0, -1)
	sNaN32 := math.Float32frombits(0x7f800001)
	qNaN32 := math.Float32frombits(0x7fc00001)
	cyclic := func() *treeNode { n := &treeNode{Value: 1}; n.Up = n; return n }
	fn := func() {}

	tests := []struct {
		name string
		a, b any
		want bool
	}{
		{"nil and nil", nil, nil, true},
		{"nil and typed nil", nil, []int(nil), false},
		{"int64 and float64", int64(1), float64(1), false},
		{"int and int64", 1, int64(1), false},
		{"NaN and itself", nan, nan, true},
		{"NaN payloads", nan, otherNaN, false},
		{"-0 and +0", negZero, 0.0, false},
		{"float32 signalling and quiet NaN", sNaN32, qNaN32, false},
		{"float32 signalling NaN and itself", sNaN32, sNaN32, true},
		{"named float -0", celsius(negZero), celsius(0), false},
		{"complex parts by bits", complex(negZero, 1), complex(0, 1), false},
		{"nil and empty slice", []int(nil), []int{}, false},
		{"nil and empty map", map[string]int(nil), map[string]int{}, false},
		{"nil and empty bytes", []byte(nil), []byte{}, false},
		{"equal bytes", []byte("ab"), []byte("ab"), true},
		{"pointers to equal values", &inner{N: 1}, &inner{N: 1}, true},
		{"pointers to different values", &inner{N: 1}, &inner{N: 2}, false},
		{"nil and non-nil pointer", (*int)(nil), new(int), false},
		{"different instants", at, at.Add(1), false},
		{"same instant, other zone", at, at.UTC(), false},
		{"same instant, same offset, other name", at, at.In(time.FixedZone("EST", -5*3600)), false},
		{"same instant and zone", at, at.In(ny), true},
		{"zone fallback keeps name and offset", at, at.In(time.FixedZone("America/New_York", -5*3600)), true},
		{"unexported fields", hidden{Name: "a", count: 1}, hidden{Name: "a", count: 2}, false},
		{"unexported fields equal", hidden{Name: "a", count: 1, ratio: sNaN32}, hidden{Name: "a", count: 1, ratio: sNaN32}, true},
		{"unexported float32 bits", hidden{ratio: sNaN32}, hidden{ratio: qNaN32}, false},
		{"unexported time zone", hidden{when: at}, hidden{when: at.UTC()}, false},
		{"unexported map of structs", hidden{m: map[string]hidden{"k": {count: 1}}}, hidden{m: map[string]hidden{"k": {count: 2}}}, false},
		{"NaN keys", map[float64]int{nan: 1}, map[float64]int{nan: 1}, true},
		{"NaN keys, other values", map[float64]int{nan: 1}, map[float64]int{nan: 2}, false},
		{"-0 key and +0 key", map[float64]int{negZero: 1}, map[float64]int{0: 1}, false},
		{"any keys", map[any]int{1: 1, "x": 2}, map[any]int{"x": 2, 1: 1}, true},
		{"missing key", map[string]int{"a": 1}, map[string]int{"b": 1}, false},
		{"cycles", cyclic(), cyclic(), true},
		{"nil funcs", (func())(nil), (func())(nil), true},
		{"non-nil funcs", fn, fn, false},
		{"net.IP 4 and 16 bytes", net.IPv4(1, 2, 3, 4).To4(), net.IPv4(1, 2, 3, 4), false},
		{"zero-size elements", make([]struct{}, 3), make([]struct{}, 3), true},
	}
	for _, tt := range tests {
		if got := codec.Equal(tt.a, tt.b); got != tt.want {
			t.Errorf("%s: Equal(%v, %v) = %v, want %v", tt.name, tt.a, tt.b, got, tt.want)
		}
		if got := codec.Equal(tt.b, tt.a); got != tt.want {
			t.Errorf("%s: Equal(%v, %v) = %v, want %v (swapped)", tt.name, tt.b, tt.a, got, tt.want)
		}
		if !codec.Equal(tt.a, tt.a) && tt.name != "non-nil funcs" {
			t.Errorf("%s: Equal(a, a) = false", tt.name)
		}
	}

	now := time.Now()
	if !codec.Equal(now, now.Round(0)) {
		t.Error("Equal(now, now.Round(0)) = false: the monotonic reading must be ignored")
	}
}
