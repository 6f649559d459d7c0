package schedule

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/memstore/memstore"
	"github.com/memstore/memstore/strategies"
)

// Defaults of Config.
const (
	DefaultMax       = 1000
	DefaultQuiet     = 50 * time.Millisecond
	DefaultNamespace = "schedule-"
)

// perSchedule bounds one schedule in wall-clock time.
const perSchedule = time.Minute

// Config says what to explore.
type Config struct {
	// Factory makes the store instances. Its hook points are the
	// scheduling points, so a store without hooks cannot be explored.
	Factory strategies.Factory
	Redis   redis.UniversalClient
	DB      *sql.DB
	// Scenario is the workload. Default ReaderWriter().
	Scenario Scenario
	// Shared runs every actor on one store instance, so in-process sharing
	// (memstore's flights) is exercised. Default: one instance per actor,
	// as separate processes would have.
	Shared bool
	// Max is the most schedules to run. When the scenario has at most Max
	// interleavings (as estimated from its first, serial schedule) they are
	// all enumerated; otherwise Max are sampled at random. Retry loops (a
	// reader polling a lease) can make the real number larger than the
	// estimate: an enumeration that runs past it samples the rest of Max.
	// Default DefaultMax.
	Max int
	// Seed drives the sampling. The same seed samples the same schedules.
	Seed int64
	// MaxFailures stops the exploration after that many failing schedules.
	// Default: no limit.
	MaxFailures int
	// Namespace prefixes the store namespace of each schedule: schedule i
	// runs in Namespace+"s"+i, on fresh state. Default DefaultNamespace.
	Namespace string
	// Migrate creates the store's schema before the first schedule.
	Migrate bool
	// Quiet is how long a released actor may run without reaching its next
	// hook point before the scheduler decides it is blocked outside the
	// hooks (waiting on another actor in-process) and lets another one go.
	// Default DefaultQuiet. Longer is more deterministic and slower.
	Quiet time.Duration
	// AllPoints makes every hook point a decision, and the start of every
	// call. By default that holds only with Shared: with one instance per
	// actor, the code an actor runs between the end of one step and the
	// start of the next touches nothing the other actors see, so only the
	// order in which steps start is decided (and a call counts as started
	// at its first step, returned at the end of its last); the schedules
	// that differ only in the rest behave alike.
	AllPoints bool
	// Replay runs exactly one schedule: the decisions of a Failure
	// (Failure.Choices) under the same Config.
	Replay []int
}

// Result is what an exploration found.
type Result struct {
	Store    string
	Scenario string
	Shared   bool
	// Schedules is how many schedules ran; Sampled how many of them were
	// drawn at random (the others were enumerated); Distinct how many
	// differed (sampling may repeat one). Exhaustive says that every
	// interleaving of the scenario ran.
	Schedules  int
	Sampled    int
	Distinct   int
	Exhaustive bool
	// Estimate is the number of interleavings of the decision points of
	// the first, serial schedule (each actor's steps; with Shared or
	// AllPoints, all its points), respecting Actor.After: the size of the
	// space enumerated or sampled, as far as the first schedule shows it.
	Estimate float64
	// Failures are the failing schedules, in the order they ran. The first
	// is re-run with the state of cache and DB after every step, when that
	// replay fails the same way (Failure.Annotated).
	Failures []Failure
	// QuietTimeouts counts actors that did not reach their next hook point
	// within Config.Quiet: blocked outside the hooks, or slow. Each one lets
	// wall-clock timing into a schedule; keep it rare.
	QuietTimeouts int
	// Diverged counts schedules that could not follow their prefix of
	// decisions (a consequence of quiet timeouts): the enumeration may then
	// have repeated or skipped a schedule.
	Diverged int
	Elapsed  time.Duration
}

func (r *Result) String() string {
	inst := "separate instances"
	if r.Shared {
		inst = "shared instance"
	}
	how := fmt.Sprintf("%d enumerated, %d sampled", r.Schedules-r.Sampled, r.Sampled)
	if r.Exhaustive {
		how = "all"
	}
	return fmt.Sprintf("%s, %s, %s: %d schedules (%s; %d distinct; model ~%.0f), %d failing, %d quiet timeouts, %v",
		r.Store, r.Scenario, inst, r.Schedules, how, r.Distinct, r.Estimate, len(r.Failures), r.QuietTimeouts, r.Elapsed.Round(time.Millisecond))
}

