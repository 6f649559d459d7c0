package codec

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// Binary returns the binary codec for T with the exactness check on.
func Binary[T any]() Codec[T] { return BinaryCodec[T]{} }

// BinaryCodec is a compact reflection-based encoding that keeps what JSON
// loses. The zero value is ready to use and verifies every Encode.
//
// Supported types and what is kept exactly:
//
//   - bool, every int and uint size (full 64-bit range), uintptr;
//   - float32, float64, complex64, complex128, by bit pattern: NaN payloads,
//     -0 and ±Inf survive;
//   - string, as raw bytes (invalid UTF-8 is kept);
//   - slices and maps, nil distinct from empty; maps are written in the
//     order of their encoded keys, so equal maps encode to equal bytes;
//   - arrays, pointers (nil kept), structs whose fields are all exported;
//   - time.Time: instant to the nanosecond, Location name and zone offset
//     (the monotonic reading is dropped, as in every encoding). On decode,
//     "UTC" and "Local" are time.UTC and time.Local, another name is loaded
//     with time.LoadLocation; if that fails or gives another offset at that
//     instant, the time gets time.FixedZone(name, offset), so the instant,
//     name and offset still read back;
//   - any holding nil, bool, an int, uint, float or complex type, string,
//     []byte, time.Time, []any or map[string]any (the predeclared types
//     themselves, not named types defined on them).
//
// Everything else (channels, functions, unsafe pointers, interfaces other
// than any, structs with unexported fields, an any holding another type) is
// refused by Encode with ErrInexact, whatever the value, so an unsupported
// type fails on its first use rather than with some values only.
//
// The payload starts with a 4-byte fingerprint of T's structure (kinds,
// field names and order). Decode refuses bytes written for another shape of
// T, so a struct that gained, lost or reordered a field fails loudly with
// ErrDecode instead of decoding old bytes into the wrong fields. The
// encoding is canonical: Decode accepts only the bytes Encode would write.
//
// Pointers are followed, not shared: two pointers to one value decode as
// two copies, and a cyclic value is refused (nesting is limited to 10000
// levels, in Encode and in Decode).
type BinaryCodec[T any] struct {
	// SkipVerify turns the read-back check off, saving one Decode and one
	// Equal per Encode. Binary round-trips every value of a supported type,
	// so the check guards against bugs here rather than against known
	// losses; map keys with equal encodings (two NaN keys with the same
	// bits) are still refused. Default false: verify.
	SkipVerify bool
}

func (BinaryCodec[T]) Format() Format { return FormatBinary }

func (c BinaryCodec[T]) Encode(v T) ([]byte, error) {
	tc, err := compiled(reflect.TypeFor[T]())
	if err != nil {
		return nil, fmt.Errorf("%w: binary: %w", ErrInexact, err)
	}
	e := encoder{buf: make([]byte, 4, 64)}
	binary.LittleEndian.PutUint32(e.buf, tc.fingerprint)
	if err := tc.enc(&e, reflect.ValueOf(&v).Elem()); err != nil {
		return nil, fmt.Errorf("%w: binary: %w", ErrInexact, err)
	}
	if !c.SkipVerify {
		if err := verify[T](c, v, e.buf, false); err != nil {
			return nil, err
		}
	}
	return e.buf, nil
}

func (BinaryCodec[T]) Decode(b []byte) (T, error) {
	var v T
	tc, err := compiled(reflect.TypeFor[T]())
	if err != nil {
		return v, fmt.Errorf("%w: binary: %w", ErrDecode, err)
	}
	if len(b) < 4 {
		return v, fmt.Errorf("%w: binary: %d bytes, too short for the type fingerprint", ErrDecode, len(b))
	}
	if fp := binary.LittleEndian.Uint32(b); fp != tc.fingerprint {
		return v, fmt.Errorf("%w: binary: written for another type (fingerprint %#08x, %s has %#08x)", ErrDecode, fp, reflect.TypeFor[T](), tc.fingerprint)
	}
	d := decoder{buf: b, off: 4}
	err = tc.dec(&d, reflect.ValueOf(&v).Elem())
	if err == nil && d.off != len(b) {
		err = d.errorf("%d bytes after the value", len(b)-d.off)
	}
	if err != nil {
		var zero T
		return zero, fmt.Errorf("%w: binary: %w", ErrDecode, err)
	}
	return v, nil
}

