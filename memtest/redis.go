package memtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// EnvRedisURL names the environment variable that points the Redis fixtures
// at a shared server instead of private ones, e.g. redis://127.0.0.1:6379/0.
const EnvRedisURL = "MEMSTORE_REDIS_URL"

// readyTimeout bounds how long a starting server may take to answer.
const readyTimeout = 5 * time.Second

// RedisOptions configures a Redis fixture. A nil *RedisOptions and the zero
// value both mean the defaults.
type RedisOptions struct {
	// Args are extra redis-server arguments, appended after the fixture's
	// own, e.g. []string{"--maxmemory", "2mb", "--maxmemory-policy",
	// "allkeys-lru"}. Default: none. Server arguments cannot be applied to
	// a shared server, so a test that gives Args always gets a private one.
	Args []string
	// Private asks for a private server even when MEMSTORE_REDIS_URL names
	// a shared one. Tests that kill, restart or pause the server set it.
	// Default: false (shared when MEMSTORE_REDIS_URL is set).
	Private bool
}

// RedisServer is a Redis isolated for one test (or one run of the memstore
// command): either a private redis-server process, or a database index or
// key prefix of its own on a shared server.
//
// All methods are safe for concurrent use.
type RedisServer struct {
	base   *redis.Options // what every client starts from: address, DB, credentials
	prefix string         // shared server without SELECT: keys this test owns
	client redis.UniversalClient

	mu      sync.Mutex
	clients []redis.UniversalClient // made by NewClient, closed by Close
	closed  bool

	// Private servers only.
	bin     string
	dir     string
	ownsDir bool
	args    []string
	port    int
	proc    *process

	sentinelConf string // a Sentinel's configuration file; empty for a server

	// Shared servers only.
	shared  bool
	cleanup func(context.Context) error // flushes this test's data, releases its lease
}

// Redis returns a Redis isolated for this test, stopped or flushed when the
// test ends. Without MEMSTORE_REDIS_URL it is a private redis-server started
// in t.TempDir(). A missing redis-server fails the test with ErrNotInstalled.
func Redis(t testing.TB) *RedisServer {
	t.Helper()
	return RedisWith(t, nil)
}

// RedisWith is Redis with options: extra server arguments, or a private
// server even when a shared one is configured.
func RedisWith(t testing.TB, opts *RedisOptions) *RedisServer {
	t.Helper()
	if opts == nil {
		opts = &RedisOptions{}
	}
	var (
		s   *RedisServer
		err error
	)
	if url := os.Getenv(EnvRedisURL); url != "" && !opts.Private && len(opts.Args) == 0 {
		s, err = openSharedRedis(t.Context(), url)
	} else {
		s, err = StartRedis(t.Context(), t.TempDir(), opts)
	}
	if err != nil {
		t.Fatalf("memtest: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("memtest: %v", err)
		}
	})
	return s
}

// StartRedis starts a private redis-server on a free port of 127.0.0.1,
// without persistence, with dir as its working directory, and returns once
// it answers PING. An empty dir means a new temporary directory, removed by
// Close. The caller must call Close; if the calling program dies first, the
// kernel kills the server.
func StartRedis(ctx context.Context, dir string, opts *RedisOptions) (*RedisServer, error) {
	if opts == nil {
		opts = &RedisOptions{}
	}
	return startRedis(ctx, dir, redisSpec{args: opts.Args})
}

// redisSpec is what a redis-server is started with.
type redisSpec struct {
	args []string // after the fixture's own
	// clusterBus gives the server a free port for the cluster bus
	// (--cluster-port) too, chosen again with the main port on every
	// attempt: Redis would otherwise take port+10000, which nothing
	// reserved.
	clusterBus bool
	// sentinelConf, when set, runs a Sentinel with this configuration file
	// (which it rewrites) instead of a server.
	sentinelConf string
}

