package memtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"
)

// sentinelMaster is the name the Sentinels monitor the master under.
const sentinelMaster = "memtest"

// Timing of the Sentinels. A master silent for sentinelDownAfter is down
// for the Sentinel that saw it; two of three agreeing make it objectively
// down, and they elect one of them to fail it over. It must stay well
// above a second: a Sentinel reconnects to an instance at most once a
// second, and with 500 ms it took every new master, which it had to
// connect to, for down, and failed it back (seen: a manual failover
// undone within a second, then flapping). failover-timeout bounds each
// step of a failover, and a new automatic failover of the same master
// waits twice that after the last one began: short, so that a test can
// fail over twice, long enough for a promotion that a Sentinel sees
// through INFO once a second.
const (
	sentinelDownAfter       = 2 * time.Second
	sentinelFailoverTimeout = 2 * time.Second
)

// RedisSentinel is a Redis master, one replica and three Sentinels
// monitoring them, all private, on 127.0.0.1: the setup a failover client
// (redis.NewFailoverClient) is made for.
//
// All methods are safe for concurrent use.
type RedisSentinel struct {
	servers   []*RedisServer // the master and the replica, as started
	sentinels []*RedisServer
	dir       string
	ownsDir   bool

	mu      sync.Mutex // serializes failovers
	client  redis.UniversalClient
	clients []redis.UniversalClient
	closed  bool
}

