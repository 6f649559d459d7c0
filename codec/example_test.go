package codec_test

import (
	"errors"
	"fmt"
	"math"

	"github.com/memstore/memstore/codec"
)

// A store's write and read paths: encode exactly, seal for Redis, open and
// decode. A cached miss is a header state, never a payload.
func Example() {
	type Prefs struct {
		UserID int64
		Theme  string
		Tags   []string
	}
	c := codec.Binary[Prefs]()

	payload, err := c.Encode(Prefs{UserID: 1<<62 + 1, Theme: "dark"})
	if err != nil {
		panic(err)
	}
	entry := codec.Seal(nil, codec.Header{Format: c.Format(), Version: 7}, payload)

	h, p, err := codec.Open(entry)
	if err != nil {
		panic(err) // the store drops the entry and reloads from the database
	}
	v, err := c.Decode(p)
	if err != nil {
		panic(err)
	}
	fmt.Printf("version %d, format %v: %+v (Tags nil: %v)\n", h.Version, h.Format, v, v.Tags == nil)

	miss := codec.Seal(nil, codec.Header{NotFound: true, Version: 8}, nil)
	h, _, _ = codec.Open(miss)
	fmt.Println("not found:", h.NotFound)

	entry[len(entry)-1] ^= 1 // one flipped bit in the payload
	_, _, err = codec.Open(entry)
	fmt.Println(errors.Is(err, codec.ErrCorrupt))
	// Output:
	// version 7, format binary: {UserID:4611686018427387905 Theme:dark Tags:[]} (Tags nil: true)
	// not found: true
	// true
}

// JSON refuses what it would read back different, rather than storing it.
func ExampleJSON() {
	c := codec.JSON[map[string]any]()
	_, err := c.Encode(map[string]any{"id": int64(1<<62 + 1)})
	fmt.Println(errors.Is(err, codec.ErrInexact))
	fmt.Println(err)

	_, err = codec.JSON[float64]().Encode(math.NaN())
	fmt.Println(errors.Is(err, codec.ErrInexact))

	// Binary keeps both.
	b := codec.Binary[map[string]any]()
	p, _ := b.Encode(map[string]any{"id": int64(1<<62 + 1), "nan": math.NaN()})
	v, _ := b.Decode(p)
	fmt.Printf("%T %v\n", v["id"], v["id"])
	// Output:
	// true
	// codec: value does not round-trip exactly: json: at ["id"]: interface {} holding int64(4611686018427387905) reads back as interface {} holding float64(4.611686018427388e+18, bits 0x43d0000000000000)
	// true
	// int64 4611686018427387905
}