// startRedis is StartRedis with the spec of the server.
func startRedis(ctx context.Context, dir string, spec redisSpec) (*RedisServer, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not found in PATH: %w", ErrNotInstalled)
	}
	s := &RedisServer{bin: bin, dir: dir, sentinelConf: spec.sentinelConf}
	args, clusterBus := spec.args, spec.clusterBus
	if s.dir == "" {
		if s.dir, err = os.MkdirTemp("", "memtest-redis-"); err != nil {
			return nil, err
		}
		s.ownsDir = true
	}
	if s.dir, err = filepath.Abs(s.dir); err != nil {
		s.removeDir()
		return nil, err
	}
	// The free port may be taken between our probe and the server's bind;
	// then try another one.
	for attempt := 0; ; attempt++ {
		s.args = args
		s.port, err = freePort()
		if err == nil && clusterBus {
			var bus int
			if bus, err = freePortExcept(s.port); err == nil {
				s.args = append(slices.Clip(args), "--cluster-port", strconv.Itoa(bus))
			}
		}
		if err == nil {
			err = s.start(ctx)
		}
		if err == nil {
			break
		}
		if !errors.Is(err, errAddrInUse) || attempt == 4 {
			s.removeDir()
			return nil, err
		}
	}
	// Clients honour their contexts' deadlines, as memstore requires.
	s.base = &redis.Options{Addr: s.Addr(), ContextTimeoutEnabled: true}
	s.client = redis.NewClient(s.Options())
	if err := s.client.Ping(ctx).Err(); err != nil {
		s.Close()
		return nil, fmt.Errorf("redis-server on %s: %w", s.Addr(), err)
	}
	return s, nil
}

var errAddrInUse = errors.New("address already in use")

// start runs redis-server on s.port and waits until it answers PING.
// The caller holds s.mu or owns s exclusively.
func (s *RedisServer) start(ctx context.Context) error {
	logPath := filepath.Join(s.dir, "redis.log")
	args := []string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--protected-mode", "no",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--logfile", logPath,
		"--daemonize", "no",
	}
	if s.sentinelConf != "" {
		// The configuration file must come first.
		args = append([]string{s.sentinelConf, "--sentinel"}, args...)
	}
	cmd := exec.Command(s.bin, append(args, s.args...)...)
	cmd.Dir = s.dir
	proc, err := startProcess(cmd)
	if err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	if err := waitRedisReady(ctx, s.Addr(), proc); err != nil {
		proc.kill()
		log := tail(logPath, 2048)
		if strings.Contains(log, "Address already in use") {
			return fmt.Errorf("redis-server on port %d: %w", s.port, errAddrInUse)
		}
		return fmt.Errorf("redis-server on port %d: %w\n%s", s.port, err, log)
	}
	s.proc = proc
	return nil
}

// waitRedisReady polls addr with a raw PING every millisecond: a fresh
// redis-server answers within a few milliseconds, and go-redis's own dial
// backoff would add far more than that.
func waitRedisReady(ctx context.Context, addr string, proc *process) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	for {
		if proc.hasExited() {
			return fmt.Errorf("exited during startup: %v", proc.err)
		}
		if pingRaw(addr) {
			// A server that lost the race for the port exits, but until
			// it does, the one that won answers on its address.
			switch pid := serverPID(addr); pid {
			case proc.pid():
				return nil
			case 0: // not answering yet after all
			default:
				return fmt.Errorf("the port answers for process %d: %w", pid, errAddrInUse)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no answer to PING within %v: %w", readyTimeout, context.Cause(ctx))
		case <-time.After(time.Millisecond):
		}
	}
}

func pingRaw(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "+PONG")
}