// Sentinel returns a private master, replica and three Sentinels for this
// test, stopped when it ends, and a failover client for them (Client). A
// missing redis-server fails the test with ErrNotInstalled.
func Sentinel(t testing.TB) *RedisSentinel {
	t.Helper()
	s, err := StartSentinel(t.Context(), t.TempDir())
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

// StartSentinel starts a master, a replica of it and three Sentinels, each
// in a directory of its own under dir ("" means a new temporary directory,
// removed by Close), and returns once every Sentinel knows the replica and
// the other Sentinels and agrees there is a quorum, and the failover client
// can write. The caller must call Close; if the calling program dies first,
// the kernel kills the servers.
func StartSentinel(ctx context.Context, dir string) (*RedisSentinel, error) {
	s := &RedisSentinel{dir: dir}
	var err error
	if s.dir == "" {
		if s.dir, err = os.MkdirTemp("", "memtest-sentinel-"); err != nil {
			return nil, err
		}
		s.ownsDir = true
	}
	if s.dir, err = filepath.Abs(s.dir); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.start(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *RedisSentinel) start(ctx context.Context) error {
	// As for the cluster: a full sync at once, and a master that pings its
	// replica every second.
	args := []string{"--repl-diskless-sync-delay", "0", "--repl-ping-replica-period", "1"}
	mdir, rdir := filepath.Join(s.dir, "master"), filepath.Join(s.dir, "replica")
	for _, d := range []string{mdir, rdir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	master, err := startRedis(ctx, mdir, redisSpec{args: args})
	if err != nil {
		return err
	}
	s.servers = append(s.servers, master)
	host, port, _ := net.SplitHostPort(master.Addr())
	replica, err := startRedis(ctx, rdir, redisSpec{args: append(slices.Clip(args), "--replicaof", host, port)})
	if err != nil {
		return err
	}
	s.servers = append(s.servers, replica)
	// The replica must be linked before the Sentinels start: a Sentinel
	// learns of replicas from the master's INFO, which it asks for at once,
	// then every ten seconds.
	if err := poll(ctx, readyTimeout, "replica linked", func(ctx context.Context) error {
		return linkedTo(ctx, replica, master)
	}); err != nil {
		return err
	}
	conf := fmt.Sprintf("sentinel monitor %[1]s %[2]s %[3]s 2\n"+
		"sentinel down-after-milliseconds %[1]s %[4]d\n"+
		"sentinel failover-timeout %[1]s %[5]d\n"+
		"sentinel parallel-syncs %[1]s 1\n",
		sentinelMaster, host, port, sentinelDownAfter.Milliseconds(), sentinelFailoverTimeout.Milliseconds())
	s.sentinels = make([]*RedisServer, 3)
	var g errgroup.Group
	for i := range s.sentinels {
		g.Go(func() error {
			d := filepath.Join(s.dir, fmt.Sprintf("sentinel%d", i))
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
			path := filepath.Join(d, "sentinel.conf")
			if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
				return err
			}
			sn, err := startRedis(ctx, d, redisSpec{sentinelConf: path})
			s.sentinels[i] = sn
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	// The Sentinels find each other through hello messages they publish
	// on the master every two seconds.
	if err := poll(ctx, clusterReadyTimeout, "sentinels ready", s.ready); err != nil {
		return err
	}
	s.client = redis.NewFailoverClient(s.Options())
	return poll(ctx, clusterReadyTimeout, "failover client writable", func(ctx context.Context) error {
		if err := s.client.Set(ctx, "memtest:ready", "ok", 0).Err(); err != nil {
			return fmt.Errorf("SET through the failover client: %w", err)
		}
		return s.client.Del(ctx, "memtest:ready").Err()
	})
}

// linkedTo checks that replica r has its link to master m up.
func linkedTo(ctx context.Context, r, m *RedisServer) error {
	info, err := infoOf(ctx, r.Client(), "replication")
	if err != nil {
		return err
	}
	host, port, _ := net.SplitHostPort(m.Addr())
	if info["role"] != "slave" || info["master_host"] != host || info["master_port"] != port ||
		info["master_link_status"] != "up" || info["master_sync_in_progress"] != "0" {
		return fmt.Errorf("%s: role:%s master:%s:%s master_link_status:%s", r.Addr(),
			info["role"], info["master_host"], info["master_port"], info["master_link_status"])
	}
	return nil
}

func infoOf(ctx context.Context, c redis.UniversalClient, section string) (map[string]string, error) {
	s, err := c.Info(ctx, section).Result()
	if err != nil {
		return nil, err
	}
	m := make(map[string]string)
	for line := range strings.SplitSeq(s, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			m[k] = v
		}
	}
	return m, nil
}

// ready checks that every Sentinel sees the master up with its replica
// and the two other Sentinels, and a quorum to fail it over, and that the
// replica replicates the master.
//
// The Sentinels' view of the replica's own link is not asked: a Sentinel
// refreshes it from the replica's INFO only every ten seconds, so after a
// failover it describes the old master for that long.
func (s *RedisSentinel) ready(ctx context.Context) error {
	master, err := s.agreedMaster(ctx)
	if err != nil {
		return err
	}
	for _, sn := range s.sentinels {
		c := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr(), MaxRetries: -1})
		m, err := c.Master(ctx, sentinelMaster).Result()
		if err == nil {
			err = c.CkQuorum(ctx, sentinelMaster).Err()
		}
		c.Close()
		if err != nil {
			return fmt.Errorf("sentinel %s: %w", sn.Addr(), err)
		}
		if m["flags"] != "master" || m["num-slaves"] != "1" || m["num-other-sentinels"] != "2" {
			return fmt.Errorf("sentinel %s: flags %s, %s replicas, %s other sentinels", sn.Addr(), m["flags"], m["num-slaves"], m["num-other-sentinels"])
		}
		replicas, err := sentinelReplicas(ctx, sn)
		if err != nil {
			return err
		}
		if len(replicas) != 1 || replicas[0]["flags"] != "slave" {
			return fmt.Errorf("sentinel %s: replicas %v", sn.Addr(), replicas)
		}
	}
	for _, r := range s.servers {
		if r != master {
			if err := linkedTo(ctx, r, master); err != nil {
				return err
			}
		}
	}
	return nil
}

func sentinelReplicas(ctx context.Context, sn *RedisServer) ([]map[string]string, error) {
	c := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr(), MaxRetries: -1})
	defer c.Close()
	v, err := c.Replicas(ctx, sentinelMaster).Result()
	if err != nil {
		return nil, fmt.Errorf("sentinel %s: SENTINEL REPLICAS: %w", sn.Addr(), err)
	}
	return v, nil
}

