package codec

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
)

// Header is what a sealed entry says about its payload.
type Header struct {
	// Format of the payload. FormatInvalid (0) exactly when NotFound.
	Format Format
	// Version is the row version the payload was read at (or written as).
	Version uint64
	// NotFound marks a cached "no such key" (a negative entry or
	// tombstone). It is a state of the header, not a payload value, so no
	// user value can be mistaken for it: a string equal to a sealed
	// not-found entry is just a payload.
	NotFound bool
}

// The entry layout, in byte offsets. See Seal.
const (
	magic0, magic1 = 0xC5, 0x4D
	layoutVersion  = 1
	flagNotFound   = 1 << 0

	offLayout  = 2
	offFlags   = 3
	offFormat  = 4
	offVersion = 5
	offLength  = 13
	offCRC     = 17

	// HeaderSize is the length of a sealed entry without its payload.
	HeaderSize = 21
	// MaxPayload is the longest payload Seal accepts (the length field is 32
	// bits). Redis strings stop at 512 MiB, well below it.
	MaxPayload = math.MaxUint32
)

// castagnoli is the CRC-32C table. CRC-32C has hardware support on amd64
// and arm64 (crc32 uses it for this table) and detects every error burst up
// to 32 bits long, so every single-byte change of an entry.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Seal appends to dst a sealed entry: the header h, a checksum, then
// payload, and returns the extended slice. The layout, all integers big-endian:
//
//	offset size field
//	0      2    magic 0xC5 0x4D
//	2      1    layout version, 1
//	3      1    flags: bit 0 = not found; the other bits are 0
//	4      1    Format (0 exactly when not found)
//	5      8    row version
//	13     4    payload length
//	17     4    CRC-32C (Castagnoli) of bytes 0..16 followed by the payload
//	21     n    payload
//
// The magic is not valid UTF-8 (0xC5 needs a continuation byte, 0x4D is
// not one), so no text or JSON value another client wrote under the key
// starts with it. The explicit length makes every truncation or extension
// certain to be caught, not just likely.
//
// Seal panics if h and payload contradict each other (NotFound with a
// payload or a Format, a value with FormatInvalid) or if the payload is
// longer than MaxPayload: those are bugs of the caller, and sealing them
// would store an entry that Open rejects.
func Seal(dst []byte, h Header, payload []byte) []byte {
	if h.NotFound != (h.Format == FormatInvalid) {
		panic(fmt.Sprintf("codec.Seal: NotFound=%v with format %v", h.NotFound, h.Format))
	}
	if h.NotFound && len(payload) > 0 {
		panic("codec.Seal: NotFound with a payload")
	}
	if uint64(len(payload)) > MaxPayload {
		panic(fmt.Sprintf("codec.Seal: payload of %d bytes exceeds MaxPayload", len(payload)))
	}
	var flags byte
	if h.NotFound {
		flags |= flagNotFound
	}
	start := len(dst)
	dst = append(dst, magic0, magic1, layoutVersion, flags, byte(h.Format))
	dst = binary.BigEndian.AppendUint64(dst, h.Version)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)))
	crc := crc32.Update(0, castagnoli, dst[start:])
	crc = crc32.Update(crc, castagnoli, payload)
	dst = binary.BigEndian.AppendUint32(dst, crc)
	return append(dst, payload...)
}

// Open checks a sealed entry and returns its header and payload. The
// payload aliases b. Any error wraps ErrCorrupt and says what failed: the
// bytes are foreign, damaged or truncated, and the caller must drop the
// entry and reload, never decode it. Open does not allocate unless it fails.
//
// Open accepts exactly the outputs of Seal: an accepted entry seals again to
// the same bytes.
func Open(b []byte) (Header, []byte, error) {
	if len(b) < HeaderSize {
		if len(b) >= 2 && (b[0] != magic0 || b[1] != magic1) {
			return Header{}, nil, corrupt("bad magic %#x %#x", b[0], b[1])
		}
		return Header{}, nil, corrupt("%d bytes, shorter than the %d-byte header", len(b), HeaderSize)
	}
	if b[0] != magic0 || b[1] != magic1 {
		return Header{}, nil, corrupt("bad magic %#x %#x", b[0], b[1])
	}
	if b[offLayout] != layoutVersion {
		return Header{}, nil, corrupt("unknown header layout %d", b[offLayout])
	}
	flags := b[offFlags]
	if flags&^flagNotFound != 0 {
		return Header{}, nil, corrupt("unknown flags %#x", flags)
	}
	n := binary.BigEndian.Uint32(b[offLength:])
	if uint64(len(b)-HeaderSize) != uint64(n) {
		return Header{}, nil, corrupt("payload is %d bytes, header says %d", len(b)-HeaderSize, n)
	}
	payload := b[HeaderSize:]
	crc := crc32.Update(0, castagnoli, b[:offCRC])
	crc = crc32.Update(crc, castagnoli, payload)
	if want := binary.BigEndian.Uint32(b[offCRC:]); crc != want {
		return Header{}, nil, corrupt("checksum %#08x, header says %#08x", crc, want)
	}
	h := Header{
		Format:   Format(b[offFormat]),
		Version:  binary.BigEndian.Uint64(b[offVersion:]),
		NotFound: flags&flagNotFound != 0,
	}
	// Checked after the checksum: with a good checksum these are not
	// damage but an entry no Seal writes.
	if h.NotFound != (h.Format == FormatInvalid) || h.NotFound && len(payload) > 0 {
		return Header{}, nil, corrupt("inconsistent header: NotFound=%v, format %v, %d-byte payload", h.NotFound, h.Format, len(payload))
	}
	return h, payload, nil
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}
