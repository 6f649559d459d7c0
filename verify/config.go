package verify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/memstore/memstore"
	"github.com/memstore/memstore/check"
	"github.com/memstore/memstore/fault"
	"github.com/memstore/memstore/history"
	"github.com/memstore/memstore/internal/testenv"
	"github.com/memstore/memstore/memtest"
	"github.com/memstore/memstore/strategies"
)

// Key skews of the workload.
const (
	Uniform = "uniform" // every key equally likely
	Zipf    = "zipf"    // a few hot keys (Zipf, s = 1.1)
)

// Mix weighs the kinds of operation the clients issue. The zero Mix means
// DefaultMix.
type Mix struct {
	Get, Set, Delete int
}

// DefaultMix is 50% gets, 40% sets, 10% deletes.
var DefaultMix = Mix{Get: 50, Set: 40, Delete: 10}

func (m Mix) total() int { return m.Get + m.Set + m.Delete }

// Progress is what a run reports while it runs, for a live status line.
type Progress struct {
	Store   string
	Phase   string        // "warm-up", "workload", "heal", "quiet", "final", "stampede", "check"
	Elapsed time.Duration // since the run began
	Ops     int           // operations completed so far
	Errors  int           // ... of which returned an error
	// FaultErrors counts the Errors of calls that overlapped a fault
	// window: the failures the faults are there to cause.
	FaultErrors int
	Fault       string // the fault active now, "" when none
}