// agreedMaster is the server every Sentinel names as the master.
func (s *RedisSentinel) agreedMaster(ctx context.Context) (*RedisServer, error) {
	var addr string
	for _, sn := range s.sentinels {
		c := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr(), MaxRetries: -1})
		hp, err := c.GetMasterAddrByName(ctx, sentinelMaster).Result()
		c.Close()
		if err != nil {
			return nil, fmt.Errorf("sentinel %s: %w", sn.Addr(), err)
		}
		a := net.JoinHostPort(hp[0], hp[1])
		if addr != "" && a != addr {
			return nil, fmt.Errorf("sentinels disagree on the master: %s and %s", addr, a)
		}
		addr = a
	}
	for _, r := range s.servers {
		if r.Addr() == addr {
			return r, nil
		}
	}
	return nil, fmt.Errorf("the sentinels name %s as master, none of ours", addr)
}

// MasterName is the name the Sentinels know the master by, for
// redis.FailoverOptions.MasterName.
func (s *RedisSentinel) MasterName() string { return sentinelMaster }

// SentinelAddrs are the Sentinels' addresses.
func (s *RedisSentinel) SentinelAddrs() []string {
	addrs := make([]string, len(s.sentinels))
	for i, sn := range s.sentinels {
		addrs[i] = sn.Addr()
	}
	return addrs
}

// Options returns new options for a failover client: the master name, the
// Sentinels, ContextTimeoutEnabled and timeouts of a second.
func (s *RedisSentinel) Options() *redis.FailoverOptions {
	return &redis.FailoverOptions{
		MasterName:            sentinelMaster,
		SentinelAddrs:         s.SentinelAddrs(),
		ContextTimeoutEnabled: true,
		DialTimeout:           time.Second,
		ReadTimeout:           time.Second,
		WriteTimeout:          time.Second,
	}
}

// Client is a ready failover client (a *redis.Client that asks the
// Sentinels for the master), closed by Close.
func (s *RedisSentinel) Client() redis.UniversalClient { return s.client }

// NewClient returns another failover client, with the options changed by
// modify (which may be nil). Close closes it.
func (s *RedisSentinel) NewClient(modify func(*redis.FailoverOptions)) redis.UniversalClient {
	o := s.Options()
	if modify != nil {
		modify(o)
	}
	c := redis.NewFailoverClient(o)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clients = append(s.clients, c)
	return c
}

// Servers are the two data servers, the first master first. Their Kill,
// Pause and Restart work as on any private server; a restarted server
// comes back empty with the role it was started with, and the Sentinels
// (or Failover and CrashFailover) set it right.
func (s *RedisSentinel) Servers() []*RedisServer { return slices.Clone(s.servers) }

// Sentinels are the three Sentinel processes.
func (s *RedisSentinel) Sentinels() []*RedisServer { return slices.Clone(s.sentinels) }

// Master returns the server the Sentinels all name as master now.
func (s *RedisSentinel) Master(ctx context.Context) (*RedisServer, error) {
	return s.agreedMaster(ctx)
}

// Failover makes the Sentinels fail the master over to the replica (SENTINEL
// FAILOVER, which asks no quorum and waits for nothing: writes the replica
// had not received are lost). It returns once every Sentinel names the new
// master, the old one replicates it, and the fixture's failover client
// writes to the new one.
func (s *RedisSentinel) Failover(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, err := s.agreedMaster(ctx)
	if err != nil {
		return err
	}
	// A Sentinel promotes only a replica whose INFO is at most five
	// seconds old, and asks for it every ten: half the time, and for ten
	// seconds after the replica was a master, it finds no good replica and
	// says NOGOODSLAVE until its next INFO.
	c := redis.NewSentinelClient(&redis.Options{Addr: s.sentinels[0].Addr(), MaxRetries: -1})
	err = poll(ctx, clusterFailoverTimeout, "SENTINEL FAILOVER", func(ctx context.Context) error {
		err := c.Failover(ctx, sentinelMaster).Err()
		if err != nil && !strings.HasPrefix(err.Error(), "NOGOODSLAVE") {
			return stopPolling{err}
		}
		return err
	})
	c.Close()
	if err != nil {
		return fmt.Errorf("memtest: %w", err)
	}
	return s.afterFailover(ctx, old, false)
}

