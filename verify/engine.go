package verify

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mrand "math/rand/v2"

	"github.com/memstore/memstore/check"
	"github.com/memstore/memstore/fault"
	"github.com/memstore/memstore/history"
	"github.com/memstore/memstore/strategies"
)

// engine runs one store through the phases of a run.
type engine struct {
	cfg Config
	env *env

	start time.Time
	clock func() int64
	rec   *history.Recorder // process 0: in-process clients, and every event

	keys      []string
	instances []*instance
	locals    []*local
	workers   []*worker

	ops, errs atomic.Int64 // completed calls, and those with an error
	faultErrs atomic.Int64 // ... of which overlapped a fault window
	faultSeq  atomic.Int64 // bumped at every fault injected and healed
	faulted   atomic.Bool  // a fault is injected now
	started   atomic.Int64 // workload calls begun, against Config.Ops

	clientMu   sync.Mutex
	nextClient int

	progressMu sync.Mutex // Progress calls never overlap
	stateMu    sync.Mutex
	phase      string
	curFault   string
	stopPhase  string // the phase ctx ended in
	runCtx     context.Context

	gate         sync.RWMutex       // writes hold it shared; a read window holds it
	leftOut      map[string]string  // fault -> why it could not be produced
	proxies      []*fault.Proxy     // one per instance and worker, when a network fault is on
	sqlFaults    []*fault.SQLFaults // one per instance, when a DB fault is on
	workStop     chan struct{}
	workStopOnce sync.Once

	hangMu sync.Mutex
	hangs  []Hang // calls that did not return in time

	killMu  sync.Mutex
	killRng *mrand.Rand // kill-worker's choice of adapter
}

// local runs calls on an instance in this process.
type local struct {
	in      *instance
	rec     *history.Recorder
	outcome func(history.Kind, error) history.Outcome
}

func (l *local) name() string                { return fmt.Sprintf("instance %d", l.in.id) }
func (l *local) recorder() *history.Recorder { return l.rec }

func (l *local) do(ctx context.Context, r request) (resp response) {
	defer func() {
		if p := recover(); p != nil {
			resp = response{Err: fmt.Sprintf("panic: %v", p), ErrKind: history.Unknown}
			if r.Kind.IsRead() {
				resp.ErrKind = history.Failed
			}
		}
	}()
	var err error
	defer func() {
		// An error that states its outcome (an adapter's) is taken at
		// its word, for writes; a read's error is always failed.
		var oe interface{ Outcome() history.Outcome }
		if err != nil && r.Kind.IsWrite() && errors.As(err, &oe) && resp.ErrKind != "" {
			resp.ErrKind = oe.Outcome()
		}
	}()
	switch r.Kind {
	case history.Get:
		resp.Value, err = l.in.store.Get(ctx, r.Key)
		resp.Found = err == nil
		if !resp.Found {
			resp.Value = ""
		}
	case history.Set:
		err = l.in.store.Set(ctx, r.Key, r.Value)
	case history.Delete:
		err = l.in.store.Delete(ctx, r.Key)
	default:
		err = fmt.Errorf("verify: unsupported kind %q", r.Kind)
	}
	if oc := l.outcome(r.Kind, err); oc != history.OK {
		resp.ErrKind = oc
		resp.Found = false
		resp.Value = ""
		resp.Err = fmt.Sprintf("outcome %s", oc)
		if err != nil {
			resp.Err = err.Error()
		}
	}
	return resp
}

// Run runs one store through a Jepsen-style test and checks the history:
//
//  1. warm-up: light load, no faults;
//  2. workload: Config.Clients clients over the instances and worker
//     processes, the faults cycling (inject, hold, heal, each window
//     recorded), the evicter dropping cache entries, delays widening the
//     race windows, until Config.Duration or Config.Ops;
//  3. heal: every fault healed;
//  4. quiet: no load, so that background repairs run;
//  5. convergence: both tiers of every key inspected through a fresh
//     instance (before any read can refill the cache);
//  6. final reads: every key read, its cache entry evicted, and read again
//     through the fresh instance, recorded as final reads. Strategies whose
//     readers all agree on a wrong cached value are exposed here;
//  7. stampede: a few cold keys read by many concurrent Gets across the
//     instances, DB loads counted per key;
//  8. check: check.All over the history, the snapshot and the counts.
//
// Run returns an error when the run could not be set up or was cancelled;
// what the checks found is in the Result. A run cancelled after its
// workload began still heals its faults and returns, with ctx's error, a
// Result of the history so far, marked Interrupted.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	env, err := newEnv(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	e := &engine{cfg: cfg, env: env, workStop: make(chan struct{}), killRng: newRand(cfg.Seed, 11)}
	env.onHang, env.clock = e.onHang, e.sinceStart
	res, err := e.run(ctx)
	if notes := e.cleanup(ctx); res != nil {
		res.Notes = append(res.Notes, notes...)
	}
	if cerr := env.close(); err == nil && cerr != nil && res != nil {
		res.Notes = append(res.Notes, "cleanup: "+cerr.Error())
	}
	return res, err
}

