package codec_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/memstore/memstore/codec"
)

// benchUser is a typical small cached value.
type benchUser struct {
	ID      int64
	Name    string
	Email   string
	Tags    []string
	Score   float64
	Updated time.Time
}

var benchValue = benchUser{
	ID:      1<<62 + 1,
	Name:    "Ada Lovelace",
	Email:   "ada@example.com",
	Tags:    []string{"admin", "beta"},
	Score:   0.75,
	Updated: time.Date(2024, 1, 15, 9, 30, 0, 0, time.UTC),
}

func benchCodecs() []struct {
	name string
	c    codec.Codec[benchUser]
} {
	return []struct {
		name string
		c    codec.Codec[benchUser]
	}{
		{"json", codec.JSON[benchUser]()},
		{"json-skipverify", codec.JSONCodec[benchUser]{SkipVerify: true}},
		{"binary", codec.Binary[benchUser]()},
		{"binary-skipverify", codec.BinaryCodec[benchUser]{SkipVerify: true}},
	}
}

func BenchmarkEncode(b *testing.B) {
	for _, bc := range benchCodecs() {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.c.Encode(benchValue); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, bc := range benchCodecs() {
		p, err := bc.c.Encode(benchValue)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(p)))
			for b.Loop() {
				if _, err := bc.c.Decode(p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkString(b *testing.B) {
	s := "a typical cached string value"
	b.ReportAllocs()
	for b.Loop() {
		p, _ := codec.String().Encode(s)
		if _, err := codec.String().Decode(p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEqual(b *testing.B) {
	a, c := benchValue, benchValue
	b.ReportAllocs()
	for b.Loop() {
		if !codec.Equal(a, c) {
			b.Fatal("not equal")
		}
	}
}

func BenchmarkSeal(b *testing.B) {
	payload := bytes.Repeat([]byte("v"), 100)
	h := codec.Header{Format: codec.FormatJSON, Version: 42}
	buf := make([]byte, 0, codec.HeaderSize+len(payload))
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		buf = codec.Seal(buf[:0], h, payload)
	}
}

func BenchmarkOpen(b *testing.B) {
	sealed := codec.Seal(nil, codec.Header{Format: codec.FormatJSON, Version: 42}, bytes.Repeat([]byte("v"), 100))
	b.ReportAllocs()
	b.SetBytes(int64(len(sealed)))
	for b.Loop() {
		if _, _, err := codec.Open(sealed); err != nil {
			b.Fatal(err)
		}
	}
}
