// Package codec holds the encodings of memstore values and the header that
// seals every cache entry.
//
// # Guarantee
//
// A value either reads back exactly or is refused when it is written. Encode
// of JSON and Binary decodes its own output and compares it with the input
// (see Equal: floats by bits, times by instant, zone name and offset, nil
// apart from empty, unexported fields included); any difference is an error
// wrapping ErrInexact, and the store's Set fails instead of storing bytes
// that would read back different. String and Bytes keep every value by
// construction. Decode never panics and reports bad input with ErrDecode.
//
// The same payload bytes are stored in Redis and in the database, so both
// tiers read back the same value.
//
// # Formats
//
// Each codec has a Format id stored beside the payload: 1 JSON (the
// default; readable, but many values are refused), 2 String (verbatim
// bytes), 3 Binary (exact for ints, floats, times, nil slices and maps, any
// holding basic types), 4 Bytes (a nil tag byte, then the bytes). 0 is
// invalid. Ids are never reused.
//
// # Entry header
//
// In Redis a payload is sealed (Seal) behind a 21-byte header: a magic that
// is not valid UTF-8, a layout version, flags, the Format, the row version,
// the payload length and a CRC-32C over all of it. Open rejects, with
// ErrCorrupt, anything Seal did not write: foreign values, truncations, and
// every single-byte change. "Not found" is a header flag, not a payload, so
// no user value can read back as missing, and a cached miss can never
// decode as a value. The database keeps the format and version in columns
// and the payload in the value column, so it needs no header.
package codec