// Failure is one schedule that broke the store.
type Failure struct {
	// Schedule is what happened, step by step, ending with the judge's
	// reads.
	Schedule []Step
	// Choices are the scheduler's decisions: pass them as Config.Replay to
	// run this schedule again.
	Choices []int
	// Violation says what broke, naming the calls.
	Violation string
	// Annotated says that Schedule carries the state of cache and DB
	// (Step.State): String shows it as "→ cache ... db ..." on the line
	// whose release let the change happen (a "before" line: the step ran).
	Annotated bool
	// Initial is the state before the first step (annotated only).
	Initial string
}

func (f Failure) String() string {
	w := len(observer)
	for _, s := range f.Schedule {
		w = max(w, len(s.Actor))
	}
	var b strings.Builder
	if f.Initial != "" {
		fmt.Fprintf(&b, "%-*s  = %s\n", w+30, "(initially)", f.Initial)
	}
	for _, s := range f.Schedule {
		line := s.format(w)
		if s.State != "" {
			line = fmt.Sprintf("%-*s  → %s", w+30, line, s.State)
		}
		b.WriteString(line + "\n")
	}
	b.WriteString("violation: " + f.Violation + "\n")
	b.WriteString("replay: " + fmt.Sprint(f.Choices) + "\n")
	return b.String()
}

// StepKind says what a Step is.
type StepKind uint8

const (
	StepCall    StepKind = iota // an actor starts a call
	StepHook                    // an actor passes a hook point
	StepReturn                  // a call returns
	StepBlocked                 // an actor did not reach a hook point within Config.Quiet
	StepEvict                   // the judge evicts the key between its two reads
)

// Step is one line of a schedule.
type Step struct {
	Actor string
	Kind  StepKind
	Call  Call               // StepCall, StepReturn
	Hook  memstore.HookEvent // StepHook
	// Result is what a call returned: a quoted value, "not found", "ok" or
	// "error: ...".
	Result string
	// State is the cache and the DB after this step, when it changed
	// (annotated schedules only).
	State string
}

func (s Step) String() string { return s.format(8) }

func (s Step) format(w int) string {
	switch s.Kind {
	case StepCall:
		return fmt.Sprintf("%-*s  call   %s", w, s.Actor, s.Call)
	case StepHook:
		line := fmt.Sprintf("%-*s  %-6s %s", w, s.Actor, s.Hook.Phase, s.Hook.Step)
		if s.Hook.Phase == memstore.After && s.Hook.Err != nil {
			line += " (" + showErr(s.Hook.Err) + ")"
		}
		return line
	case StepReturn:
		return fmt.Sprintf("%-*s  return %s", w, s.Actor, s.Result)
	case StepBlocked:
		return fmt.Sprintf("%-*s  ...    blocked outside the hooks", w, s.Actor)
	case StepEvict:
		return fmt.Sprintf("%-*s  evict", w, s.Actor)
	}
	return s.Actor + " ?"
}

func showErr(err error) string {
	switch {
	case errors.Is(err, redis.Nil):
		return "miss"
	case errors.Is(err, sql.ErrNoRows):
		return "no row"
	}
	return "error: " + err.Error()
}

func showValue(found bool, v string) string {
	if !found {
		return "not found"
	}
	return strconv.Quote(v)
}