// Config describes one run of the checker against one store. The zero value
// of every field means its default; Store is required.
type Config struct {
	// Store makes the store's instances. Required, unless Exec is set.
	Store strategies.Factory
	// Exec, when set, is a store in another program, driven over the exec
	// protocol (docs/exec-protocol.md): one adapter process per instance.
	// Store then only names it (default Exec.Name) and is expected to
	// pass. Faults that need the store's own DB connections are left out,
	// kill-worker kills adapters, and there are no injected delays and no
	// stampede probe (an adapter has no hooks). Processes must be 0.
	Exec *Exec

	// Redis is the server to run against. A private server (memtest.Redis,
	// memtest.StartRedis) allows the process faults (kill, restart, pause,
	// OOM); a shared one leaves them out and the Result says so.
	Redis *memtest.RedisServer
	// RedisURL names a Redis to use when Redis is nil, e.g.
	// redis://127.0.0.1:6379/0. Process faults are then left out. When both
	// are empty, Run starts a private redis-server in a temporary directory.
	RedisURL string
	// RedisCluster is a Redis Cluster to run against instead, from
	// memtest (ClusterWith with Private, or StartCluster). A private one
	// allows the cluster faults (failovers, slot migration, a paused
	// master). ClusterProxies, when the cluster's nodes announce them
	// (memtest.ClusterOptions.Announce), allows the network faults and
	// node-partition too.
	RedisCluster   *memtest.RedisCluster
	ClusterProxies *fault.ClusterProxies
	// Cluster asks Run for a private Redis Cluster (three masters, each
	// with a replica) in a temporary directory, instead of a private
	// redis-server, when no Redis is named. RedisURL may name a cluster
	// too: redis+cluster://host:port,host:port, or a seed list
	// host:port,host:port.
	Cluster bool
	// DB is a SQLite file path or a postgres:// URL. The engine opens one
	// handle per store instance. Empty: a SQLite file in a temporary
	// directory.
	DB string
	// Namespace scopes the run's Redis keys and DB rows. Default
	// "verify-<store>-<random>", so runs never see each other's data.
	Namespace string
	// TTL is the stores' cache TTL. Default: the store's own (10m).
	TTL time.Duration

	// Clients is the number of concurrent clients (goroutines, each making
	// one call at a time). Default 8.
	Clients int
	// Instances is the number of separate store instances in this process,
	// each with its own Redis client and DB handle; the clients are spread
	// over them (and over the worker processes). 1 means every client shares
	// one instance. Default 3; with Exec, Clients (an adapter per client).
	Instances int
	// Processes is the number of worker processes, each running one store
	// instance of its own and executing the operations the engine sends it.
	// Default 0: none.
	Processes int
	// WorkerCommand starts a worker process; the engine appends the worker
	// arguments, which the process hands to WorkerMain. A command whose
	// binary dispatches on a subcommand names it: []string{exe, "worker"}.
	// Default: this executable with the argument "worker", and
	// MEMSTORE_VERIFY_WORKER=1 in the environment (EnvWorker) of every
	// worker, which is how a test binary knows (see WorkerMain).
	WorkerCommand []string

	// Keys is the number of keys the workload uses. Default 5: few keys
	// make races likely, and the per-key checker stays cheap.
	Keys int
	// Skew is Uniform (default) or Zipf.
	Skew string
	// Mix weighs gets, sets and deletes. Default DefaultMix.
	Mix Mix
	// Duration caps the workload phase. Default 5s.
	Duration time.Duration
	// Ops ends the workload phase after this many operations, if that comes
	// before Duration. Default 0: Duration alone.
	Ops int
	// FaultRounds, when positive, ends the workload phase once the faults
	// have come round that many times (each fault once per round), if that
	// comes before Duration and Ops. Default 0: Duration and Ops alone.
	FaultRounds int
	// OpTimeout bounds each operation. Default 2s. With Exec it is also
	// the adapters' watchdog: a request unanswered that long after it was
	// sent is recorded as unknown, and the adapter is killed and
	// restarted (a Hang).
	OpTimeout time.Duration
	// HangSlack is how long past its context an in-process store call
	// (or a worker process's) may run before the watchdog reports it as
	// hung (Result.Hangs) and the run ends. Default DefaultHangSlack.
	HangSlack time.Duration
	// Seed makes the run reproducible: the op stream, the keys, the delays'
	// choices and the faults' order derive from it (timing does not).
	Seed int64

	// Faults names the nemeses the workload cycles through (see
	// FaultNames); nil means DefaultFaults, []string{"none"} none. Faults
	// that the environment cannot produce (process faults on a shared
	// Redis) are left out and noted in the Result.
	Faults []string
	// RequireFaults makes Run fail with ErrFaultUnavailable, before the
	// workload starts, when a fault named in Faults cannot be produced,
	// instead of leaving it out with a note.
	RequireFaults bool
	// Nemeses are extra faults, beyond Faults, that the caller builds (a
	// store's own fault controls). They join the cycle.
	Nemeses []fault.Nemesis
	// FaultHold is how long each fault stays injected, FaultGap the pause
	// between faults. Defaults 400ms and 250ms.
	FaultHold time.Duration
	FaultGap  time.Duration

	// NoDelay turns off the delays the engine injects through the store's
	// Hook to widen race windows: random sleeps of up to MaxDelay after each
	// DB read and write and before each cache fill, set and delete. They
	// are decisive for detection and on by default.
	NoDelay bool
	// MaxDelay is the longest injected delay. Default 3ms.
	MaxDelay time.Duration
	// NoEvict turns off the background evicter, which drops a random key's
	// cache entry every EvictEvery during the workload, as Redis eviction
	// would. Without it, strategies whose readers all agree on a wrong
	// cached value go unseen until the final reads.
	NoEvict    bool
	EvictEvery time.Duration // default 20ms

	// NoReadWindows turns off the read windows: every ReadWindowEvery the
	// workload's writes pause for ReadWindow (in-flight writes finish
	// first), and in the middle of the window every key's cache entry is
	// evicted, while reads go on. A cache that disagrees with the DB at
	// that moment is read before and after the eviction with no write in
	// between, which no linearizable store allows. Without the windows a
	// stale cached value is usually overwritten before a read that reaches
	// the DB can expose it. Defaults 300ms and 30ms.
	NoReadWindows   bool
	ReadWindowEvery time.Duration
	ReadWindow      time.Duration

	// NoSteps leaves the store's steps out of the history. By default
	// every step an in-process store reports to its Hook (a DB load, a
	// cache fill, an invalidation) is recorded as a history.Step event,
	// so that an anomaly's explanation can name the mechanism ("a fill
	// that read the DB before the write committed landed after its
	// invalidation").
	NoSteps bool

	// NoFinalReads leaves out the convergence snapshot and the final reads
	// (for measuring what they are worth; a real run wants them).
	NoFinalReads bool

	// Warmup is the phase before the faults (no faults, one client per
	// instance). Default 200ms. Quiet is the phase after heal, with no load,
	// in which background repairs (memstore's reconciler) run. Default 1.5s.
	Warmup time.Duration
	Quiet  time.Duration

	// StampedeKeys cold keys are read by StampedeReaders concurrent Gets
	// across the instances at the end of the run, and their DB loads
	// counted. Defaults 3 and 50; at most 60 readers, for the reads are
	// checked too, and the checker bounds the operations pending at once
	// on one key (check.DefaultMaxConcurrency, 64). MaxColdLoads, when positive, makes more
	// loads per cold key than that a failure; 0 only reports them.
	StampedeKeys    int
	StampedeReaders int
	MaxColdLoads    int

	// Outcome classifies a call's error. Default DefaultOutcome.
	Outcome func(kind history.Kind, err error) history.Outcome
	// Check configures the checks (timeouts, bounds). The engine fills in
	// the snapshot. Nil: check's defaults.
	Check *check.Options

	// Progress, when set, is called about every 200ms and at each phase
	// change, never twice at once. It must return quickly.
	Progress func(Progress)
}

