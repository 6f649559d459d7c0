package codec

import (
	"bytes"
	"fmt"
	"math"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"
)

// Equal reports whether a and b are the same value in the sense the codecs
// promise to preserve: what a reader can observe, not what == says.
//
//   - Floats and complex numbers compare by bit pattern: NaN equals a NaN
//     with the same bits, and -0 differs from +0.
//   - time.Time compares by instant, Location name and zone offset; the
//     monotonic clock reading, which no encoding keeps, is ignored.
//   - A nil slice or map differs from an empty one.
//   - Unexported struct fields are compared too: a codec that drops them
//     loses data.
//   - Pointers and interfaces compare by what they point to or hold, and the
//     dynamic types must match (int64(1) differs from float64(1)).
//   - Map keys match with ==, except keys that hold floats, which match by
//     bits as above.
//   - Functions are equal only if both are nil; channels and unsafe pointers
//     compare by identity.
//
// Equal does not call Equal methods: a type's own notion of equality (say,
// net.IP treating the 4- and 16-byte forms alike) may hide exactly the
// difference a round trip must not introduce.
func Equal(a, b any) bool { return diff(&a, &b, false) == "" }

// diff compares *pa and *pb (pointers to values of one type) as Equal does
// and describes the first difference, or returns "" if there is none. The
// description names the path and both values, e.g.
// `at .Meta["n"]: int64(4611686018427387905) reads back as float64(4.611686018427388e+18)`.
//
// With utcTimes, a time outside UTC is a difference even when both agree
// (see verify).
func diff(pa, pb any, utcTimes bool) string {
	d := differ{utcTimes: utcTimes}
	if d.equal(reflect.ValueOf(pa).Elem(), reflect.ValueOf(pb).Elem(), 0) {
		return ""
	}
	var sb strings.Builder
	if len(d.path) > 0 {
		sb.WriteString("at ")
		for i := len(d.path) - 1; i >= 0; i-- {
			sb.WriteString(d.path[i])
		}
		sb.WriteString(": ")
	}
	sb.WriteString(d.why)
	return sb.String()
}

var timeType = reflect.TypeFor[time.Time]()

// differ walks two values of one type. It relies on one invariant: no value
// it holds is read-only, so that any of them can be copied into addressable
// memory, and unexported fields are reached through their address (the same
// technique go-cmp's Exporter uses).
type differ struct {
	path     []string // segments of the path to the difference, innermost first
	why      string
	visited  map[visit]bool
	utcTimes bool // see diff
}

// visit is a pair of references already being compared; meeting it again
// means a cycle, which is equal so far.
type visit struct {
	a, b unsafe.Pointer
	t    reflect.Type
}

// cycleDepth is the depth from which pointers, maps and slices are recorded
// in differ.visited. Below it no cycle can have closed twice, and not
// allocating the map keeps the common case cheap.
const cycleDepth = 32

func (d *differ) fail(why string, args ...any) bool {
	d.why = fmt.Sprintf(why, args...)
	return false
}

func (d *differ) failValues(a, b reflect.Value) bool {
	return d.fail("%s reads back as %s", show(a), show(b))
}

// same compares without recording a path, for matching map keys.
func (d *differ) same(a, b reflect.Value) bool {
	sub := differ{visited: d.visited, utcTimes: d.utcTimes}
	ok := sub.equal(a, b, 0)
	d.visited = sub.visited
	return ok
}

func (d *differ) seen(a, b reflect.Value, depth int) bool {
	if depth < cycleDepth {
		return false
	}
	if d.visited == nil {
		d.visited = make(map[visit]bool)
	}
	v := visit{a.UnsafePointer(), b.UnsafePointer(), a.Type()}
	if d.visited[v] {
		return true
	}
	d.visited[v] = true
	return false
}