// Explore runs the scenario's actors against fresh instances of the store
// under every interleaving of their hook points (or a random sample of
// them), judges each schedule, and returns the failing ones. An error means
// the exploration itself could not run (a store could not be made, a
// schedule got stuck), never that the store failed.
func Explore(ctx context.Context, cfg Config) (*Result, error) {
	start := time.Now()
	e, err := newExplorer(cfg)
	if err != nil {
		return nil, err
	}
	c := &e.cfg
	if c.Migrate {
		s, err := c.Factory.New(ctx, strategies.Config{Redis: c.Redis, DB: c.DB, Namespace: c.Namespace + "migrate", Migrate: true})
		if err != nil {
			return nil, fmt.Errorf("schedule: migrate %s: %w", c.Factory.Name, err)
		}
		s.Close()
	}
	res := &Result{Store: c.Factory.Name, Scenario: c.Scenario.Name, Shared: c.Shared}
	defer func() { res.Elapsed = time.Since(start) }()
	seen := make(map[string]bool)
	var out *outcome
	add := func(o *outcome) {
		out = o
		res.Schedules++
		res.QuietTimeouts += o.quietHits
		if o.diverged {
			res.Diverged++
		}
		if k := fmt.Sprint(o.choices); !seen[k] {
			seen[k] = true
			res.Distinct++
		}
		if o.violation != "" {
			res.Failures = append(res.Failures, Failure{Schedule: o.trace, Choices: o.choices, Violation: o.violation})
		}
	}
	more := func() bool {
		return ctx.Err() == nil && res.Schedules < c.Max && (c.MaxFailures == 0 || len(res.Failures) < c.MaxFailures)
	}

	// The first schedule runs the actors one after the other (lowest
	// index first at every decision). Its points per actor estimate the
	// number of interleavings, and bound the decisions of every later
	// schedule (twice its length), so that a retry loop cannot grow the
	// tree without end.
	first, err := e.runOne(ctx, &prefixChooser{}, math.MaxInt, false)
	if err != nil {
		return res, err
	}
	budget := 2 * first.released
	sp := newSpace(first.points, e.deps())
	res.Estimate = sp.count()

	switch {
	case c.Replay != nil:
		o, err := e.runOne(ctx, &prefixChooser{prefix: c.Replay}, budget, false)
		if err != nil {
			return res, err
		}
		add(o)
	default:
		add(first)
		// Depth-first over the tree of decisions, by re-execution: each
		// schedule follows a prefix of decisions, then takes the lowest
		// enabled actor; the next prefix changes the deepest decision that
		// has an untried alternative. The estimate is usually high (a
		// reader that meets a write intent skips its fill), but a retry
		// loop (a reader polling another's lease) makes the tree bigger,
		// and depth-first order would spend the rest of Max on variations
		// of the last polls: past the estimate, the rest is sampled.
		if res.Estimate <= float64(c.Max) {
			for more() && float64(res.Schedules) < res.Estimate+8 {
				prefix, ok := nextPrefix(out.decisions, out.choices)
				if !ok {
					res.Exhaustive = true
					break
				}
				o, err := e.runOne(ctx, &prefixChooser{prefix: prefix}, budget, false)
				if err != nil {
					return res, err
				}
				add(o)
			}
		}
		// Uniform over the interleavings of the first schedule's points:
		// a sequence of actor ids drawn from the space, each decision
		// taking the first id in it whose actor is enabled (the real
		// points differ from the model's now and then).
		rng := rand.New(rand.NewPCG(uint64(c.Seed), 0x5c4ed))
		for !res.Exhaustive && more() {
			o, err := e.runOne(ctx, &seqChooser{seq: sp.sample(rng)}, budget, false)
			if err != nil {
				return res, err
			}
			add(o)
			res.Sampled++
		}
	}

	if len(res.Failures) > 0 {
		f := &res.Failures[0]
		o, err := e.runOne(ctx, &prefixChooser{prefix: f.Choices}, budget, true)
		if err == nil && o.violation != "" && !o.diverged {
			f.Schedule, f.Violation, f.Annotated, f.Initial = o.trace, o.violation, true, o.initial
		}
	}
	return res, ctx.Err()
}

// nextPrefix returns the decisions of the next schedule in depth-first
// order: the deepest decision that has a higher enabled alternative, taken.
func nextPrefix(decisions [][]int, choices []int) ([]int, bool) {
	for k := len(choices) - 1; k >= 0; k-- {
		for _, e := range decisions[k] {
			if e > choices[k] {
				return append(slices.Clone(choices[:k]), e), true
			}
		}
	}
	return nil, false
}

// prefixChooser follows a prefix of decisions, then takes the lowest
// enabled actor.
type prefixChooser struct {
	prefix   []int
	n        int
	diverged bool
}

func (p *prefixChooser) choose(enabled []int) int {
	if p.n < len(p.prefix) {
		want := p.prefix[p.n]
		p.n++
		if slices.Contains(enabled, want) {
			return want
		}
		p.diverged = true
	}
	return enabled[0]
}

// seqChooser takes the first actor of seq that is enabled, and removes it.
type seqChooser struct{ seq []int }

func (s *seqChooser) choose(enabled []int) int {
	for i, id := range s.seq {
		if slices.Contains(enabled, id) {
			s.seq = slices.Delete(s.seq, i, i+1)
			return id
		}
	}
	return enabled[0]
}

type explorer struct {
	cfg  Config
	runs int // schedules run, for fresh namespaces
}

func newExplorer(cfg Config) (*explorer, error) {
	switch {
	case cfg.Factory.New == nil:
		return nil, errors.New("schedule: Config.Factory is not set")
	case cfg.Redis == nil || cfg.DB == nil:
		return nil, errors.New("schedule: Config needs a Redis client and a *sql.DB")
	}
	if cfg.Scenario.Actors == nil {
		cfg.Scenario = ReaderWriter()
	}
	if err := cfg.Scenario.validate(); err != nil {
		return nil, err
	}
	if cfg.Max <= 0 {
		cfg.Max = DefaultMax
	}
	if cfg.Quiet <= 0 {
		cfg.Quiet = DefaultQuiet
	}
	if cfg.Namespace == "" {
		cfg.Namespace = DefaultNamespace
	}
	return &explorer{cfg: cfg}, nil
}

