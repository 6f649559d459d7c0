package rediscache

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// replyError is a Redis error reply, as go-redis returns one.
type replyError string

func (e replyError) Error() string { return string(e) }
func (replyError) RedisError()     {}

// The replies of a cluster changing its topology, or of a WAIT cut short by
// a failover, are outages (the write fails with ErrUnavailable); a reply
// that reveals a bug is not, and neither is the caller giving up.
func TestIsUnavailable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{replyError("CLUSTERDOWN The cluster is down"), true},
		{replyError("TRYAGAIN Multiple keys request during rehashing of slot"), true},
		{replyError("MOVED 3999 127.0.0.1:6381"), true},
		{replyError("ASK 3999 127.0.0.1:6381"), true},
		{replyError("UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)"), true},
		{fmt.Errorf("begin: %w", replyError("READONLY You can't write against a read only replica.")), true},
		{fmt.Errorf("%w: 0 of 1 within 100ms", ErrReplicas), true},
		{errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), true},
		{replyError("ERR wrong number of arguments"), false},
		{replyError("NOSCRIPT No matching script"), false},
		{context.DeadlineExceeded, false},
		{nil, false},
	} {
		if got := IsUnavailable(tc.err); got != tc.want {
			t.Errorf("IsUnavailable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