// maxDepth bounds the nesting of pointers, slices, maps and interfaces. It
// turns a cyclic value into an error instead of endless output, and keeps a
// hostile input from exhausting the stack in Decode.
const maxDepth = 10000

// typeCodec is the compiled encoder and decoder of one type.
type typeCodec struct {
	enc         func(*encoder, reflect.Value) error
	dec         func(*decoder, reflect.Value) error
	fingerprint uint32
	err         error // the type is not supported; enc and dec are nil
}

// The compiled codecs, by reflect.Type. Compiling walks the type once; after
// that an Encode or Decode does no type analysis. compileMu serializes
// compiling so that the codecs of a recursive type are published together,
// complete.
var (
	codecs    sync.Map // reflect.Type → *typeCodec
	compileMu sync.Mutex
)

func compiled(t reflect.Type) (*typeCodec, error) {
	if c, ok := codecs.Load(t); ok {
		tc := c.(*typeCodec)
		return tc, tc.err
	}
	compileMu.Lock()
	defer compileMu.Unlock()
	if c, ok := codecs.Load(t); ok {
		tc := c.(*typeCodec)
		return tc, tc.err
	}
	// Check first, build after: building a recursive type hands out codecs
	// before they are complete, so it must not be able to fail half-way.
	if err := check(t, map[reflect.Type]bool{}); err != nil {
		codecs.Store(t, &typeCodec{err: err})
		return nil, err
	}
	b := builder{built: map[reflect.Type]*typeCodec{}}
	tc := b.build(t)
	for typ, c := range b.built {
		var sb strings.Builder
		describe(&sb, typ, map[reflect.Type]int{})
		c.fingerprint = crc32.Checksum([]byte(sb.String()), castagnoli)
		codecs.Store(typ, c)
	}
	return tc, nil
}

// check reports why Binary cannot encode type t exactly, or nil.
func check(t reflect.Type, seen map[reflect.Type]bool) error {
	if t == timeType || seen[t] {
		return nil
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.Bool,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128, reflect.String:
		return nil
	case reflect.Array, reflect.Slice, reflect.Pointer:
		if err := check(t.Elem(), seen); err != nil {
			return fmt.Errorf("in %s: %w", t, err)
		}
		return nil
	case reflect.Map:
		if err := check(t.Key(), seen); err != nil {
			return fmt.Errorf("in %s: %w", t, err)
		}
		if err := check(t.Elem(), seen); err != nil {
			return fmt.Errorf("in %s: %w", t, err)
		}
		return nil
	case reflect.Interface:
		if t.NumMethod() != 0 {
			return fmt.Errorf("interface type %s is not supported, only any", t)
		}
		return nil
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				return fmt.Errorf("%s has an unexported field %s, which Binary cannot read back", t, f.Name)
			}
			if err := check(f.Type, seen); err != nil {
				return fmt.Errorf("in field %s of %s: %w", f.Name, t, err)
			}
		}
		return nil
	}
	return fmt.Errorf("%s values are not supported", t)
}

// describe writes the structure of t that the encoding depends on, the input
// of the fingerprint. Types already being described are written as a
// back-reference, so recursive types terminate.
func describe(sb *strings.Builder, t reflect.Type, seen map[reflect.Type]int) {
	if t == timeType {
		sb.WriteString("time")
		return
	}
	if n, ok := seen[t]; ok {
		sb.WriteString("#" + strconv.Itoa(n))
		return
	}
	switch t.Kind() {
	case reflect.Array:
		sb.WriteString("[" + strconv.Itoa(t.Len()) + "]")
		describe(sb, t.Elem(), seen)
	case reflect.Slice:
		seen[t] = len(seen)
		sb.WriteString("[]")
		describe(sb, t.Elem(), seen)
	case reflect.Pointer:
		seen[t] = len(seen)
		sb.WriteString("*")
		describe(sb, t.Elem(), seen)
	case reflect.Map:
		seen[t] = len(seen)
		sb.WriteString("map[")
		describe(sb, t.Key(), seen)
		sb.WriteString("]")
		describe(sb, t.Elem(), seen)
	case reflect.Struct:
		seen[t] = len(seen)
		sb.WriteString("struct{")
		for i := range t.NumField() {
			f := t.Field(i)
			sb.WriteString(f.Name + " ")
			describe(sb, f.Type, seen)
			sb.WriteString(";")
		}
		sb.WriteString("}")
	case reflect.Interface:
		sb.WriteString("any")
	default:
		sb.WriteString(t.Kind().String())
	}
}