// deps returns, for each actor, the indexes of the actors it starts after.
func (e *explorer) deps() [][]int {
	idx := make(map[string]int)
	for i, a := range e.cfg.Scenario.Actors {
		idx[a.Name] = i
	}
	deps := make([][]int, len(e.cfg.Scenario.Actors))
	for i, a := range e.cfg.Scenario.Actors {
		for _, d := range a.After {
			deps[i] = append(deps[i], idx[d])
		}
	}
	return deps
}

// outcome is one schedule's record.
type outcome struct {
	trace     []Step
	choices   []int
	decisions [][]int
	points    []int // points released per actor
	released  int
	quietHits int
	diverged  bool
	violation string
	initial   string
}

// runOne runs a schedule on fresh state: a new namespace, the key set to the
// scenario's initial value and evicted, new store instances whose hook is
// the schedule's controller.
func (e *explorer) runOne(ctx context.Context, ch chooser, budget int, annotate bool) (o *outcome, err error) {
	c := &e.cfg
	i := e.runs
	e.runs++
	ctx, cancel := context.WithTimeout(ctx, perSchedule)
	defer cancel()
	sc := c.Scenario
	key := sc.key()
	base := strategies.Config{Redis: c.Redis, DB: c.DB, Namespace: c.Namespace + "s" + strconv.Itoa(i)}

	// The observer sets the scene and judges; it has no hook.
	obs, err := c.Factory.New(ctx, base)
	if err != nil {
		return nil, fmt.Errorf("schedule: new %s: %w", c.Factory.Name, err)
	}
	defer obs.Close()
	if sc.Initial != "" {
		err = obs.Set(ctx, key, sc.Initial)
	} else {
		err = obs.Delete(ctx, key)
	}
	if err == nil {
		err = obs.Evict(ctx, key)
	}
	if err != nil {
		return nil, fmt.Errorf("schedule: set up %s: %w", c.Factory.Name, err)
	}

	r := newRun(key, c.Quiet, budget, sc.Actors)
	r.reduce = !c.Shared && !c.AllPoints
	r.initialValue = sc.Initial
	hooked := base
	hooked.Hook = r.hook
	var instances []strategies.Store
	defer func() {
		for _, s := range instances {
			s.Close()
		}
	}()
	for _, a := range r.actors {
		if c.Shared && len(instances) > 0 {
			a.store = instances[0]
			continue
		}
		s, err := c.Factory.New(ctx, hooked)
		if err != nil {
			return nil, fmt.Errorf("schedule: new %s: %w", c.Factory.Name, err)
		}
		instances = append(instances, s)
		a.store = s
	}
	o = &outcome{}
	if annotate {
		r.snapshot = func(ctx context.Context) string { return describe(ctx, obs, key) }
		o.initial = r.snapshot(ctx)
		r.initial = o.initial
	}
	if err := r.drive(ctx, ch); err != nil {
		return nil, fmt.Errorf("schedule %d of %s: %w", i, c.Factory.Name, err)
	}
	// Judge before the instances close: closing one may repair the cache
	// (double-delete's pending delete runs at Close).
	violation, err := judge(ctx, r, obs)
	if err != nil {
		return nil, fmt.Errorf("schedule %d of %s: judge: %w", i, c.Factory.Name, err)
	}
	o.trace, o.choices, o.decisions = r.trace, r.choices, r.decisions
	o.released, o.quietHits, o.violation = r.released, r.quietHits, violation
	for _, a := range r.actors {
		o.points = append(o.points, a.points)
	}
	if p, ok := ch.(*prefixChooser); ok {
		o.diverged = p.diverged
	}
	return o, nil
}

// describe shows what cache and DB hold for key.
func describe(ctx context.Context, s strategies.Store, key string) string {
	snap, err := s.Inspect(ctx, key)
	if err != nil {
		return "inspect: " + err.Error()
	}
	cache := "-"
	if snap.Cached {
		cache = showValue(snap.CacheFound, snap.CacheValue)
	}
	return fmt.Sprintf("cache %-10s db %s", cache, showDB(snap))
}

func showDB(snap strategies.Snapshot) string {
	if !snap.DBFound {
		return "-"
	}
	return strconv.Quote(snap.DBValue)
}
