package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, to ping --db postgres://
	"github.com/redis/go-redis/v9"

	"github.com/memstore/memstore/history"
	"github.com/memstore/memstore/internal/testenv"
	"github.com/memstore/memstore/report"
	"github.com/memstore/memstore/strategies"
	"github.com/memstore/memstore/verify"
)

// Defaults of `memstore check`. The default run checks six stores. A run
// spends most of its time waiting (injected delays, faults held, timeouts)
// rather than computing, so three at a time, each on a private
// redis-server and SQLite file of its own, cost little detection: on a
// two-core machine the whole default run takes about 30s.
const (
	defaultCheckDuration = 10 * time.Second
	defaultParallel      = 3
	defaultOut           = "memstore-out"
)

const checkHelp = `Usage: memstore check [flags]

Runs the verifier against cache+DB stores: concurrent clients over several
store instances (and, with --processes, worker processes), faults (Redis
killed, paused, flushed, out of memory, evicted ...), a recorded history,
a per-key linearizability check, explainers that name stale reads and lost
writes, a convergence sweep after heal and a stampede probe. It prints a
table, writes report.html and result.json into --out, and exits 0 only if
every store met its expectation.

Expectations: each store declares one, in its strategies.Factory
(ExpectPass). memstore and db-only (no cache: the verifier's control) are
expected to pass: linearizable per key, no anomaly, converged after heal.
The classic strategies (write-db-delete-cache, delete-cache-write-db,
write-db-set-cache, double-delete, lease-no-intent) are known to be unsafe
and expected to be caught by some check. The verdict column says how each
store fared against its expectation: PASS, FAIL (expected to pass, did
not), CAUGHT, MISSED (known-bad, yet no check fired).

Exit status:
  --store all (the default): the verifier's self-test. 0 when every store
      met its expectation (memstore passed, every known-bad store was
      caught), 1 when one did not.
  stores named one by one: "is this store safe?". 0 only when every named
      store passed every check; a known-bad store is reported CAUGHT, as
      expected, and the status is 1, because it broke its promises.
  2 for a usage or setup problem (bad flag, missing redis-server,
      unreachable server, unwritable --out).

By default each store runs on a private redis-server (found on PATH) and a
SQLite file in a temporary directory. With --redis, process faults (kill,
restart, pause, OOM) are left out and the report says so.

Redis Cluster: --redis-cluster gives each store a private cluster of three
masters with a replica each, and adds the cluster faults (a master crashed
and its replica elected, a manual failover, a failover that loses
acknowledged writes, a slot migrating under load, one master cut off);
redis-kill and redis-restart are left out there. --redis names a cluster as
redis+cluster://host:port,host:port or as a bare seed list
host:port,host:port (no scheme); a redis:// URL is one server.

Flags:
`

// checkFlags are the flags of `memstore check`.
type checkFlags struct {
	stores    storeList
	redisURL  string
	cluster   bool
	db        string
	duration  time.Duration
	clients   int
	processes int
	keys      int
	skew      string
	faults    string
	seed      int64
	out       string
	json      bool
	verbose   bool
	parallel  int
	more      moreFlags // exec.go, runs.go
}

func (f *checkFlags) register(fs *flag.FlagSet) {
	fs.Var(&f.stores, "store", "store to check, repeatable: memstore, db-only, a strategy name, or all (default all: memstore and every known-bad strategy)")
	fs.StringVar(&f.redisURL, "redis", "", "use this Redis instead of private redis-servers: redis://host:port/db for one server, redis+cluster://host:port,host:port or a seed list host:port,host:port for a cluster; process faults are then left out")
	fs.BoolVar(&f.cluster, "redis-cluster", false, "run each store on a private Redis Cluster (3 masters, 3 replicas) instead of a private redis-server, with the cluster faults")
	fs.StringVar(&f.db, "db", "", "database: a SQLite file path, a postgres:// URL, or \"postgres\" for a private PostgreSQL cluster per store (default: a SQLite file per store in a temporary directory)")
	fs.DurationVar(&f.duration, "duration", defaultCheckDuration, "workload duration per store (warm-up, heal, quiet period and checks add about 2s)")
	fs.IntVar(&f.clients, "clients", verify.DefaultClients, "concurrent clients per store")
	fs.IntVar(&f.processes, "processes", 0, "worker processes per store, each running a store instance of its own (adds the worker-kill fault)")
	fs.IntVar(&f.keys, "keys", verify.DefaultKeys, "keys the workload uses (few keys make races likely)")
	fs.StringVar(&f.skew, "skew", verify.Uniform, "key popularity: uniform or zipf")
	fs.StringVar(&f.faults, "faults", "", "comma-separated faults, or none (default: every fault this environment can produce: "+strings.Join(verify.FaultNames(), ", ")+")")
	fs.Int64Var(&f.seed, "seed", 0, "seed of the workload, the delays and the faults' order (default: from the clock; the report names it)")
	fs.StringVar(&f.out, "out", defaultOut, "directory of the runs: each run writes report.html, result.json and the histories into a timestamped directory of its own there, and latest points at the last")
	fs.BoolVar(&f.json, "json", false, "print the JSON document (the same as result.json) on stdout instead of the table")
	fs.BoolVar(&f.verbose, "v", false, "verbose: each store's notes and problems on stderr")
	fs.IntVar(&f.parallel, "parallel", defaultParallel, "stores checked at once, each on a Redis and database of its own (1 with --redis or --db)")
	f.more.register(fs)
}

