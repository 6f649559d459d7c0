package memtest_test

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/memstore/memstore/memtest"
)

func TestMain(m *testing.M) { os.Exit(memtest.Main(m)) }

// gone reports whether no live process has this PID. A killed child whose
// parent died may stay a zombie until init reaps it; it runs no more, so it
// counts as gone.
func gone(pid int) bool {
	err := syscall.Kill(pid, 0)
	if errors.Is(err, syscall.ESRCH) {
		return true
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// pid (comm) state ...; comm may hold spaces, so read after the last ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] == "Z"
}

// waitGone waits up to d for pid to be gone.
func waitGone(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for !gone(pid) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// barrier lets n parallel tests meet, so that their writes overlap in time.
// Parallel subtests run only as -parallel allows; a test that waited longer
// than the timeout goes on alone (and logs it) rather than deadlock.
type barrier struct {
	wg sync.WaitGroup
}

func newBarrier(n int) *barrier {
	b := &barrier{}
	b.wg.Add(n)
	return b
}

func (b *barrier) wait(t *testing.T) {
	t.Helper()
	b.wg.Done()
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Log("the other test did not arrive within 10s; going on alone")
	}
}

func mkdirAll(dir string) error { return os.MkdirAll(dir, 0o755) }

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