func (e *engine) newClientID() int {
	e.clientMu.Lock()
	defer e.clientMu.Unlock()
	e.nextClient++
	return e.nextClient - 1
}

func (e *engine) setPhase(p string) {
	e.stateMu.Lock()
	if e.stopPhase == "" && e.runCtx != nil && e.runCtx.Err() != nil {
		// ctx ended in the phase being left: record it before the
		// AfterFunc below gets to run, which may be after this change.
		e.stopPhase = e.phase
	}
	e.phase = p
	e.stateMu.Unlock()
	e.report()
}

func (e *engine) setFault(f string) {
	e.stateMu.Lock()
	e.curFault = f
	e.faulted.Store(f != "")
	e.faultSeq.Add(1)
	e.stateMu.Unlock()
}

func (e *engine) report() {
	if e.cfg.Progress == nil {
		return
	}
	e.progressMu.Lock()
	defer e.progressMu.Unlock()
	e.stateMu.Lock()
	p := Progress{Store: e.cfg.Store.Name, Phase: e.phase, Fault: e.curFault}
	e.stateMu.Unlock()
	p.Elapsed = time.Since(e.start)
	p.Ops, p.Errors, p.FaultErrors = int(e.ops.Load()), int(e.errs.Load()), int(e.faultErrs.Load())
	e.cfg.Progress(p)
}

func (e *engine) stopWorkload() { e.workStopOnce.Do(func() { close(e.workStop) }) }

// phaseEvent marks a phase in the history and the progress reports.
func (e *engine) phaseEvent(name string) *history.PendingEvent {
	e.setPhase(name)
	return e.rec.BeginEvent(history.Phase, name, "")
}