// storeList is the repeatable --store flag.
type storeList []string

func (s *storeList) String() string { return strings.Join(*s, ",") }

func (s *storeList) Set(v string) error {
	for _, name := range strings.Split(v, ",") {
		if name = strings.TrimSpace(name); name != "" {
			*s = append(*s, name)
		}
	}
	return nil
}

// factories resolves store names: memstore, db-only, a strategy, or all.
func factories(names []string) ([]strategies.Factory, error) {
	if len(names) == 0 {
		names = []string{"all"}
	}
	var out []strategies.Factory
	seen := make(map[string]bool)
	add := func(f strategies.Factory) {
		if !seen[f.Name] {
			seen[f.Name] = true
			out = append(out, f)
		}
	}
	for _, name := range names {
		switch name {
		case "all":
			for _, f := range strategies.All() {
				add(f)
			}
		case strategies.DBOnly().Name:
			add(strategies.DBOnly())
		default:
			f, err := strategies.Lookup(name)
			if err != nil {
				return nil, usagef("check: --store: %v, db-only or all", err)
			}
			add(f)
		}
	}
	return out, nil
}

// parseFaults turns --faults into Config.Faults: nil for the default,
// []string{"none"} for none.
func parseFaults(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	if s == "none" {
		return []string{"none"}, nil
	}
	var out []string
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if !slices.Contains(verify.FaultNames(), name) {
			return nil, usagef("check: --faults: unknown fault %q (known: %s, or none)", name, strings.Join(verify.FaultNames(), ", "))
		}
		out = append(out, name)
	}
	if len(out) == 0 {
		return nil, usagef("check: --faults: empty list (say none for no faults)")
	}
	return out, nil
}

func runCheck(ctx context.Context, m *Main, args []string) error {
	var f checkFlags
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	f.register(fs)
	if _, err := m.parseArgs(fs, args, checkHelp, 0); err != nil {
		return err
	}
	if f.more.runs > 1 {
		return runRepeated(ctx, m, &f, args)
	}
	return checkRun(ctx, m, &f, args)
}