func (d *differ) equal(a, b reflect.Value, depth int) bool {
	t := a.Type()
	if t == timeType {
		ta, tb := timeOf(a), timeOf(b)
		if d.utcTimes {
			if _, off := ta.Zone(); off != 0 || ta.Location().String() != "UTC" {
				return d.fail("%s: JSON keeps a zone only for UTC (elsewhere the read-back depends on the reader's Local zone); use t.UTC() or Binary", showTime(ta))
			}
		}
		if sameTime(ta, tb) {
			return true
		}
		return d.fail("%s reads back as %s", showTime(ta), showTime(tb))
	}
	switch t.Kind() {
	case reflect.Bool:
		if a.Bool() == b.Bool() {
			return true
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if a.Int() == b.Int() {
			return true
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if a.Uint() == b.Uint() {
			return true
		}
	case reflect.Float32, reflect.Complex64, reflect.Float64, reflect.Complex128:
		if floatBits(a) == floatBits(b) {
			return true
		}
	case reflect.String:
		if a.String() == b.String() {
			return true
		}
	case reflect.Chan, reflect.UnsafePointer:
		if a.Pointer() == b.Pointer() {
			return true
		}
	case reflect.Func:
		if a.IsNil() && b.IsNil() {
			return true
		}
		return d.fail("functions are equal only when both are nil")
	case reflect.Interface:
		if a.IsNil() || b.IsNil() {
			if a.IsNil() && b.IsNil() {
				return true
			}
			break
		}
		ea, eb := a.Elem(), b.Elem()
		if ea.Type() != eb.Type() {
			break
		}
		return d.equal(ea, eb, depth+1)
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			if a.IsNil() && b.IsNil() {
				return true
			}
			break
		}
		if a.Pointer() == b.Pointer() || d.seen(a, b, depth) {
			return true
		}
		return d.equal(a.Elem(), b.Elem(), depth+1)
	case reflect.Slice:
		if a.IsNil() != b.IsNil() {
			break
		}
		if a.Len() != b.Len() {
			return d.fail("length %d reads back as length %d", a.Len(), b.Len())
		}
		if a.Len() == 0 || a.UnsafePointer() == b.UnsafePointer() || t.Elem().Size() == 0 {
			return true
		}
		if t.Elem().Kind() == reflect.Uint8 {
			if bytes.Equal(a.Bytes(), b.Bytes()) {
				return true
			}
			break
		}
		if d.seen(a, b, depth) {
			return true
		}
		return d.elements(a, b, depth)
	case reflect.Array:
		if t.Elem().Size() == 0 {
			return true
		}
		return d.elements(a, b, depth)
	case reflect.Map:
		return d.maps(a, b, depth)
	case reflect.Struct:
		return d.structs(a, b, depth)
	}
	return d.failValues(a, b)
}

func (d *differ) elements(a, b reflect.Value, depth int) bool {
	for i := range a.Len() {
		if !d.equal(a.Index(i), b.Index(i), depth+1) {
			d.path = append(d.path, fmt.Sprintf("[%d]", i))
			return false
		}
	}
	return true
}

func (d *differ) structs(a, b reflect.Value, depth int) bool {
	for i := range a.NumField() {
		fa, fb := a.Field(i), b.Field(i)
		if !fa.CanInterface() {
			// Unexported: read it through its address, which needs the
			// parents in addressable memory. Copying them is allowed because
			// they are not read-only (the differ's invariant).
			if !a.CanAddr() {
				a, b = addressable(a), addressable(b)
				fa, fb = a.Field(i), b.Field(i)
			}
			fa = reflect.NewAt(fa.Type(), unsafe.Pointer(fa.UnsafeAddr())).Elem()
			fb = reflect.NewAt(fb.Type(), unsafe.Pointer(fb.UnsafeAddr())).Elem()
		}
		if !d.equal(fa, fb, depth+1) {
			d.path = append(d.path, "."+a.Type().Field(i).Name)
			return false
		}
	}
	return true
}

func (d *differ) maps(a, b reflect.Value, depth int) bool {
	if a.IsNil() != b.IsNil() {
		return d.failValues(a, b)
	}
	if a.Len() != b.Len() {
		return d.fail("%d entries read back as %d entries", a.Len(), b.Len())
	}
	if a.Len() == 0 || a.UnsafePointer() == b.UnsafePointer() || d.seen(a, b, depth) {
		return true
	}
	if !bitwiseKeys(a.Type().Key()) {
		for it := a.MapRange(); it.Next(); {
			k := it.Key()
			vb := b.MapIndex(k)
			if !vb.IsValid() {
				return d.fail("key %s is missing from the read-back", show(k))
			}
			if !d.equal(it.Value(), vb, depth+1) {
				d.path = append(d.path, showKey(k))
				return false
			}
		}
		return true
	}
	// Keys holding floats: == would match -0 with +0 and never match NaN,
	// so pair the keys by bits. Matching greedily is sound because key
	// equality is an equivalence relation here.
	// The values come from iterating, not from MapIndex, which cannot
	// find a NaN key.
	var bkeys, bvals []reflect.Value
	for it := b.MapRange(); it.Next(); {
		bkeys, bvals = append(bkeys, it.Key()), append(bvals, it.Value())
	}
	used := make([]bool, len(bkeys))
next:
	for it := a.MapRange(); it.Next(); {
		k := it.Key()
		for j, kb := range bkeys {
			if !used[j] && d.same(k, kb) {
				used[j] = true
				if !d.equal(it.Value(), bvals[j], depth+1) {
					d.path = append(d.path, showKey(k))
					return false
				}
				continue next
			}
		}
		return d.fail("key %s is missing from the read-back", show(k))
	}
	return true
}

// bitwiseKeys reports whether map keys of type t may hold a float, whose ==
// differs from Equal's comparison by bits.
func bitwiseKeys(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128, reflect.Interface:
		return true
	case reflect.Array:
		return bitwiseKeys(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if bitwiseKeys(t.Field(i).Type) {
				return true
			}
		}
	}
	return false
}