// minSize is the fewest bytes any value of type t encodes to. Decode uses
// it to refuse a length that the remaining input cannot hold before
// allocating for it. Recursion ends at pointers, slices, maps and
// interfaces, which take at least one byte whatever they hold.
func minSize(t reflect.Type) int {
	if t == timeType {
		return 4 // seconds, nanoseconds, name length, offset: a byte each at least
	}
	switch t.Kind() {
	case reflect.Float32:
		return 4
	case reflect.Float64, reflect.Complex64:
		return 8
	case reflect.Complex128:
		return 16
	case reflect.Array:
		return min(t.Len()*minSize(t.Elem()), math.MaxInt32)
	case reflect.Struct:
		n := 0
		for i := range t.NumField() {
			n = min(n+minSize(t.Field(i).Type), math.MaxInt32)
		}
		return n
	}
	return 1
}

type builder struct {
	built map[reflect.Type]*typeCodec
}

// build returns the codec of t, creating it if needed. The codec is
// registered before its functions are made, so a recursive type finds
// itself; the functions call their parts through *typeCodec and so see them
// complete by the time they run.
func (b *builder) build(t reflect.Type) *typeCodec {
	if c, ok := codecs.Load(t); ok {
		return c.(*typeCodec)
	}
	if tc, ok := b.built[t]; ok {
		return tc
	}
	tc := &typeCodec{}
	b.built[t] = tc
	tc.enc, tc.dec = b.funcs(t)
	return tc
}

func (b *builder) funcs(t reflect.Type) (func(*encoder, reflect.Value) error, func(*decoder, reflect.Value) error) {
	if t == timeType {
		return encTime, decTime
	}
	switch t.Kind() {
	case reflect.Bool:
		return encBool, decBool
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return encInt, decInt
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return encUint, decUint
	case reflect.Float32:
		return encFloat32, decFloat32
	case reflect.Float64:
		return encFloat64, decFloat64
	case reflect.Complex64:
		return encComplex64, decComplex64
	case reflect.Complex128:
		return encComplex128, decComplex128
	case reflect.String:
		return encString, decString
	case reflect.Pointer:
		return b.pointer(t)
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return encByteSlice, decByteSlice
		}
		return b.slice(t)
	case reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return encByteArray, decByteArray
		}
		return b.array(t)
	case reflect.Map:
		return b.mapFuncs(t)
	case reflect.Struct:
		return b.structFuncs(t)
	case reflect.Interface:
		return encAny, decAny
	}
	panic("codec: building unchecked type " + t.String()) // check rejects every other kind
}

// pathError is an encode or decode error with the path to the value that
// caused it. The path is cut at maxPath segments: a cyclic value fails
// thousands of levels down, and formatting every level would cost quadratic
// time for an unreadable message.
type pathError struct {
	path []string // innermost first
	cut  bool     // segments beyond maxPath were dropped
	err  error
}

const maxPath = 16

func (e *pathError) Error() string {
	var sb strings.Builder
	sb.WriteString("at ")
	if e.cut {
		sb.WriteString("…")
	}
	for i := len(e.path) - 1; i >= 0; i-- {
		sb.WriteString(e.path[i])
	}
	sb.WriteString(": ")
	sb.WriteString(e.err.Error())
	return sb.String()
}

func (e *pathError) Unwrap() error { return e.err }

// at adds a path segment, made only on failure, to err.
func at(err error, segment func() string) error {
	pe, ok := err.(*pathError)
	if !ok {
		return &pathError{path: []string{segment()}, err: err}
	}
	if len(pe.path) < maxPath {
		pe.path = append(pe.path, segment())
	} else {
		pe.cut = true
	}
	return pe
}