// checkRun is one run of `memstore check` with the flags f.
func checkRun(ctx context.Context, m *Main, f *checkFlags, args []string) error {
	cfg, stores, err := f.config()
	if err != nil {
		return err
	}
	if stores, err = f.more.apply(&cfg, stores, f.stores); err != nil {
		return err
	}
	if err := f.preflight(ctx); err != nil {
		return err
	}
	if f.out, err = f.more.openRunDir(f.out); err != nil {
		return err
	}
	closeLog, err := f.more.openLog(&cfg)
	if err != nil {
		return err
	}
	defer closeLog()
	if f.parallel > 1 && (f.redisURL != "" || f.db != "" && f.db != "postgres") {
		// One server or one database shared by concurrent runs: keep
		// them apart in time too, so one run's load does not blur another's.
		f.parallel = 1
	}
	if m.WorkerCommand != nil {
		cfg.WorkerCommand = m.WorkerCommand
	} else if f.processes > 0 {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("check: the worker processes need this executable's path: %w", err)
		}
		cfg.WorkerCommand = []string{exe, "worker"}
	}

	start := time.Now()
	var names []string
	for _, st := range stores {
		names = append(names, st.Name)
	}
	prog := newProgress(m.Stderr, names)
	cfg.Progress = prog.update
	stopWatch := context.AfterFunc(ctx, func() {
		prog.say("check: interrupted: healing the faults, checking what was recorded, writing the report (Ctrl-C again to quit at once)")
	})
	results, runErr := runStores(ctx, cfg, stores, f.parallel, prog)
	runErr = execSetupError(runErr)
	stopWatch()
	prog.stop()
	interrupted := ctx.Err() != nil
	if runErr != nil && len(results) == 0 && !interrupted {
		return runErr
	}

	run := &report.Run{
		Title:       "memstore check",
		RequirePass: len(f.stores) > 0 && !slices.Contains(f.stores, "all") || cfg.Exec != nil,
		Command:     "memstore " + strings.Join(append([]string{"check"}, args...), " "),
		Started:     start,
		Elapsed:     time.Since(start),
		Settings:    f.settings(cfg),
		Results:     results,
		Histories:   make(map[string]string),
		Faults:      cfg.Faults,
		Interrupted: interrupted,
	}
	f.more.last = &runSummary{run: run, dir: f.out}
	run.Settings = append(run.Settings, f.more.settings(cfg)...)
	if run.Faults == nil {
		run.Faults = verify.DefaultFaults()
	}
	switch {
	case interrupted:
		if n := len(stores) - len(results); n > 0 {
			run.Notes = append(run.Notes, fmt.Sprintf("interrupted: %d of %d stores did not start, or stopped before the workload", n, len(stores)))
		}
		runErr = nil
	case runErr != nil:
		run.Notes = append(run.Notes, "some stores could not be run: "+runErr.Error())
	}
	run.Notes = append(run.Notes, leftOutNotes(results)...)
	if err := writeOut(f.out, run); err != nil {
		return err
	}
	if err := f.more.writeExtras(run); err != nil {
		return err
	}
	if f.verbose {
		for _, r := range results {
			fmt.Fprintf(m.Stderr, "%s\n", r.Summary())
			for _, p := range r.Problems() {
				fmt.Fprintf(m.Stderr, "  problem: %s\n", report.Plain(p))
			}
			for _, n := range r.Notes {
				fmt.Fprintf(m.Stderr, "  note: %s\n", report.Plain(n))
			}
		}
	}
	if f.json {
		if err := report.WriteJSON(m.Stdout, run); err != nil {
			return err
		}
	} else {
		if err := report.WriteTable(m.Stdout, run); err != nil {
			return err
		}
		for _, n := range run.Notes {
			fmt.Fprintf(m.Stdout, "note: %s\n", n)
		}
		fmt.Fprintf(m.Stdout, "report: %s\n", filepath.Join(f.out, "report.html"))
	}
	switch {
	case interrupted:
		return &interruptedError{msg: "partial report in " + filepath.Join(f.out, "report.html")}
	case runErr != nil:
		return runErr
	case !run.OK():
		return &checkFailed{run: run}
	}
	return nil
}

// checkFailed is a run in which some store did not meet its expectation:
// exit status 1.
type checkFailed struct{ run *report.Run }

func (e *checkFailed) Error() string {
	return strings.TrimPrefix(e.run.Headline(), "FAIL: ")
}

// config checks the flags and turns them into the engine's Config and the
// stores to run.
func (f *checkFlags) config() (verify.Config, []strategies.Factory, error) {
	var cfg verify.Config
	stores, err := factories(f.stores)
	if err != nil {
		return cfg, nil, err
	}
	faults, err := parseFaults(f.faults)
	if err != nil {
		return cfg, nil, err
	}
	switch {
	case f.duration <= 0:
		return cfg, nil, usagef("check: --duration must be positive, got %v", f.duration)
	case f.clients <= 0:
		return cfg, nil, usagef("check: --clients must be at least 1, got %d", f.clients)
	case f.processes < 0:
		return cfg, nil, usagef("check: --processes must not be negative, got %d", f.processes)
	case f.keys <= 0:
		return cfg, nil, usagef("check: --keys must be at least 1, got %d", f.keys)
	case f.skew != verify.Uniform && f.skew != verify.Zipf:
		return cfg, nil, usagef("check: --skew must be %s or %s, got %q", verify.Uniform, verify.Zipf, f.skew)
	case f.parallel <= 0:
		return cfg, nil, usagef("check: --parallel must be at least 1, got %d", f.parallel)
	case f.out == "":
		return cfg, nil, usagef("check: --out must name a directory")
	}
	if f.seed == 0 {
		f.seed = time.Now().UnixNano() % 1_000_000
	}
	if f.cluster && f.redisURL != "" {
		return cfg, nil, usagef("check: --redis-cluster starts a cluster; --redis names one: pick one")
	}
	cfg = verify.Config{
		RedisURL:  f.redisURL,
		Cluster:   f.cluster,
		DB:        f.db,
		Clients:   f.clients,
		Processes: f.processes,
		Keys:      f.keys,
		Skew:      f.skew,
		Duration:  f.duration,
		Seed:      f.seed,
		Faults:    faults,
	}
	return cfg, stores, nil
}