func (e *engine) run(ctx context.Context) (*Result, error) {
	cfg := &e.cfg
	e.start = time.Now()
	start := e.start
	e.clock = func() int64 { return int64(time.Since(start)) }
	hdr := history.Header{Store: cfg.Store.Name, Seed: cfg.Seed, Start: start, Meta: e.meta()}
	e.rec = history.NewRecorder(hdr, &history.RecorderOptions{Clock: e.clock})
	for i := range cfg.Keys {
		e.keys = append(e.keys, "k"+strconv.Itoa(i))
	}

	if err := e.setup(ctx); err != nil {
		return nil, err
	}
	defer func() {
		for _, w := range e.workers {
			w.stop()
		}
	}()
	e.stateMu.Lock()
	e.runCtx = ctx
	e.stateMu.Unlock()
	defer context.AfterFunc(ctx, func() {
		e.stateMu.Lock()
		if e.stopPhase == "" {
			e.stopPhase = e.phase
		}
		e.stateMu.Unlock()
	})()
	nems := e.buildNemeses()
	if cfg.RequireFaults && len(e.leftOut) > 0 {
		var why []string
		for _, f := range cfg.Faults {
			if w, ok := e.leftOut[f]; ok {
				why = append(why, f+": "+w)
			}
		}
		return nil, fmt.Errorf("%w: %s", ErrFaultUnavailable, strings.Join(why, "; "))
	}

	if e.cfg.Progress != nil {
		// The ticker stops before Run returns: a report after it would
		// overlap the next run's (RunAll), which has its own lock.
		tick := time.NewTicker(200 * time.Millisecond)
		done := make(chan struct{})
		var ticker sync.WaitGroup
		defer func() { tick.Stop(); close(done); ticker.Wait() }()
		ticker.Go(func() {
			for {
				select {
				case <-tick.C:
					e.report()
				case <-done:
					return
				}
			}
		})
	}

	// 1. Warm-up: one client per target, paced.
	targets := e.targets()
	ph := e.phaseEvent("warm-up")
	warmStop := make(chan struct{})
	var wg sync.WaitGroup
	for _, t := range targets {
		id := e.newClientID()
		wg.Go(func() { e.client(ctx, t, id, warmStop, 2*time.Millisecond, false) })
	}
	sleepCtx(ctx, cfg.Warmup)
	close(warmStop)
	wg.Wait()
	ph.End()

	// 2. Workload with faults.
	ph = e.phaseEvent("workload")
	var bg sync.WaitGroup
	bg.Go(func() { e.faultLoop(ctx, nems, e.workStop) })
	if !cfg.NoEvict {
		bg.Go(func() { e.evicter(ctx, e.workStop) })
	}
	if !cfg.NoReadWindows {
		bg.Go(func() { e.readWindows(ctx, e.workStop) })
	}
	for i := range cfg.Clients {
		t := targets[i%len(targets)]
		id := e.newClientID()
		wg.Go(func() { e.client(ctx, t, id, e.workStop, 0, true) })
	}
	timer := time.AfterFunc(cfg.Duration, e.stopWorkload)
	go func() {
		select {
		case <-ctx.Done():
			e.stopWorkload()
		case <-e.workStop:
		}
	}()
	wg.Wait()
	timer.Stop()
	e.stopWorkload()
	bg.Wait()
	ph.End()

	// 3. Heal everything, whatever the loop left.
	ph = e.phaseEvent("heal")
	for _, n := range nems {
		e.heal(ctx, n)
	}
	e.restartWorkers(ctx)
	ph.End()
	if ctx.Err() != nil {
		return e.interrupted(ctx)
	}

	// A call that hung in this process ends the run here: the store
	// holds a goroutine that never returns, and whatever it holds (a
	// connection, a lock) may hang every later call. What was recorded
	// is checked.
	hung := e.hung()
	if hung {
		e.env.note("after the hang, the quiet period, convergence, final reads and stampede probe were left out")
	}

	// 4. Quiet period.
	if !hung {
		ph = e.phaseEvent("quiet")
		sleepCtx(ctx, cfg.Quiet)
		ph.End()
	}

	// 5. Convergence, through a fresh instance without delays.
	var snaps []check.KeySnapshot
	if !cfg.NoFinalReads && !hung {
		ph = e.phaseEvent("convergence")
		fresh, err := e.env.newInstance(ctx, len(e.instances), instanceOptions{})
		if ctx.Err() != nil {
			return e.interrupted(ctx)
		}
		if err != nil {
			return nil, err
		}
		snaps = e.snapshot(ctx, fresh)
		ph.End()

		// 6. Final reads: read, evict, read again through the fresh
		// instance.
		ph = e.phaseEvent("final")
		e.finalReads(ctx, fresh)
		ph.End()
	}

	// 7. Stampede probe. An --exec adapter reports no DB loads.
	var cold []string
	var loads map[string]int
	switch {
	case hung:
	case cfg.Exec != nil:
		e.env.note("an --exec adapter reports no DB loads: no stampede probe")
	default:
		ph = e.phaseEvent("stampede")
		cold, loads = e.stampede(ctx)
		ph.End()
	}
	if ctx.Err() != nil {
		return e.interrupted(ctx)
	}

	// 8. Check.
	for _, w := range e.workers {
		w.stop()
	}
	h, err := e.history()
	if err != nil {
		return nil, err
	}
	e.setPhase("check")
	return e.result(h, snaps, cold, loads), nil
}

// interruptedCheckTimeout bounds the linearizability search of each key of
// an interrupted run: whoever pressed Ctrl-C is waiting.
const interruptedCheckTimeout = 2 * time.Second

// interrupted ends a run whose ctx ended after the workload began, once
// the faults are healed: the history so far is checked (each key's search
// bounded by interruptedCheckTimeout; a key it cannot finish is Unknown),
// with no convergence sweep and no stampede probe, and the Result is
// marked Interrupted. It returns ctx's error with it.
func (e *engine) interrupted(ctx context.Context) (*Result, error) {
	for _, w := range e.workers {
		w.stop()
	}
	e.stateMu.Lock()
	phase := e.stopPhase
	if phase == "" {
		phase = e.phase // AfterFunc's goroutine has not run yet
	}
	e.stateMu.Unlock()
	e.env.note("interrupted during the %s phase: the history so far is checked, without the convergence sweep and the stampede probe", phase)
	h, err := e.history()
	if err != nil {
		return nil, errors.Join(ctx.Err(), err)
	}
	opts := check.Options{}
	if e.cfg.Check != nil {
		opts = *e.cfg.Check
	}
	if opts.Timeout <= 0 || opts.Timeout > interruptedCheckTimeout {
		opts.Timeout = interruptedCheckTimeout
	}
	e.cfg.Check = &opts
	r := e.result(h, nil, nil, nil)
	r.Interrupted = true
	return r, ctx.Err()
}