// serverPID returns the process id the server on addr reports (INFO
// server), or 0 if it does not answer.
func serverPID(addr string) int {
	c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
	if err != nil {
		return 0
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := c.Write([]byte("INFO server\r\n")); err != nil {
		return 0
	}
	r := bufio.NewReader(c)
	head, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(head, "$") {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(head[1:]))
	if err != nil || n <= 0 {
		return 0
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0
	}
	for _, line := range strings.Split(string(body), "\r\n") {
		if v, ok := strings.CutPrefix(line, "process_id:"); ok {
			pid, _ := strconv.Atoi(v)
			return pid
		}
	}
	return 0
}

// Addr is the server's host:port.
func (s *RedisServer) Addr() string {
	if s.base != nil {
		return s.base.Addr
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// URL is a redis:// URL for this server and database, for processes that
// connect on their own (it omits credentials and the prefix).
func (s *RedisServer) URL() string {
	return fmt.Sprintf("redis://%s/%d", s.base.Addr, s.base.DB)
}

// DB is the database index this test owns: 0 on a private server, the
// leased index on a shared one.
func (s *RedisServer) DB() int { return s.base.DB }

// Prefix is the key prefix this test must put in front of every key it
// uses. It is empty unless the server is shared and cannot SELECT a database
// of its own (one database only, or a cluster): then the test shares a
// database with others, and the fixture deletes only the keys under Prefix
// before and after the test. Anything outside the prefix belongs to others.
func (s *RedisServer) Prefix() string { return s.prefix }

// Shared reports whether this is a shared server named by MEMSTORE_REDIS_URL.
func (s *RedisServer) Shared() bool { return s.shared }

// Client is a ready client for this test's database, closed by Close.
func (s *RedisServer) Client() redis.UniversalClient { return s.client }

// Options returns a new copy of the options Client was made with (address,
// database, credentials), to change and pass to redis.NewClient.
func (s *RedisServer) Options() *redis.Options {
	o := *s.base
	return &o
}

// NewClient returns another client for this test's database, with the
// options changed by modify (which may be nil), e.g. short timeouts for a
// second store instance. Close closes it.
func (s *RedisServer) NewClient(modify func(*redis.Options)) redis.UniversalClient {
	o := s.Options()
	if modify != nil {
		modify(o)
	}
	c := redis.NewClient(o)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clients = append(s.clients, c)
	return c
}

// PID is the process ID of the redis-server last started (it changes with
// Restart, and stays after Kill), 0 for a shared server.
func (s *RedisServer) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.pid()
}

// Kill kills the server with SIGKILL and waits until it has exited: its
// data is lost and its clients' commands fail until Restart. Killing a server
// that is not running does nothing.
func (s *RedisServer) Kill() error {
	if s.shared {
		return ErrShared
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		s.proc.kill()
	}
	return nil
}

// Restart kills the server if it runs, and starts a new one on the same
// port with the same arguments, returning once it answers. With the default
// arguments (no persistence) it starts empty. Existing clients reconnect by
// themselves.
func (s *RedisServer) Restart() error {
	if s.shared {
		return ErrShared
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("memtest: restart of a closed redis-server")
	}
	if s.proc != nil {
		s.proc.kill()
	}
	// The port is ours, but a client's outgoing connection may hold it as
	// its local port for a moment; retry rather than move.
	deadline := time.Now().Add(readyTimeout)
	for {
		err := s.start(context.Background())
		if err == nil || !errors.Is(err, errAddrInUse) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Pause stops the server with SIGSTOP: it keeps its connections and data
// but answers nothing, so commands time out, until Resume.
func (s *RedisServer) Pause() error { return s.signal(syscall.SIGSTOP) }

// Resume continues a paused server with SIGCONT.
func (s *RedisServer) Resume() error { return s.signal(syscall.SIGCONT) }

func (s *RedisServer) signal(sig syscall.Signal) error {
	if s.shared {
		return ErrShared
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return errors.New("memtest: redis-server is not running")
	}
	return s.proc.signal(sig)
}

// Close closes the clients, then kills a private server (SIGKILL: its data
// is throwaway, and SIGTERM would cost a shutdown) and removes the directory
// StartRedis created, or flushes this test's data from a shared server and
// releases its database. Calling it again does nothing.
func (s *RedisServer) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	if s.cleanup != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		errs = append(errs, s.cleanup(ctx))
		cancel()
	}
	for _, c := range s.clients {
		_ = c.Close()
	}
	if s.client != nil {
		_ = s.client.Close()
	}
	if s.proc != nil {
		s.proc.kill()
	}
	s.removeDir()
	return errors.Join(errs...)
}

func (s *RedisServer) removeDir() {
	if s.ownsDir {
		_ = os.RemoveAll(s.dir)
	}
}
