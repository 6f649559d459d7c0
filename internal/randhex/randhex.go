// Package randhex makes the random names the fixtures and tools give their
// namespaces, prefixes and directories.
package randhex

import (
	"crypto/rand"
	"encoding/hex"
)

// String returns n random bytes as 2n hex digits.
func String(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