// encoder appends the encoding of values to buf.
type encoder struct {
	buf   []byte
	depth int
}

func (e *encoder) enter() error {
	e.depth++
	if e.depth > maxDepth {
		return fmt.Errorf("nesting deeper than %d levels (a cyclic value?)", maxDepth)
	}
	return nil
}

func (e *encoder) uvarint(x uint64) { e.buf = binary.AppendUvarint(e.buf, x) }
func (e *encoder) varint(x int64)   { e.buf = binary.AppendVarint(e.buf, x) }

// length writes the length of a slice or map, with 0 for nil and n+1 for a
// length of n, so nil and empty differ at no extra cost.
func (e *encoder) length(v reflect.Value) {
	if v.IsNil() {
		e.uvarint(0)
		return
	}
	e.uvarint(uint64(v.Len()) + 1)
}

// decoder reads values from buf, starting at off. Every read checks what is
// left first: Decode runs on bytes from storage and must not panic.
type decoder struct {
	buf   []byte
	off   int
	depth int
}

const truncated = "unexpected end of input"

func (d *decoder) errorf(format string, args ...any) error {
	return fmt.Errorf("byte %d: %s", d.off, fmt.Sprintf(format, args...))
}

func (d *decoder) enter() error {
	d.depth++
	if d.depth > maxDepth {
		return d.errorf("nesting deeper than %d levels", maxDepth)
	}
	return nil
}

func (d *decoder) byte() (byte, error) {
	if d.off >= len(d.buf) {
		return 0, d.errorf(truncated)
	}
	c := d.buf[d.off]
	d.off++
	return c, nil
}

func (d *decoder) bytes(n int) ([]byte, error) {
	if n > len(d.buf)-d.off {
		return nil, d.errorf(truncated+": want %d bytes, have %d", n, len(d.buf)-d.off)
	}
	b := d.buf[d.off : d.off+n]
	d.off += n
	return b, nil
}

// uvarint reads a uvarint in its shortest form only, which keeps the
// encoding canonical.
func (d *decoder) uvarint() (uint64, error) {
	var x uint64
	for i, shift := 0, uint(0); ; i, shift = i+1, shift+7 {
		c, err := d.byte()
		if err != nil {
			return 0, err
		}
		if i == binary.MaxVarintLen64-1 && c > 1 {
			return 0, d.errorf("varint overflows 64 bits")
		}
		if c < 0x80 {
			if c == 0 && i > 0 {
				return 0, d.errorf("varint not in shortest form")
			}
			return x | uint64(c)<<shift, nil
		}
		x |= uint64(c&0x7f) << shift
	}
}

func (d *decoder) varint() (int64, error) {
	u, err := d.uvarint()
	x := int64(u >> 1)
	if u&1 != 0 {
		x = ^x
	}
	return x, err
}

// length reads what encoder.length wrote. It refuses a length that the
// rest of the input cannot hold at minElem bytes an element, before anything
// is allocated for it; a zero-size element type takes no bytes and no
// memory, so any length is fine for it.
func (d *decoder) length(minElem int) (n int, isNil bool, err error) {
	u, err := d.uvarint()
	if err != nil {
		return 0, false, err
	}
	if u == 0 {
		return 0, true, nil
	}
	u--
	if u > math.MaxInt {
		return 0, false, d.errorf("length %d is too large", u)
	}
	if minElem > 0 && u > uint64((len(d.buf)-d.off)/minElem) {
		return 0, false, d.errorf(truncated+": length %d needs at least %d bytes, have %d", u, u*uint64(minElem), len(d.buf)-d.off)
	}
	return int(u), false, nil
}

func encBool(e *encoder, v reflect.Value) error {
	if v.Bool() {
		e.buf = append(e.buf, 1)
	} else {
		e.buf = append(e.buf, 0)
	}
	return nil
}

func decBool(d *decoder, v reflect.Value) error {
	c, err := d.byte()
	if err != nil {
		return err
	}
	if c > 1 {
		return d.errorf("bool byte %#x", c)
	}
	v.SetBool(c == 1)
	return nil
}

func encInt(e *encoder, v reflect.Value) error {
	e.varint(v.Int())
	return nil
}