// preflight finds the problems that would make the run fail, before it
// starts: a missing redis-server, an unreachable server, an unwritable
// output directory. They are setup errors (exit status 2).
func (f *checkFlags) preflight(ctx context.Context) error {
	if f.redisURL == "" {
		if _, err := exec.LookPath("redis-server"); err != nil {
			return setupf("redis-server not found on PATH; install it with `sudo apt-get install -y redis-server` (or `make deps`), or pass --redis URL")
		}
	} else {
		r, err := testenv.Parse(f.redisURL)
		if err != nil {
			return usagef("check: --redis %q: %v", f.redisURL, err)
		}
		opts := r.Options("")
		opts.DialTimeout, opts.ReadTimeout, opts.MaxRetries = 2*time.Second, 2*time.Second, -1
		c := redis.NewUniversalClient(opts)
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err = c.Ping(pctx).Err()
		cancel()
		c.Close()
		if err != nil {
			what := "Redis"
			if r.IsCluster() {
				what = "Redis Cluster"
			}
			return setupf("cannot reach %s at %s: %v", what, strings.Join(r.Addrs(), ","), err)
		}
	}
	if err := pingDB(ctx, f.db); err != nil {
		return err
	}
	return probeDir(f.out)
}

// pingDB checks --db: a postgres:// URL must answer, a SQLite path must be
// in an existing directory.
func pingDB(ctx context.Context, db string) error {
	switch {
	case db == "":
		return nil
	case db == "postgres":
		return nil // started per store; a missing PostgreSQL is reported then
	case strings.HasPrefix(db, "postgres://"), strings.HasPrefix(db, "postgresql://"):
		u, err := url.Parse(db)
		if err != nil || u.Host == "" && u.Query().Get("host") == "" {
			return usagef("check: --db %q: not a valid postgres:// URL", db)
		}
		conn, err := sql.Open("pgx", db)
		if err != nil {
			return usagef("check: --db: %v", err)
		}
		defer conn.Close()
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := conn.PingContext(pctx); err != nil {
			return setupf("cannot reach PostgreSQL at %s: %v", u.Redacted(), err)
		}
		return nil
	case strings.Contains(db, "://"):
		return usagef("check: --db %q: want a SQLite file path or a postgres:// URL", db)
	}
	dir := filepath.Dir(db)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return setupf("--db %s: directory %s does not exist", db, dir)
	}
	return nil
}

// probeDir makes sure dir exists and takes files.
func probeDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return setupf("output directory %s: %v", dir, unwrapPath(err))
	}
	p, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return setupf("output directory %s is not writable: %v", dir, unwrapPath(err))
	}
	p.Close()
	return os.Remove(p.Name())
}

// unwrapPath drops the path from a *PathError, which the message already
// names.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// runStores runs the stores, parallel at a time, each with cfg. Each run
// gets its own private redis-server and SQLite file unless cfg names them.
// The results keep the order of stores; a store that could not run has
// none, and its error is joined into the returned one.
func runStores(ctx context.Context, cfg verify.Config, stores []strategies.Factory, parallel int, prog *progress) ([]*verify.Result, error) {
	results := make([]*verify.Result, len(stores))
	errs := make([]error, len(stores))
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i, st := range stores {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			errs[i] = ctx.Err()
			break
		}
		prog.begin(st.Name)
		wg.Go(func() {
			defer func() { <-sem }()
			c := cfg
			c.Store = st
			r, err := verify.Run(ctx, c)
			if err != nil {
				err = fmt.Errorf("%s: %w", st.Name, err)
			}
			results[i], errs[i] = r, err
			prog.done(st.Name, r, err)
		})
	}
	wg.Wait()
	var out []*verify.Result
	for _, r := range results {
		if r != nil {
			out = append(out, r)
		}
	}
	return out, errors.Join(errs...)
}