// CrashFailover kills the master with SIGKILL and waits until the
// Sentinels have promoted the replica (down after 2 s, a quorum of two,
// an election, the promotion: three seconds or so), then restarts the old
// master as a replica of the new one and returns once it has synced and
// the fixture's failover client writes to the new master.
func (s *RedisSentinel) CrashFailover(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, err := s.agreedMaster(ctx)
	if err != nil {
		return err
	}
	if err := old.Kill(); err != nil {
		return err
	}
	return s.afterFailover(ctx, old, true)
}

// afterFailover waits until the Sentinels name another master than old,
// makes old its replica (restarting it if it was killed), and waits until
// the failover clients have moved.
func (s *RedisSentinel) afterFailover(ctx context.Context, old *RedisServer, restart bool) error {
	var master *RedisServer
	err := poll(ctx, clusterFailoverTimeout, "the sentinels name a new master", func(ctx context.Context) error {
		m, err := s.agreedMaster(ctx)
		if err == nil && m == old {
			err = errors.New("the sentinels still name the old master")
		}
		if err == nil {
			var info map[string]string
			if info, err = infoOf(ctx, m.Client(), "replication"); err == nil && info["role"] != "master" {
				err = fmt.Errorf("new master %s: role:%s", m.Addr(), info["role"])
			}
		}
		master = m
		return err
	})
	if err != nil {
		return fmt.Errorf("memtest: %w", err)
	}
	// The Sentinels would demote a live old master themselves, but only
	// eight seconds after they see it claim to be one; a restarted one
	// must come back as a replica, or it would serve writes empty.
	host, port, _ := net.SplitHostPort(master.Addr())
	old.mu.Lock()
	old.args = withReplicaOf(old.args, host, port)
	old.mu.Unlock()
	if restart {
		if err := old.Restart(); err != nil {
			return err
		}
	} else if err := old.Client().ReplicaOf(ctx, host, port).Err(); err != nil {
		return fmt.Errorf("memtest: REPLICAOF on the old master %s: %w", old.Addr(), err)
	}
	err = poll(ctx, clusterFailoverTimeout, "the old master replicates the new one", func(ctx context.Context) error {
		return linkedTo(ctx, old, master)
	})
	if err != nil {
		return fmt.Errorf("memtest: %w", err)
	}
	// Until every Sentinel has seen the old master as a replica in good
	// health, another failover would find no replica to promote.
	if err := poll(ctx, clusterFailoverTimeout, "sentinels ready again", s.ready); err != nil {
		return fmt.Errorf("memtest: %w", err)
	}
	return s.waitClients(ctx, master)
}

// waitClients waits until the fixture's failover clients send their
// commands to master. go-redis moves a failover client when a Sentinel
// announces +switch-master, or when a connection to the old master breaks
// or answers READONLY.
func (s *RedisSentinel) waitClients(ctx context.Context, master *RedisServer) error {
	_, want, _ := net.SplitHostPort(master.Addr())
	for _, c := range append([]redis.UniversalClient{s.client}, s.clients...) {
		err := poll(ctx, clusterFailoverTimeout, "the failover client moves", func(ctx context.Context) error {
			v, err := c.ConfigGet(ctx, "port").Result()
			if err != nil {
				return err
			}
			if v["port"] != want {
				return fmt.Errorf("the failover client still reaches port %s", v["port"])
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("memtest: %w", err)
		}
	}
	return nil
}

// Close closes the clients, kills the servers and the Sentinels, and
// removes the directory StartSentinel created. Calling it again does
// nothing.
func (s *RedisSentinel) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	for _, c := range s.clients {
		_ = c.Close()
	}
	if s.client != nil {
		_ = s.client.Close()
	}
	var wg sync.WaitGroup
	for _, sv := range append(slices.Clone(s.sentinels), s.servers...) {
		if sv != nil {
			wg.Go(func() { sv.Close() })
		}
	}
	wg.Wait()
	if s.ownsDir {
		_ = os.RemoveAll(s.dir)
	}
	return nil
}

// withReplicaOf returns args with --replicaof host port instead of any it
// had.
func withReplicaOf(args []string, host, port string) []string {
	out := make([]string, 0, len(args)+3)
	for i := 0; i < len(args); i++ {
		if args[i] == "--replicaof" && i+2 < len(args) {
			i += 2
			continue
		}
		out = append(out, args[i])
	}
	return append(out, "--replicaof", host, port)
}
