package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/memstore/memstore"
	"github.com/memstore/memstore/memtest"
	"github.com/memstore/memstore/report"
	"github.com/memstore/memstore/strategies"
)

const demoHelp = `Usage: memstore demo [flags]

The problem memstore solves, in about ten seconds. Two requests race on one
key, first against the naive store (write the DB, then delete the cache
entry: the usual cache-aside), then against memstore:

  request A  GET: misses the cache and reads the row, "light"
  request B  SET "dark": returns OK
  request A  carries on: the naive store puts "light" back in the cache
  request C  GET, after B returned: the naive store answers "light", stale
             until the cache entry's TTL ends; memstore answers "dark"

Both are the real code, strategies.WriteDBDeleteCache and memstore's Store,
on a private redis-server and a SQLite file in a temporary directory. The
race is not left to luck: a hook pauses request A just after its DB read
until B has returned, so every run shows the same thing. Exit status 0 when
the naive store served the stale value and memstore did not.

Flags:
`

// The demo's key and values: a user's theme, switched from light to dark.
const (
	demoKey = "user:42:theme"
	demoOld = "light"
	demoNew = "dark"
)

// runDemo runs the race against both stores and says what happened.
func runDemo(ctx context.Context, m *Main, args []string) (err error) {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	keep := fs.Bool("keep", false, "keep the temporary directory (the SQLite file) instead of removing it")
	pace := fs.Duration("pace", -1, "pause between the steps, so that a person can follow (default 300ms on a terminal, 0 elsewhere)")
	if _, err := m.parseArgs(fs, args, demoHelp, 0); err != nil {
		return err
	}
	if *pace < 0 {
		*pace = 0
		if isTerminal(m.Stdout) {
			*pace = 300 * time.Millisecond
		}
	}
	d := &demo{w: m.Stdout, pace: *pace}

	start := time.Now()
	dir, err := os.MkdirTemp("", "memstore-demo-")
	if err != nil {
		return err
	}
	defer func() {
		if *keep {
			fmt.Fprintf(m.Stdout, "kept %s\n", dir)
			return
		}
		if rerr := os.RemoveAll(dir); rerr != nil && err == nil {
			err = rerr
		}
	}()
	redisDir := filepath.Join(dir, "redis")
	if err := os.Mkdir(redisDir, 0o755); err != nil {
		return err
	}
	srv, err := memtest.StartRedis(ctx, redisDir, nil)
	if err != nil {
		return setupf("demo: %v", err)
	}
	defer func() {
		if cerr := srv.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	db, err := memtest.OpenSQLite(filepath.Join(dir, "demo.db"))
	if err != nil {
		return err
	}
	defer db.Close()
	d.say("memstore demo: two requests race on key %q, first against the naive store, then against memstore.", demoKey)
	d.say("Started a private redis-server %s on %s and a SQLite file in %s.", redisVersion(ctx, srv), srv.Addr(), since(start))

	env := strategies.Config{Redis: srv.Client(), DB: db, TTL: 10 * time.Minute}
	naive, err := d.race(ctx, 1, strategies.WriteDBDeleteCache(), "write the DB, then delete the cache entry (the usual cache-aside)", env)
	if err != nil {
		return err
	}
	ours, err := d.race(ctx, 2, strategies.Memstore(), "a read fills the cache only under a lease, which a write's intent drops", env)
	if err != nil {
		return err
	}

	d.say("")
	d.say("Same requests, same interleaving, forced at the same step:")
	d.say("  %-22s request C read %q: %s", "write-db-delete-cache", naive.c, verdictWords(naive))
	d.say("  %-22s request C read %q: %s", "memstore", ours.c, verdictWords(ours))
	d.say("memstore check finds this race, and the others, under load and faults: run 'memstore check'.")
	d.say("Took %s.", since(start))
	switch {
	case !naive.stale:
		return errors.New("demo: the naive store did not serve the stale value; the race was not reproduced")
	case ours.stale:
		return fmt.Errorf("demo: memstore served the stale value %q after the write of %q had returned: a bug", ours.c, demoNew)
	}
	return nil
}

func verdictWords(o raceOutcome) string {
	if o.stale {
		return "STALE, until the cache entry's TTL (10m) ends"
	}
	return "correct"
}

// demo writes the demo's lines, pace apart.
type demo struct {
	w    io.Writer
	pace time.Duration
}

func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.w, format+"\n", args...)
}