// settings are the run's parameters as the report shows them.
func (f *checkFlags) settings(cfg verify.Config) []report.Setting {
	redisDesc := "a private redis-server per store"
	if f.cluster {
		redisDesc = "a private Redis Cluster per store (3 masters, 3 replicas)"
	}
	if f.redisURL != "" {
		redisDesc = redactURL(f.redisURL)
	}
	dbDesc := "a SQLite file per store, in a temporary directory"
	if f.db == "postgres" {
		dbDesc = "a private PostgreSQL cluster per store"
	} else if f.db != "" {
		dbDesc = redactURL(f.db)
	}
	defaults := verify.DefaultFaults()
	if f.cluster || isClusterURL(f.redisURL) {
		defaults = verify.DefaultClusterFaults()
	}
	faults := fmt.Sprintf("all %d, one at a time in a seeded order while the workload lasts; each store lists those it reached, did not reach, or could not produce here",
		len(defaults))
	if cfg.Faults != nil {
		faults = strings.Join(cfg.Faults, ", ")
	}
	procs := "none"
	if f.processes > 0 {
		procs = strconv.Itoa(f.processes) + " per store"
	}
	return []report.Setting{
		{Name: "seed", Value: strconv.FormatInt(cfg.Seed, 10)},
		{Name: "duration", Value: cfg.Duration.String() + " of workload per store"},
		{Name: "clients", Value: strconv.Itoa(cfg.Clients)},
		{Name: "processes", Value: procs},
		{Name: "keys", Value: fmt.Sprintf("%d (%s)", cfg.Keys, cfg.Skew)},
		{Name: "faults", Value: faults},
		{Name: "redis", Value: redisDesc},
		{Name: "db", Value: dbDesc},
	}
}

func isClusterURL(s string) bool {
	if s == "" {
		return false
	}
	r, err := testenv.Parse(s)
	return err == nil && r.IsCluster()
}

func redactURL(s string) string {
	if isClusterURL(s) {
		r, _ := testenv.Parse(s)
		return r.String() // the seeds, without credentials
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return s
	}
	return u.Redacted()
}

// leftOutNotes says, once for the run, which faults could not be produced
// and why.
func leftOutNotes(results []*verify.Result) []string {
	why := make(map[string]string)
	var names []string
	for _, r := range results {
		for name, reason := range r.LeftOut {
			if _, ok := why[name]; !ok {
				names = append(names, name)
			}
			why[name] = reason
		}
	}
	slices.Sort(names)
	byReason := make(map[string][]string)
	var reasons []string
	for _, n := range names {
		if _, ok := byReason[why[n]]; !ok {
			reasons = append(reasons, why[n])
		}
		byReason[why[n]] = append(byReason[why[n]], n)
	}
	var out []string
	for _, r := range reasons {
		out = append(out, fmt.Sprintf("faults left out: %s: %s", strings.Join(byReason[r], ", "), report.Plain(r)))
	}
	return out
}

// writeOut writes report.html, result.json and each store's history into
// dir.
func writeOut(dir string, run *report.Run) error {
	hdir := filepath.Join(dir, "histories")
	if err := os.MkdirAll(hdir, 0o755); err != nil {
		return setupf("output directory: %v", err)
	}
	for _, r := range run.Results {
		if r.History == nil {
			continue
		}
		name := filepath.Join("histories", r.Store+".jsonl")
		if err := writeFile(filepath.Join(dir, name), func(w *os.File) error { return history.Write(w, r.History) }); err != nil {
			return err
		}
		run.Histories[r.Store] = name
	}
	if err := writeFile(filepath.Join(dir, "result.json"), func(w *os.File) error { return report.WriteJSON(w, run) }); err != nil {
		return err
	}
	var opts *report.HTMLOptions
	if run.Interrupted {
		// Whoever pressed Ctrl-C is waiting: bound porcupine's drawing.
		opts = &report.HTMLOptions{TimelineTimeout: time.Second}
	}
	return writeFile(filepath.Join(dir, "report.html"), func(w *os.File) error { return report.WriteHTML(w, run, opts) })
}

// writeFile writes path through a temporary file, so that a reader never
// sees half a report.
func writeFile(path string, write func(*os.File) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := write(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
