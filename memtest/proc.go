package memtest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
)

// Sentinel errors.
var (
	// ErrNotInstalled: redis-server or PostgreSQL is missing. Its message
	// names the command that installs them.
	ErrNotInstalled = errors.New("not installed; install with `make deps` or `sudo apt-get install -y redis-server postgresql`")
	// ErrShared: a process control (Kill, Restart, Pause, Resume) was asked
	// of a shared server named by MEMSTORE_REDIS_URL.
	ErrShared = errors.New("memtest: unavailable with a shared server (MEMSTORE_REDIS_URL); ask for a private one with RedisOptions.Private")
)

// spawner starts child processes from one goroutine locked to its own OS
// thread for the life of the test binary.
//
// Servers are started with a parent-death signal (SIGKILL), so that a test
// binary that crashes or times out leaves no redis-server or postgres behind.
// Linux sends that signal when the *thread* that forked the child exits, not
// the process. Go keeps threads alive except one whose goroutine exits while
// locked to it, which any code may do; a child forked from such a thread would
// be killed at a random moment. Forking only from a thread that is locked and
// never released rules that out. It is process-wide state, like the PostgreSQL
// cluster: the kernel ties children to a thread, so there is no other place
// for it.
var spawner = sync.OnceValue(func() chan<- spawnRequest {
	ch := make(chan spawnRequest)
	go func() {
		runtime.LockOSThread() // never unlocked: this thread lives as long as the binary
		for req := range ch {
			req.done <- req.cmd.Start()
		}
	}()
	return ch
})

type spawnRequest struct {
	cmd  *exec.Cmd
	done chan error
}

// process is a started child, reaped by a goroutine so that its exit can be
// awaited with a timeout and observed from many places.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once the process has been reaped
	err    error         // Wait's result, valid after exited is closed
}

// startProcess starts cmd with a parent-death signal and reaps it in the
// background.
func startProcess(cmd *exec.Cmd) (*process, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	done := make(chan error, 1)
	spawner() <- spawnRequest{cmd: cmd, done: done}
	if err := <-done; err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

func (p *process) signal(sig syscall.Signal) error {
	select {
	case <-p.exited:
		return fmt.Errorf("process %d has exited: %v", p.pid(), p.err)
	default:
	}
	return p.cmd.Process.Signal(sig)
}

// kill sends SIGKILL (which also ends a stopped process) and waits until the
// process is reaped, so that its PID and port are free when kill returns.
func (p *process) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

func (p *process) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// freePort returns a TCP port on 127.0.0.1 that nothing listened on a moment
// ago. Another process may take it before the server binds it; callers retry
// when the server reports the address in use.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// freePortExcept is freePort for a second port, which must differ from the
// first: the kernel may hand out a port again once it is closed.
func freePortExcept(taken int) (int, error) {
	for range 10 {
		p, err := freePort()
		if err != nil || p != taken {
			return p, err
		}
	}
	return 0, fmt.Errorf("no free port other than %d", taken)
}

// tail returns the last n bytes of a log file, for error messages.
func tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > n {
		_, _ = f.Seek(fi.Size()-n, 0)
	}
	b := make([]byte, n)
	k, _ := f.Read(b)
	return strings.TrimSpace(string(b[:k]))
}