// step says one step of the race, then waits pace.
func (d *demo) step(ctx context.Context, who, format string, args ...any) {
	fmt.Fprintf(d.w, "   %-10s %s\n", who, fmt.Sprintf(format, args...))
	if d.pace > 0 {
		t := time.NewTimer(d.pace)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
}

// raceOutcome is what one store did in the race.
type raceOutcome struct {
	c     string // what request C read
	stale bool   // ... the old value, after B's write had returned
}

// request names the request a call belongs to, in its context, so that
// the hook tells A's steps from the others'.
type request struct{}

func withRequest(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, request{}, name)
}

// tracer records each request's steps, and pauses request A just after its
// DB read until it is told to go on: the interleaving the race needs.
type tracer struct {
	mu     sync.Mutex
	steps  map[string][]memstore.Step
	paused chan struct{} // closed when A has read the row
	resume chan struct{} // closed to let A go on
	once   sync.Once
}

func newTracer() *tracer {
	return &tracer{steps: make(map[string][]memstore.Step), paused: make(chan struct{}), resume: make(chan struct{})}
}

func (t *tracer) hook(ctx context.Context, ev memstore.HookEvent) error {
	name, _ := ctx.Value(request{}).(string)
	if name == "" {
		return nil // the store's own background work
	}
	if ev.Phase == memstore.Before {
		t.mu.Lock()
		t.steps[name] = append(t.steps[name], ev.Step)
		t.mu.Unlock()
		return nil
	}
	if name == "A" && ev.Step == memstore.StepDBLoad && ev.Err == nil {
		first := false
		t.once.Do(func() { first = true })
		if first {
			close(t.paused)
			select {
			case <-t.resume:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}

// taken returns the steps of name recorded since the last call, in words.
func (t *tracer) taken(name string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var words []string
	for i, s := range t.steps[name] {
		// memstore's read looks at the cache twice on a miss (a plain
		// GET, then the script that takes the lease): one step to a
		// reader of the demo.
		if i > 0 && s == t.steps[name][i-1] {
			continue
		}
		words = append(words, stepWords[s])
	}
	t.steps[name] = nil
	return strings.Join(words, " → ")
}

// settle waits for a store's background work, if it does any (memstore
// clears a write's intent after the write returned).
func settle(ctx context.Context, st strategies.Store) error {
	if sy, ok := st.(interface{ Sync(context.Context) error }); ok {
		if err := sy.Sync(ctx); err != nil {
			return fmt.Errorf("sync: %w", err)
		}
	}
	return nil
}

// stepWords names the steps of the stores' protocols.
var stepWords = map[memstore.Step]string{
	memstore.StepRedisGet:   "read the cache",
	memstore.StepRedisFill:  "fill under its lease",
	memstore.StepRedisBegin: "record an intent",
	memstore.StepRedisEnd:   "clear the intent",
	memstore.StepRedisDel:   "delete the cache entry",
	strategies.StepRedisSet: "cache the value",
	memstore.StepDBLoad:     "read the row",
	memstore.StepDBWrite:    "write the row",
}

// race runs requests A, B and C against two instances of f (two
// application servers on one Redis and one database) and says what
// happened.
func (d *demo) race(ctx context.Context, n int, f strategies.Factory, how string, env strategies.Config) (raceOutcome, error) {
	var out raceOutcome
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	d.say("")
	d.say("%d. %s: %s", n, f.Name, how)

	tr := newTracer()
	env.Namespace = "demo-" + f.Name
	env.Hook = tr.hook
	env.Migrate = true
	server1, err := f.New(ctx, env)
	if err != nil {
		return out, fmt.Errorf("demo: %s: %w", f.Name, err)
	}
	defer server1.Close()
	env.Migrate = false
	server2, err := f.New(ctx, env)
	if err != nil {
		return out, fmt.Errorf("demo: %s: %w", f.Name, err)
	}
	defer server2.Close()

	setup := withRequest(ctx, "setup")
	if err := server2.Set(setup, demoKey, demoOld); err != nil {
		return out, fmt.Errorf("demo: %s: set %q: %w", f.Name, demoOld, err)
	}
	if err := settle(setup, server2); err != nil {
		return out, fmt.Errorf("demo: %s: %w", f.Name, err)
	}
	if err := server2.Evict(setup, demoKey); err != nil {
		return out, fmt.Errorf("demo: %s: evict: %w", f.Name, err)
	}
	tr.taken("setup")
	d.step(ctx, "setup", "%s = %q in the database; the cache is empty", demoKey, demoOld)

	type result struct {
		v   string
		err error
	}
	resA := make(chan result, 1)
	go func() {
		v, err := server1.Get(withRequest(ctx, "A"), demoKey)
		resA <- result{v, err}
	}()
	select {
	case <-tr.paused:
	case r := <-resA:
		return out, fmt.Errorf("demo: %s: request A returned (%q, %v) without reading the row", f.Name, r.v, r.err)
	case <-ctx.Done():
		return out, fmt.Errorf("demo: %s: request A never read the row: %w", f.Name, ctx.Err())
	}
	d.step(ctx, "request A", "GET on server 1: %s: %q ... paused here by a hook", tr.taken("A"), demoOld)

	if err := server2.Set(withRequest(ctx, "B"), demoKey, demoNew); err != nil {
		close(tr.resume)
		return out, fmt.Errorf("demo: %s: request B: set %q: %w", f.Name, demoNew, err)
	}
	d.step(ctx, "request B", "SET %q on server 2: %s → returns OK", demoNew, tr.taken("B"))
	if err := settle(ctx, server2); err != nil {
		close(tr.resume)
		return out, fmt.Errorf("demo: %s: %w", f.Name, err)
	}
	if later := tr.taken("B"); later != "" {
		d.step(ctx, "", "then, in the background: %s", later)
	}

	close(tr.resume)
	var a result
	select {
	case a = <-resA:
	case <-ctx.Done():
		return out, fmt.Errorf("demo: %s: request A did not return: %w", f.Name, ctx.Err())
	}
	if a.err != nil {
		return out, fmt.Errorf("demo: %s: request A: %w", f.Name, a.err)
	}
	snap, err := server2.Inspect(ctx, demoKey)
	if err != nil {
		return out, fmt.Errorf("demo: %s: inspect: %w", f.Name, err)
	}
	steps := tr.taken("A")
	if steps == "" {
		steps = "nothing more"
	}
	d.step(ctx, "request A", "resumes: %s → returns %q (fine for A: B had not returned when A began)", steps, a.v)
	switch {
	case snap.Cached && snap.CacheFound && snap.CacheValue == demoOld:
		d.step(ctx, "", "the cache now holds %q, after B's write of %q", demoOld, demoNew)
	case strings.Contains(steps, stepWords[memstore.StepRedisFill]):
		held := "nothing"
		if snap.Cached && snap.CacheFound {
			held = fmt.Sprintf("%q", snap.CacheValue)
		}
		d.step(ctx, "", "A's fill of %q did not land (B's write dropped A's lease); the cache holds %s", demoOld, held)
	}

	c, err := server2.Get(withRequest(ctx, "C"), demoKey)
	if err != nil && !errors.Is(err, memstore.ErrNotFound) {
		return out, fmt.Errorf("demo: %s: request C: %w", f.Name, err)
	}
	out.c = c
	d.step(ctx, "request C", "GET on server 2, begun after B returned: %s → %q", tr.taken("C"), c)
	if c == demoOld {
		out.stale = true
		d.say("   ✗ STALE: C read %q, but B's write of %q had returned before C began.", c, demoNew)
		d.say("     The cache holds %q and the database %q: every read gets %q until the entry's TTL (10m) ends.", demoOld, demoNew, demoOld)
		return out, nil
	}
	snap, err = server2.Inspect(ctx, demoKey)
	if err != nil {
		return out, fmt.Errorf("demo: %s: inspect: %w", f.Name, err)
	}
	held := "nothing"
	if snap.Cached && snap.CacheFound {
		held = fmt.Sprintf("%q", snap.CacheValue)
	}
	d.say("   ✓ correct: C read %q; the cache holds %s, the database %q.", c, held, snap.DBValue)
	return out, nil
}

// redisVersion asks the server for its version; "" if it will not say.
func redisVersion(ctx context.Context, srv *memtest.RedisServer) string {
	info, err := srv.Client().Info(ctx, "server").Result()
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
			return v
		}
	}
	return ""
}

// since formats the time since start to a readable precision.
func since(start time.Time) string {
	return report.Duration(time.Since(start))
}