func decInt(d *decoder, v reflect.Value) error {
	x, err := d.varint()
	if err != nil {
		return err
	}
	if v.OverflowInt(x) {
		return d.errorf("%d overflows %s", x, v.Type())
	}
	v.SetInt(x)
	return nil
}

func encUint(e *encoder, v reflect.Value) error {
	e.uvarint(v.Uint())
	return nil
}

func decUint(d *decoder, v reflect.Value) error {
	x, err := d.uvarint()
	if err != nil {
		return err
	}
	if v.OverflowUint(x) {
		return d.errorf("%d overflows %s", x, v.Type())
	}
	v.SetUint(x)
	return nil
}

// The 32-bit float kinds are read and written through memory: reflect's
// Float and SetFloat convert through float64, which quiets a signalling NaN
// and so changes its bits. Decode targets are always addressable (fields of
// new values, slice elements, reflect.New).

func encFloat32(e *encoder, v reflect.Value) error {
	e.buf = binary.LittleEndian.AppendUint32(e.buf, *(*uint32)(unsafe.Pointer(addressable(v).UnsafeAddr())))
	return nil
}

func decFloat32(d *decoder, v reflect.Value) error {
	b, err := d.bytes(4)
	if err != nil {
		return err
	}
	*(*uint32)(unsafe.Pointer(v.UnsafeAddr())) = binary.LittleEndian.Uint32(b)
	return nil
}

// A complex64 is its real then imaginary float32, each written as a
// float32 is (as two uint32, not one uint64, which would depend on the
// machine's byte order).
func encComplex64(e *encoder, v reflect.Value) error {
	p := (*[2]uint32)(unsafe.Pointer(addressable(v).UnsafeAddr()))
	e.buf = binary.LittleEndian.AppendUint32(e.buf, p[0])
	e.buf = binary.LittleEndian.AppendUint32(e.buf, p[1])
	return nil
}

func decComplex64(d *decoder, v reflect.Value) error {
	b, err := d.bytes(8)
	if err != nil {
		return err
	}
	p := (*[2]uint32)(unsafe.Pointer(v.UnsafeAddr()))
	p[0], p[1] = binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:])
	return nil
}

func encFloat64(e *encoder, v reflect.Value) error {
	e.buf = binary.LittleEndian.AppendUint64(e.buf, math.Float64bits(v.Float()))
	return nil
}

func decFloat64(d *decoder, v reflect.Value) error {
	b, err := d.bytes(8)
	if err != nil {
		return err
	}
	v.SetFloat(math.Float64frombits(binary.LittleEndian.Uint64(b)))
	return nil
}

func encComplex128(e *encoder, v reflect.Value) error {
	c := v.Complex()
	e.buf = binary.LittleEndian.AppendUint64(e.buf, math.Float64bits(real(c)))
	e.buf = binary.LittleEndian.AppendUint64(e.buf, math.Float64bits(imag(c)))
	return nil
}

func decComplex128(d *decoder, v reflect.Value) error {
	b, err := d.bytes(16)
	if err != nil {
		return err
	}
	re := math.Float64frombits(binary.LittleEndian.Uint64(b))
	im := math.Float64frombits(binary.LittleEndian.Uint64(b[8:]))
	v.SetComplex(complex(re, im))
	return nil
}

func encString(e *encoder, v reflect.Value) error {
	s := v.String()
	e.uvarint(uint64(len(s)))
	e.buf = append(e.buf, s...)
	return nil
}

func decString(d *decoder, v reflect.Value) error {
	n, err := d.uvarint()
	if err != nil {
		return err
	}
	if n > uint64(len(d.buf)-d.off) {
		return d.errorf(truncated+": string of %d bytes, have %d", n, len(d.buf)-d.off)
	}
	b, _ := d.bytes(int(n))
	v.SetString(string(b))
	return nil
}

func encByteSlice(e *encoder, v reflect.Value) error {
	e.length(v)
	e.buf = append(e.buf, v.Bytes()...)
	return nil
}

func decByteSlice(d *decoder, v reflect.Value) error {
	n, isNil, err := d.length(1)
	if err != nil || isNil {
		return err
	}
	b, _ := d.bytes(n)
	c := make([]byte, n) // not bytes.Clone: it may return nil for an empty slice
	copy(c, b)
	v.SetBytes(c)
	return nil
}