// Defaults of Config.
const (
	DefaultClients     = 8
	DefaultInstances   = 3
	DefaultKeys        = 5
	DefaultDuration    = 5 * time.Second
	DefaultOpTimeout   = 2 * time.Second
	DefaultFaultHold   = 400 * time.Millisecond
	DefaultFaultGap    = 250 * time.Millisecond
	DefaultMaxDelay    = 3 * time.Millisecond
	DefaultEvictEvery  = 20 * time.Millisecond
	DefaultReadEvery   = 300 * time.Millisecond
	DefaultReadWindow  = 30 * time.Millisecond
	DefaultWarmup      = 200 * time.Millisecond
	DefaultQuiet       = 1500 * time.Millisecond
	DefaultStampedeKey = 3
	DefaultReaders     = 50

	maxStampedeReaders = 60
)

func (c Config) withDefaults() (Config, error) {
	if c.Exec != nil {
		switch {
		case c.Exec.Command == "":
			return c, errors.New("verify: Config.Exec has no Command")
		case c.Processes > 0:
			return c, errors.New("verify: Config.Exec runs adapters, not worker processes: Processes must be 0")
		case c.onCluster():
			return c, errors.New("verify: Config.Exec on a Redis Cluster: the exec protocol names one Redis server (MEMSTORE_REDIS_URL)")
		}
		if c.Store.Name == "" {
			c.Store.Name = c.Exec.Name
		}
		if c.Store.Name == "" {
			c.Store.Name = "exec"
		}
		c.Store.ExpectPass = true
		c.Store.New = func(context.Context, strategies.Config) (strategies.Store, error) {
			return nil, errors.New("verify: an --exec store is started by the engine")
		}
		if c.Instances == 0 {
			c.Instances = max(c.Clients, 0)
			if c.Instances == 0 {
				c.Instances = DefaultClients
			}
		}
	}
	if c.Store.New == nil {
		return c, errors.New("verify: Config.Store has no New function")
	}
	if c.Store.Name == "" {
		c.Store.Name = "store"
	}
	if c.Clients < 0 || c.Instances < 0 || c.Processes < 0 || c.Keys < 0 || c.Ops < 0 || c.FaultRounds < 0 {
		return c, errors.New("verify: negative count in Config")
	}
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	defd := func(p *time.Duration, v time.Duration) {
		if *p <= 0 {
			*p = v
		}
	}
	def(&c.Clients, DefaultClients)
	def(&c.Instances, DefaultInstances)
	def(&c.Keys, DefaultKeys)
	def(&c.StampedeKeys, DefaultStampedeKey)
	def(&c.StampedeReaders, DefaultReaders)
	defd(&c.Duration, DefaultDuration)
	defd(&c.OpTimeout, DefaultOpTimeout)
	defd(&c.HangSlack, DefaultHangSlack)
	defd(&c.FaultHold, DefaultFaultHold)
	defd(&c.FaultGap, DefaultFaultGap)
	defd(&c.MaxDelay, DefaultMaxDelay)
	defd(&c.EvictEvery, DefaultEvictEvery)
	defd(&c.ReadWindowEvery, DefaultReadEvery)
	defd(&c.ReadWindow, DefaultReadWindow)
	defd(&c.Warmup, DefaultWarmup)
	defd(&c.Quiet, DefaultQuiet)
	if c.StampedeReaders > maxStampedeReaders {
		return c, fmt.Errorf("verify: %d stampede readers; at most %d", c.StampedeReaders, maxStampedeReaders)
	}
	switch c.Skew {
	case "":
		c.Skew = Uniform
	case Uniform, Zipf:
	default:
		return c, fmt.Errorf("verify: unknown skew %q (want %q or %q)", c.Skew, Uniform, Zipf)
	}
	if c.Mix == (Mix{}) {
		c.Mix = DefaultMix
	}
	if c.Mix.Get < 0 || c.Mix.Set < 0 || c.Mix.Delete < 0 || c.Mix.total() == 0 {
		return c, fmt.Errorf("verify: bad mix %+v", c.Mix)
	}
	if c.Outcome == nil {
		c.Outcome = DefaultOutcome
	}
	if c.Faults == nil {
		c.Faults = DefaultFaults()
		if c.onCluster() {
			c.Faults = DefaultClusterFaults()
		}
	}
	for _, f := range c.Faults {
		if f != "none" && !knownFault(f) {
			return c, fmt.Errorf("verify: unknown fault %q (known: %v)", f, FaultNames())
		}
	}
	return c, nil
}

