package memstore

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors that callers branch on. Every error returned by a Store
// either is one of these or is an *OpError wrapping one of them.
var (
	// ErrNotFound: the key has no value (never written, or deleted).
	ErrNotFound = errors.New("memstore: not found")
	// ErrConflict: a CompareAndSet saw a different version than expected.
	ErrConflict = errors.New("memstore: version conflict")
	// ErrUnavailable: Redis or the database could not be reached, and the
	// call could not be served. Nothing was written.
	ErrUnavailable = errors.New("memstore: unavailable")
	// ErrOutcomeUnknown: the write may have committed. Either it did and
	// Redis could not be told (the reconciler finishes the cache repair),
	// or the database's answer to the commit was lost. Reads stay correct
	// meanwhile: the key's intent sends them to the database until the
	// reconciler ends a committed write, or the intent expires.
	ErrOutcomeUnknown = errors.New("memstore: write outcome unknown, cache repair pending")
	// ErrInvalidKey: the key is empty, longer than Options.MaxKeySize, not
	// valid UTF-8, or holds a NUL byte.
	ErrInvalidKey = errors.New("memstore: invalid key")
	// ErrTooLarge: the encoded value is longer than Options.MaxValueSize.
	ErrTooLarge = errors.New("memstore: value too large")
	// ErrCodec: the value cannot be encoded so that it reads back exactly,
	// or stored bytes cannot be decoded.
	ErrCodec = errors.New("memstore: codec")
	// ErrInvalidOption: a call's option is out of range (a negative TTL, or
	// one under a millisecond). Nothing was written.
	ErrInvalidOption = errors.New("memstore: invalid option")
)

// OpError is the error returned by a failing Store call. It names the call
// and the key and wraps the cause, which is one of the sentinels above
// (possibly joined with a driver error for detail).
type OpError struct {
	Op  string // "get", "set", "delete", "refresh", "cas", "getmany", ...
	Key string
	Err error
}

// Error reads "memstore get "user:42": not found": the sentinels' own
// "memstore: " is not said twice.
func (e *OpError) Error() string {
	msg := "<nil>"
	if e.Err != nil {
		lines := strings.Split(e.Err.Error(), "\n")
		for i, l := range lines {
			lines[i] = strings.TrimPrefix(l, "memstore: ")
		}
		msg = strings.Join(lines, "\n")
	}
	if e.Key == "" {
		return fmt.Sprintf("memstore %s: %s", e.Op, msg)
	}
	return fmt.Sprintf("memstore %s %q: %s", e.Op, e.Key, msg)
}

func (e *OpError) Unwrap() error { return e.Err }