func encByteArray(e *encoder, v reflect.Value) error {
	e.buf = append(e.buf, addressable(v).Bytes()...)
	return nil
}

func decByteArray(d *decoder, v reflect.Value) error {
	b, err := d.bytes(v.Len())
	if err != nil {
		return err
	}
	copy(v.Bytes(), b)
	return nil
}

func encTime(e *encoder, v reflect.Value) error {
	t := timeOf(v)
	_, offset := t.Zone()
	name := t.Location().String()
	e.varint(t.Unix())
	e.uvarint(uint64(t.Nanosecond()))
	e.uvarint(uint64(len(name)))
	e.buf = append(e.buf, name...)
	e.varint(int64(offset))
	return nil
}

func decTime(d *decoder, v reflect.Value) error {
	sec, err := d.varint()
	if err != nil {
		return err
	}
	nsec, err := d.uvarint()
	if err != nil {
		return err
	}
	if nsec >= 1e9 {
		return d.errorf("time nanoseconds %d out of range", nsec)
	}
	n, err := d.uvarint()
	if err != nil {
		return err
	}
	if n > uint64(len(d.buf)-d.off) {
		return d.errorf(truncated+": zone name of %d bytes", n)
	}
	name, _ := d.bytes(int(n))
	offset, err := d.varint()
	if err != nil {
		return err
	}
	// Real offsets are within a day; the bound keeps int conversion exact.
	if offset <= -1<<31 || offset >= 1<<31 {
		return d.errorf("zone offset %d out of range", offset)
	}
	t := time.Unix(sec, int64(nsec))
	*(*time.Time)(unsafe.Pointer(v.UnsafeAddr())) = t.In(location(string(name), int(offset), t))
	return nil
}

// locations caches time.LoadLocation, which reads the zone database on
// every call. Only names that loaded are kept, so the cache is bounded by
// the zone database, whatever names the decoded bytes hold.
var locations sync.Map // string → *time.Location

// location returns the Location to give a decoded time: the one named, if it
// has that name and gives offset at instant t, else a fixed zone with that
// name and offset. Either way the decoded time has the encoded instant, name
// and offset.
func location(name string, offset int, t time.Time) *time.Location {
	var loc *time.Location
	switch name {
	case "UTC":
		loc = time.UTC
	case "Local":
		loc = time.Local
	default:
		if l, ok := locations.Load(name); ok {
			loc = l.(*time.Location)
		} else if zoneName(name) {
			if l, err := time.LoadLocation(name); err == nil {
				locations.Store(name, l)
				loc = l
			}
		}
	}
	if loc != nil && loc.String() == name {
		if _, off := t.In(loc).Zone(); off == offset {
			return loc
		}
	}
	return time.FixedZone(name, offset)
}

// zoneName reports whether name looks like a zone database name, such as
// America/New_York or Etc/GMT+5. Other names are not looked up: they cannot
// load, and LoadLocation would search the file system for them.
func zoneName(name string) bool {
	if name == "" || len(name) > 64 || strings.Contains(name, "..") || name[0] == '/' {
		return false
	}
	for _, c := range []byte(name) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("/_-+", c) >= 0) {
			return false
		}
	}
	return true
}

func (b *builder) pointer(t reflect.Type) (func(*encoder, reflect.Value) error, func(*decoder, reflect.Value) error) {
	elem := b.build(t.Elem())
	enc := func(e *encoder, v reflect.Value) error {
		if v.IsNil() {
			e.buf = append(e.buf, 0)
			return nil
		}
		e.buf = append(e.buf, 1)
		if err := e.enter(); err != nil {
			return err
		}
		err := elem.enc(e, v.Elem())
		e.depth--
		return err
	}
	dec := func(d *decoder, v reflect.Value) error {
		c, err := d.byte()
		if err != nil || c == 0 {
			return err
		}
		if c != 1 {
			return d.errorf("pointer flag %#x", c)
		}
		if err := d.enter(); err != nil {
			return err
		}
		p := reflect.New(t.Elem())
		if err := elem.dec(d, p.Elem()); err != nil {
			return err
		}
		d.depth--
		v.Set(p)
		return nil
	}
	return enc, dec
}