// onCluster reports whether the run's Redis is a Redis Cluster.
func (c Config) onCluster() bool {
	switch {
	case c.Redis != nil:
		return false
	case c.RedisCluster != nil:
		return true
	case c.RedisURL != "":
		r, err := testenv.Parse(c.RedisURL)
		return err == nil && r.IsCluster()
	}
	return c.Cluster
}

// DefaultOutcome classifies a call's error the way the strategies.KV contract
// reads:
//
//   - nil, or ErrNotFound from a read: OK.
//   - A read's other errors: Failed (a failed read carries no information).
//   - A write's error wrapping ErrInvalidKey, ErrTooLarge or ErrCodec, or
//     ErrUnavailable without ErrOutcomeUnknown: Failed. memstore documents
//     these as "nothing was written" (write.go): an intent that could not be
//     recorded, a transaction that did not commit.
//   - Every other write error: Unknown. That is the sound default: the
//     classic strategies return raw driver errors after partial work, and
//     a timeout may strike after the write was applied.
func DefaultOutcome(kind history.Kind, err error) history.Outcome {
	switch {
	case err == nil:
		return history.OK
	case kind.IsRead() && errors.Is(err, memstore.ErrNotFound):
		return history.OK
	case kind.IsRead():
		return history.Failed
	case errors.Is(err, memstore.ErrOutcomeUnknown),
		errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, context.Canceled):
		return history.Unknown
	case errors.Is(err, memstore.ErrInvalidKey),
		errors.Is(err, memstore.ErrTooLarge),
		errors.Is(err, memstore.ErrCodec),
		errors.Is(err, memstore.ErrUnavailable):
		return history.Failed
	}
	return history.Unknown
}