// addressable returns v itself if it is addressable, else a copy in new
// memory. v must not be read-only.
func addressable(v reflect.Value) reflect.Value {
	if v.CanAddr() {
		return v
	}
	c := reflect.New(v.Type()).Elem()
	c.Set(v)
	return c
}

// floatBits returns the bit pattern of a float or complex value, read from
// memory for the 32-bit kinds: reflect's Float and Complex convert to 64
// bits, and that conversion quiets a signalling NaN, changing its bits.
func floatBits(v reflect.Value) [2]uint64 {
	switch v.Kind() {
	case reflect.Float32:
		return [2]uint64{uint64(*(*uint32)(unsafe.Pointer(addressable(v).UnsafeAddr())))}
	case reflect.Complex64:
		p := (*[2]uint32)(unsafe.Pointer(addressable(v).UnsafeAddr()))
		return [2]uint64{uint64(p[0]), uint64(p[1])}
	case reflect.Float64:
		return [2]uint64{math.Float64bits(v.Float())}
	}
	c := v.Complex()
	return [2]uint64{math.Float64bits(real(c)), math.Float64bits(imag(c))}
}

// timeOf returns the time.Time in v, which must have that exact type.
func timeOf(v reflect.Value) time.Time {
	if v.CanAddr() {
		return *(*time.Time)(unsafe.Pointer(v.UnsafeAddr()))
	}
	return v.Interface().(time.Time)
}

// sameTime is Equal for times: same instant, same Location name, same
// offset. Instants compare by Unix seconds and nanoseconds, which ignores
// the monotonic reading.
func sameTime(a, b time.Time) bool {
	if a.Unix() != b.Unix() || a.Nanosecond() != b.Nanosecond() {
		return false
	}
	if a.Location().String() != b.Location().String() {
		return false
	}
	_, oa := a.Zone()
	_, ob := b.Zone()
	return oa == ob
}

func showTime(t time.Time) string {
	_, off := t.Zone()
	return fmt.Sprintf("time %s (Location %q, offset %+d s)", t.Format(time.RFC3339Nano), t.Location(), off)
}

// show formats a value for an error message, with its type (the type is
// often the difference) and, for floats, the bits, and cut to a readable
// length.
func show(v reflect.Value) string {
	var s string
	switch v.Kind() {
	case reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		bits := floatBits(v)
		s = fmt.Sprintf("%s(%v, bits %#x", v.Type(), v, bits[0])
		if k := v.Kind(); k == reflect.Complex64 || k == reflect.Complex128 {
			s += fmt.Sprintf(" %#x", bits[1])
		}
		s += ")"
	case reflect.Interface:
		if v.IsNil() {
			return fmt.Sprintf("%s(nil)", v.Type())
		}
		return fmt.Sprintf("%s holding %s", v.Type(), show(v.Elem()))
	case reflect.Slice, reflect.Map, reflect.Pointer:
		if v.IsNil() {
			return fmt.Sprintf("%s(nil)", v.Type())
		}
		s = fmt.Sprintf("%#v", v)
	case reflect.Struct, reflect.Array:
		s = fmt.Sprintf("%#v", v) // %#v names the type of composites
	default:
		s = fmt.Sprintf("%s(%#v)", v.Type(), v)
	}
	return truncate(s)
}

// showKey formats a map key as a path segment.
func showKey(k reflect.Value) string { return "[" + truncate(fmt.Sprintf("%#v", k)) + "]" }

func truncate(s string) string {
	const max = 120
	if len(s) > max {
		n := max
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n] + "…"
	}
	return s
}