func (b *builder) slice(t reflect.Type) (func(*encoder, reflect.Value) error, func(*decoder, reflect.Value) error) {
	elem := b.build(t.Elem())
	zeroSize := t.Elem().Size() == 0
	minElem := minSize(t.Elem())
	enc := func(e *encoder, v reflect.Value) error {
		e.length(v)
		if zeroSize {
			return nil // all elements are the one zero value, encoded as nothing
		}
		if err := e.enter(); err != nil {
			return err
		}
		for i := range v.Len() {
			if err := elem.enc(e, v.Index(i)); err != nil {
				return at(err, func() string { return "[" + strconv.Itoa(i) + "]" })
			}
		}
		e.depth--
		return nil
	}
	dec := func(d *decoder, v reflect.Value) error {
		n, isNil, err := d.length(minElem)
		if err != nil || isNil {
			return err
		}
		s := reflect.MakeSlice(t, n, n)
		if !zeroSize {
			if err := d.enter(); err != nil {
				return err
			}
			for i := range n {
				if err := elem.dec(d, s.Index(i)); err != nil {
					return at(err, func() string { return "[" + strconv.Itoa(i) + "]" })
				}
			}
			d.depth--
		}
		v.Set(s)
		return nil
	}
	return enc, dec
}

func (b *builder) array(t reflect.Type) (func(*encoder, reflect.Value) error, func(*decoder, reflect.Value) error) {
	elem := b.build(t.Elem())
	zeroSize := t.Elem().Size() == 0
	enc := func(e *encoder, v reflect.Value) error {
		if zeroSize {
			return nil
		}
		for i := range v.Len() {
			if err := elem.enc(e, v.Index(i)); err != nil {
				return err
			}
		}
		return nil
	}
	dec := func(d *decoder, v reflect.Value) error {
		if zeroSize {
			return nil
		}
		for i := range v.Len() {
			if err := elem.dec(d, v.Index(i)); err != nil {
				return err
			}
		}
		return nil
	}
	return enc, dec
}

func (b *builder) structFuncs(t reflect.Type) (func(*encoder, reflect.Value) error, func(*decoder, reflect.Value) error) {
	fields := make([]*typeCodec, t.NumField())
	for i := range fields {
		fields[i] = b.build(t.Field(i).Type)
	}
	enc := func(e *encoder, v reflect.Value) error {
		for i, f := range fields {
			if err := f.enc(e, v.Field(i)); err != nil {
				return at(err, func() string { return "." + t.Field(i).Name })
			}
		}
		return nil
	}
	dec := func(d *decoder, v reflect.Value) error {
		for i, f := range fields {
			if err := f.dec(d, v.Field(i)); err != nil {
				return at(err, func() string { return "." + t.Field(i).Name })
			}
		}
		return nil
	}
	return enc, dec
}