// setup builds the in-process instances and starts the worker processes.
func (e *engine) setup(ctx context.Context) error {
	network := slices.ContainsFunc(e.cfg.Faults, isNetworkFault)
	dbFaults := slices.ContainsFunc(e.cfg.Faults, isDBFault) && e.cfg.Exec == nil
	if e.cfg.Exec != nil {
		return e.setupExec(ctx, network)
	}
	if network && e.env.cproxies != nil {
		// A cluster's clients reach its nodes through the proxies the
		// nodes announce: the network faults act on those, for every
		// instance and worker at once.
		e.proxies = e.env.cproxies.All()
	}
	for i := range e.cfg.Instances {
		var d *delayer
		if !e.cfg.NoDelay {
			d = newDelayer(e.cfg.MaxDelay, e.cfg.Seed, uint64(100+i))
		}
		o := instanceOptions{hook: hook(d, e.env.loads, e.steps()), migrate: i == 0}
		if network && !e.env.cluster() {
			p, err := e.newProxy(fmt.Sprintf("redis-instance-%d", i))
			if err != nil {
				return err
			}
			o.redisAddr = p.Addr()
		}
		if dbFaults {
			o.wrapDB = func(c driver.Connector) (*sql.DB, error) {
				f := fault.NewSQLFaults(c)
				e.sqlFaults = append(e.sqlFaults, f)
				return f.DB(), nil
			}
		}
		in, err := e.env.newInstance(ctx, i, o)
		if err != nil {
			return err
		}
		e.instances = append(e.instances, in)
		e.locals = append(e.locals, &local{in: in, rec: e.rec, outcome: e.cfg.Outcome})
	}
	if e.cfg.Processes > 0 {
		e.env.note("worker processes classify errors with DefaultOutcome; Config.Outcome applies in this process only")
	}
	errs := make([]error, e.cfg.Processes)
	var wg sync.WaitGroup
	for p := 1; p <= e.cfg.Processes; p++ {
		redisURL := e.env.redisURL("")
		if network && !e.env.cluster() {
			px, err := e.newProxy(fmt.Sprintf("redis-worker-%d", p))
			if err != nil {
				return err
			}
			redisURL = e.env.redisURL(px.Addr())
		}
		w := newWorker(e, p, redisURL)
		e.workers = append(e.workers, w)
		wg.Go(func() { errs[p-1] = w.start(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, w := range e.workers {
			w.stop()
		}
		return err
	}
	return nil
}

// setupExec starts the --exec adapters: instance 0 first, so that it may
// create the schema before any other starts, then the others at once.
func (e *engine) setupExec(ctx context.Context, network bool) error {
	// An adapter has no hooks to sleep in: its Redis round trips go
	// through a proxy that delays each by a random time instead.
	jitter := !e.cfg.NoDelay
	opts := make([]instanceOptions, e.cfg.Instances)
	var proxies []*fault.Proxy
	for i := range opts {
		if network || jitter {
			p, err := e.newProxy(fmt.Sprintf("redis-adapter-%d", i))
			if err != nil {
				return err
			}
			opts[i].redisAddr = p.Addr()
			proxies = append(proxies, p)
		}
	}
	if jitter {
		if err := fault.Jitter(proxies, e.cfg.MaxDelay).Inject(ctx); err != nil {
			return err
		}
	}
	ins := make([]*instance, e.cfg.Instances)
	errs := make([]error, e.cfg.Instances)
	ins[0], errs[0] = e.env.newInstance(ctx, 0, opts[0])
	if errs[0] == nil {
		var wg sync.WaitGroup
		for i := 1; i < len(ins); i++ {
			wg.Go(func() { ins[i], errs[i] = e.env.newInstance(ctx, i, opts[i]) })
		}
		wg.Wait()
	}
	if err := errors.Join(errs...); err != nil {
		if se := new(StartError); errors.As(err, &se) {
			return fmt.Errorf("%w: %w", ErrExecHandshake, se)
		}
		return err
	}
	for _, in := range ins {
		e.instances = append(e.instances, in)
		e.locals = append(e.locals, &local{in: in, rec: e.rec, outcome: e.cfg.Outcome})
	}
	return nil
}

// newProxy starts a TCP proxy in front of Redis, closed with the run.
func (e *engine) newProxy(name string) (*fault.Proxy, error) {
	p, err := fault.NewProxy(name, e.env.redis.Addr())
	if err != nil {
		return nil, err
	}
	e.env.onClose(p.Close)
	e.proxies = append(e.proxies, p)
	return p, nil
}

func (e *engine) targets() []target {
	var ts []target
	for _, l := range e.locals {
		ts = append(ts, l)
	}
	for _, w := range e.workers {
		ts = append(ts, w)
	}
	return ts
}

// restartWorkers waits for every killed worker to be back.
func (e *engine) restartWorkers(ctx context.Context) {
	for _, w := range e.workers {
		w.waitRestarted(ctx)
	}
	for _, in := range e.instances {
		if in.proc != nil {
			in.proc.waitRestarted(ctx)
		}
	}
}

// evicter drops a random key's cache entry every EvictEvery until stop,
// as Redis eviction does to a real store at any moment.
func (e *engine) evicter(ctx context.Context, stop <-chan struct{}) {
	rng := newRand(e.cfg.Seed, 13)
	t := time.NewTicker(e.cfg.EvictEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		in := e.instances[rng.IntN(len(e.instances))]
		cctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
		err := in.store.Evict(cctx, e.keys[rng.IntN(len(e.keys))])
		cancel()
		if errors.Is(err, errors.ErrUnsupported) {
			e.env.note("the store cannot evict: no background eviction")
			return
		}
	}
}

// snapshot inspects every key through in. A store that cannot be inspected
// returns nil (convergence is then not checked, and noted).
func (e *engine) snapshot(ctx context.Context, in *instance) []check.KeySnapshot {
	snaps := []check.KeySnapshot{}
	for _, k := range e.keys {
		var s strategies.Snapshot
		var err error
		for try := 0; try < 3; try++ {
			cctx, cancel := context.WithTimeout(ctx, e.cfg.OpTimeout)
			s, err = in.store.Inspect(cctx, k)
			cancel()
			if err == nil || errors.Is(err, errors.ErrUnsupported) {
				break
			}
			sleepCtx(ctx, 100*time.Millisecond)
		}
		if errors.Is(err, errors.ErrUnsupported) {
			e.env.note("the store cannot be inspected: convergence not checked")
			return nil
		}
		if err != nil {
			e.env.note("convergence: inspect %s: %v (key left out)", k, err)
			continue
		}
		ks := check.KeySnapshot{Key: k, DBPresent: s.DBFound}
		if s.DBFound {
			ks.DBBytes = []byte(s.DBValue)
		}
		if s.Cached && s.CacheFound {
			ks.CachePresent, ks.CacheBytes = true, []byte(s.CacheValue)
		} else if s.Cached {
			ks.CacheNotFound = true
		}
		snaps = append(snaps, ks)
	}
	return snaps
}

// finalReads reads every key through the first instance, evicts it and
// reads it again through fresh: a wrong value that every reader agreed on
// while it stayed cached now meets the DB's.
func (e *engine) finalReads(ctx context.Context, fresh *instance) {
	first := e.locals[0]
	second := &local{in: fresh, rec: e.rec, outcome: e.cfg.Outcome}
	id := e.newClientID()
	for _, k := range e.keys {
		e.call(ctx, first, id, request{Kind: history.Get, Key: k}, true)
		cctx, cancel := context.WithTimeout(ctx, e.cfg.OpTimeout)
		err := first.in.store.Evict(cctx, k)
		cancel()
		if err != nil && !errors.Is(err, errors.ErrUnsupported) {
			e.env.note("final reads: evict %s: %v", k, err)
		}
		e.call(ctx, second, id, request{Kind: history.Get, Key: k}, true)
	}
}

// stampede writes a few fresh keys, evicts them, then releases many
// concurrent Gets of each across as many fresh instances as the run has,
// at once, and counts DB loads per key.
func (e *engine) stampede(ctx context.Context) ([]string, map[string]int) {
	if e.cfg.StampedeKeys == 0 {
		return nil, nil
	}
	writer := e.newClientID()
	var cold []string
	for i := range e.cfg.StampedeKeys {
		k := "stampede-" + strconv.Itoa(i)
		resp := e.call(ctx, e.locals[0], writer, request{Kind: history.Set, Key: k, Value: fmt.Sprintf("c%d-%d", writer, i)}, false)
		if resp.outcome() != history.OK {
			e.env.note("stampede: set %s: %s", k, resp.Err)
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, e.cfg.OpTimeout)
		err := e.locals[0].in.store.Evict(cctx, k)
		cancel()
		if err != nil {
			e.env.note("stampede: evict %s: %v (probe skipped)", k, err)
			return nil, nil
		}
		cold = append(cold, k)
	}
	// The readers go through fresh instances: the faults are healed, but
	// the workload's instances may still hold connections they broke, and
	// a Get that finds Redis unreachable loads the DB by design. The probe
	// measures coalescing, not recovery.
	var readers []*local
	for i := range e.instances {
		var d *delayer
		if !e.cfg.NoDelay {
			d = newDelayer(e.cfg.MaxDelay, e.cfg.Seed, uint64(200+i))
		}
		in, err := e.env.newInstance(ctx, 1000+i, instanceOptions{hook: hook(d, e.env.loads, e.steps())})
		if err != nil {
			e.env.note("stampede: %v (probe skipped)", err)
			return nil, nil
		}
		readers = append(readers, &local{in: in, rec: e.rec, outcome: e.cfg.Outcome})
	}
	e.env.loads.start()
	for _, k := range cold {
		gate := make(chan struct{})
		var wg sync.WaitGroup
		for r := range e.cfg.StampedeReaders {
			t := readers[r%len(readers)]
			id := e.newClientID()
			wg.Go(func() {
				<-gate
				e.call(ctx, t, id, request{Kind: history.Get, Key: k}, false)
			})
		}
		close(gate)
		wg.Wait()
	}
	return cold, e.env.loads.stop()
}

// history joins the in-process history with the workers'. They share one
// clock, so no slack is needed.
func (e *engine) history() (*history.History, error) {
	h := e.rec.History()
	if len(e.workers) == 0 {
		return h, nil
	}
	hs := []*history.History{h}
	for _, w := range e.workers {
		hs = append(hs, w.rec.History())
	}
	return history.Merge(hs, 0)
}

func (e *engine) meta() map[string]string {
	c := &e.cfg
	m := map[string]string{
		"clients":   strconv.Itoa(c.Clients),
		"instances": strconv.Itoa(c.Instances),
		"processes": strconv.Itoa(c.Processes),
		"keys":      strconv.Itoa(c.Keys),
		"skew":      c.Skew,
		"mix":       fmt.Sprintf("get %d, set %d, delete %d", c.Mix.Get, c.Mix.Set, c.Mix.Delete),
		"duration":  c.Duration.String(),
		"faults":    fmt.Sprint(c.Faults),
		"namespace": e.env.namespace,
		"evict":     "every " + c.EvictEvery.String(),
		"delay":     "up to " + c.MaxDelay.String(),
	}
	if c.NoEvict {
		m["evict"] = "off"
	}
	if c.NoDelay {
		m["delay"] = "off"
	}
	return m
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// RunAll runs each store in turn on the same Redis and DB, each in a
// namespace of its own. A store that cannot be run gets no Result; its
// error is joined into the returned one, and the others still run.
func RunAll(ctx context.Context, cfg Config, factories []strategies.Factory) ([]*Result, error) {
	base := cfg
	var tmp *env
	noRedis := cfg.Redis == nil && cfg.RedisURL == "" && cfg.RedisCluster == nil
	if noRedis || cfg.DB == "" {
		// Start the shared infrastructure once for all the stores.
		c := cfg
		c.Store = strategies.Factory{Name: "all", New: func(context.Context, strategies.Config) (strategies.Store, error) { return nil, nil }}
		var err error
		if tmp, err = newEnv(ctx, &c); err != nil {
			return nil, err
		}
		defer tmp.close()
		if noRedis {
			base.Redis, base.RedisCluster, base.ClusterProxies = tmp.redis.Server, tmp.redis.Cluster, tmp.cproxies
		}
		if base.DB == "" {
			base.DB = tmp.db.Arg
		}
	}
	var results []*Result
	var errs []error
	for _, f := range factories {
		c := base
		c.Store = f
		if cfg.Namespace != "" {
			c.Namespace = cfg.Namespace + "-" + f.Name
		}
		r, err := Run(ctx, c)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.Name, err))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		results = append(results, r)
	}
	return results, errors.Join(errs...)
}