// A map is written in the order of its encoded keys, so that equal maps
// encode to equal bytes whatever Go's iteration order; Decode insists on
// that order, which also rules out repeated keys.
func (b *builder) mapFuncs(t reflect.Type) (func(*encoder, reflect.Value) error, func(*decoder, reflect.Value) error) {
	key, val := b.build(t.Key()), b.build(t.Elem())
	minEntry := minSize(t.Key()) + minSize(t.Elem())
	type entry struct {
		start, end int // the key's encoding in the scratch buffer
		val        reflect.Value
	}
	enc := func(e *encoder, v reflect.Value) error {
		e.length(v)
		if v.Len() == 0 {
			return nil
		}
		if err := e.enter(); err != nil {
			return err
		}
		keys := encoder{depth: e.depth}
		entries := make([]entry, 0, v.Len())
		for it := v.MapRange(); it.Next(); {
			start := len(keys.buf)
			if err := key.enc(&keys, it.Key()); err != nil {
				return err
			}
			entries = append(entries, entry{start, len(keys.buf), it.Value()})
		}
		keyBytes := func(x entry) []byte { return keys.buf[x.start:x.end] }
		slices.SortFunc(entries, func(x, y entry) int { return bytes.Compare(keyBytes(x), keyBytes(y)) })
		for i, x := range entries {
			if i > 0 && bytes.Equal(keyBytes(entries[i-1]), keyBytes(x)) {
				return fmt.Errorf("%s has two keys with one encoding (NaN keys with the same bits?)", t)
			}
			e.buf = append(e.buf, keyBytes(x)...)
			if err := val.enc(e, x.val); err != nil {
				return err
			}
		}
		e.depth--
		return nil
	}
	dec := func(d *decoder, v reflect.Value) error {
		n, isNil, err := d.length(minEntry)
		if err != nil || isNil {
			return err
		}
		if err := d.enter(); err != nil {
			return err
		}
		hint := n
		if minEntry == 0 {
			hint = min(n, 1) // a zero-size key type has one value: more entries are refused below
		}
		m := reflect.MakeMapWithSize(t, hint)
		var prev []byte
		for i := range n {
			start := d.off
			k := reflect.New(t.Key()).Elem()
			if err := key.dec(d, k); err != nil {
				return err
			}
			kb := d.buf[start:d.off]
			if i > 0 && bytes.Compare(prev, kb) >= 0 {
				return d.errorf("map keys out of order or repeated")
			}
			prev = kb
			if !k.Comparable() {
				return d.errorf("map key of type %s holds an unhashable value", k.Type())
			}
			x := reflect.New(t.Elem()).Elem()
			if err := val.dec(d, x); err != nil {
				return err
			}
			m.SetMapIndex(k, x)
		}
		if m.Len() != n {
			return d.errorf("%d map keys collapse into %d (-0 and +0?)", n, m.Len())
		}
		d.depth--
		v.Set(m)
		return nil
	}
	return enc, dec
}

// The types an any may hold, by tag. Tag 0 is a nil any. The table is part
// of FormatBinary: tags are only ever added.
var anyTypes = [...]reflect.Type{
	1:  reflect.TypeFor[bool](),
	2:  reflect.TypeFor[int](),
	3:  reflect.TypeFor[int8](),
	4:  reflect.TypeFor[int16](),
	5:  reflect.TypeFor[int32](),
	6:  reflect.TypeFor[int64](),
	7:  reflect.TypeFor[uint](),
	8:  reflect.TypeFor[uint8](),
	9:  reflect.TypeFor[uint16](),
	10: reflect.TypeFor[uint32](),
	11: reflect.TypeFor[uint64](),
	12: reflect.TypeFor[uintptr](),
	13: reflect.TypeFor[float32](),
	14: reflect.TypeFor[float64](),
	15: reflect.TypeFor[complex64](),
	16: reflect.TypeFor[complex128](),
	17: reflect.TypeFor[string](),
	18: reflect.TypeFor[[]byte](),
	19: timeType,
	20: reflect.TypeFor[[]any](),
	21: reflect.TypeFor[map[string]any](),
}

func anyTag(t reflect.Type) (byte, bool) {
	for tag, at := range anyTypes {
		if at == t && tag > 0 {
			return byte(tag), true
		}
	}
	return 0, false
}

func encAny(e *encoder, v reflect.Value) error {
	if v.IsNil() {
		e.buf = append(e.buf, 0)
		return nil
	}
	x := v.Elem()
	tag, ok := anyTag(x.Type())
	if !ok {
		return fmt.Errorf("an any holding %s is not supported (only bool, ints, uints, floats, complex, string, []byte, time.Time, []any, map[string]any)", x.Type())
	}
	tc, err := compiled(x.Type())
	if err != nil {
		return err
	}
	e.buf = append(e.buf, tag)
	if err := e.enter(); err != nil {
		return err
	}
	err = tc.enc(e, x)
	e.depth--
	return err
}

func decAny(d *decoder, v reflect.Value) error {
	tag, err := d.byte()
	if err != nil || tag == 0 {
		return err
	}
	if int(tag) >= len(anyTypes) {
		return d.errorf("unknown any tag %d", tag)
	}
	t := anyTypes[tag]
	tc, err := compiled(t)
	if err != nil {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	x := reflect.New(t).Elem()
	if err := tc.dec(d, x); err != nil {
		return err
	}
	d.depth--
	v.Set(x)
	return nil
}
