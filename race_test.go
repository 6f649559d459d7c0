package memstore_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/memstore/memstore"
)

// gates pauses chosen callers at chosen hook points, so a test forces one
// interleaving instead of hoping for it. A caller is named by a context value.
type gates struct {
	t     testing.TB
	mu    sync.Mutex
	at    map[gateKey]*gate
	steps map[string]int // hook events seen per caller
}

type gateKey struct {
	who   string
	step  memstore.Step
	phase memstore.Phase
}

type gate struct {
	reached, release chan struct{}
	fired            bool
	opened           sync.Once
}

type whoKey struct{}

func as(who string) context.Context { return context.WithValue(context.Background(), whoKey{}, who) }

func newGates(t testing.TB) *gates {
	return &gates{t: t, at: map[gateKey]*gate{}, steps: map[string]int{}}
}

// steps returns how many hook events who has fired so far.
func (g *gates) stepsOf(who string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.steps[who]
}

// pause arms a gate: the first time who reaches step/phase it blocks until
// release is closed. A test that fails early opens it as it ends, before
// its stores close (they wait for their background steps).
func (g *gates) pause(who string, step memstore.Step, phase memstore.Phase) *gate {
	g.mu.Lock()
	defer g.mu.Unlock()
	gt := &gate{reached: make(chan struct{}), release: make(chan struct{})}
	g.at[gateKey{who, step, phase}] = gt
	g.t.Cleanup(gt.open)
	return gt
}

func (g *gates) hook(ctx context.Context, ev memstore.HookEvent) error {
	who, _ := ctx.Value(whoKey{}).(string)
	g.mu.Lock()
	g.steps[who]++
	gt := g.at[gateKey{who, ev.Step, ev.Phase}]
	if gt == nil || gt.fired {
		g.mu.Unlock()
		return nil
	}
	gt.fired = true
	g.mu.Unlock()
	close(gt.reached)
	select {
	case <-gt.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (gt *gate) wait(t testing.TB) {
	t.Helper()
	select {
	case <-gt.reached:
	case <-time.After(10 * time.Second):
		t.Fatal("gate never reached")
	}
}

func (gt *gate) open() { gt.opened.Do(func() { close(gt.release) }) }

// waiter is a caller's context that says when the caller first waits on it.
// Every wait in the store selects on ctx.Done(), and a caller that joins
// another's flight waits so before it fires any hook: Done called with no
// step fired proves the caller joined the flight, and waits in it.
type waiter struct {
	context.Context
	once    sync.Once
	waiting chan struct{}
}

func waitingAs(who string) *waiter {
	return &waiter{Context: as(who), waiting: make(chan struct{})}
}

func (w *waiter) Done() <-chan struct{} {
	w.once.Do(func() { close(w.waiting) })
	return w.Context.Done()
}

// joined waits until who waits on its context, and fails the test unless
// it got there without a step of its own: it joined a flight in progress.
func (w *waiter) joined(t testing.TB, g *gates) {
	t.Helper()
	await(t, w.waiting)
	who := w.Value(whoKey{}).(string)
	if n := g.stepsOf(who); n != 0 {
		t.Fatalf("%s fired %d hook events before it waited: it did not join the flight in progress", who, n)
	}
}

// async runs f in a goroutine and returns a channel with its error.
func async(f func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	return ch
}

func await[T any](t testing.TB, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("call did not return")
		panic("unreachable")
	}
}

// A reader that read the DB before a write committed must not install its
// value, whether the writer runs in its process or another.
func TestRaceStaleFillRejected(t *testing.T) {
	for _, sameProcess := range []bool{true, false} {
		name := "other process"
		if sameProcess {
			name = "same process"
		}
		t.Run(name, func(t *testing.T) {
			eachDB(t, func(t *testing.T, e *env) {
				g := newGates(t)
				r := store(e, &memstore.Options[string]{Hook: g.hook, DisableReconciler: true})
				w := r
				if !sameProcess {
					w = storeOn(e, e.client(), &memstore.Options[string]{Namespace: r.Namespace(), DisableReconciler: true})
				}
				mustSet(t, w, "k", "old")
				read := g.pause("reader", memstore.StepDBLoad, memstore.After)
				got := async(func() error {
					v, err := r.Get(as("reader"), "k")
					if err == nil && v != "old" {
						err = errors.New("reader got " + v)
					}
					return err
				})
				read.wait(t)
				mustSet(t, w, "k", "new") // begins, commits and ends while the reader holds "old"
				read.open()
				if err := await(t, got); err != nil {
					t.Fatal(err) // the reader started before the write: "old" is a legal answer
				}
				if raw, ok := cached(t, e, r, "k"); ok {
					t.Fatalf("the stale fill landed: cache holds %q", raw)
				}
				if n := r.Stats().RejectedFills; n != 1 {
					t.Fatalf("rejected fills = %d, want 1", n)
				}
				mustGet(t, r, "k", "new")
			})
		})
	}
}

// A write that begins while a fill is on its way voids it, even when the
// fill arrives after the write committed but before it ended.
func TestRaceWriteDuringFill(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		g := newGates(t)
		s := store(e, &memstore.Options[string]{Hook: g.hook, DisableReconciler: true})
		mustSet(t, s, "k", "old")
		fill := g.pause("reader", memstore.StepRedisFill, memstore.Before)
		end := g.pause("writer", memstore.StepRedisEnd, memstore.Before)
		got := async(func() error { _, err := s.Get(as("reader"), "k"); return err })
		fill.wait(t)
		wrote := async(func() error { return s.Set(as("writer"), "k", "new") })
		end.wait(t) // committed, intent still recorded
		fill.open()
		if err := await(t, got); err != nil {
			t.Fatal(err)
		}
		if _, ok := cached(t, e, s, "k"); ok {
			t.Fatal("a fill landed while a write intent was recorded")
		}
		if n := s.Stats().RejectedFills; n != 1 {
			t.Fatalf("rejected fills = %d, want 1: the reader's fill was refused", n)
		}
		// Meanwhile a reader sees the intent, reads the committed row, and does not fill.
		mustGet(t, s, "k", "new")
		if _, ok := cached(t, e, s, "k"); ok {
			t.Fatal("a read during the write filled the cache")
		}
		end.open()
		if err := await(t, wrote); err != nil {
			t.Fatal(err)
		}
		mustGet(t, s, "k", "new")
	})
}

// Two writers whose ends arrive in the opposite order of their commits: the
// later commit wins, and no end installs the older value.
func TestRaceTwoWriters(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		g := newGates(t)
		s := store(e, &memstore.Options[string]{Hook: g.hook, DisableReconciler: true})
		end1 := g.pause("w1", memstore.StepRedisEnd, memstore.Before)
		w1 := async(func() error { return s.Set(as("w1"), "k", "first") })
		end1.wait(t) // w1 committed; the ends wait behind w1's
		if err := s.Set(context.Background(), "k", "second"); err != nil {
			t.Fatal(err)
		}
		mustGet(t, s, "k", "second") // w1's intent blocks the fill; read from DB
		if _, ok := cached(t, e, s, "k"); ok {
			t.Fatal("a read filled the cache while w1's intent was recorded")
		}
		if st := s.Stats(); st.DBLoads != 1 || st.Fills != 0 {
			t.Fatalf("DB loads %d, fills %d; want 1 and 0: the read saw w1's intent", st.DBLoads, st.Fills)
		}
		end1.open()
		if err := await(t, w1); err != nil {
			t.Fatal(err)
		}
		mustGet(t, s, "k", "second")
		mustGet(t, s, "k", "second")
	})
}

// Two fills from one process share one DB load.
func TestRaceTwoFillsSameProcess(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		g := newGates(t)
		s := store(e, &memstore.Options[string]{Hook: g.hook, DisableReconciler: true})
		mustSet(t, s, "k", "v")
		get := g.pause("a", memstore.StepDBLoad, memstore.Before) // a holds the lease and leads a flight
		a := async(func() error { _, err := s.Get(as("a"), "k"); return err })
		get.wait(t)
		bctx := waitingAs("b")
		b := async(func() error { _, err := s.Get(bctx, "k"); return err })
		bctx.joined(t, g) // b waits in a's flight: it must take a's load, not load
		get.open()
		if err := await(t, a); err != nil {
			t.Fatal(err)
		}
		if err := await(t, b); err != nil {
			t.Fatal(err)
		}
		st := s.Stats()
		if st.DBLoads != 1 || st.Coalesced != 1 {
			t.Fatalf("DB loads %d, coalesced %d; want 1 and 1", st.DBLoads, st.Coalesced)
		}
		if n := g.stepsOf("b"); n != 0 {
			t.Fatalf("b fired %d hook events; want none: it shares a's load", n)
		}
	})
}

// heldOldReader sets k to "old", holds a reader of it at step and phase,
// then sets k to "new": the start of the join-after-write races. It
// returns the store, its gates, the held reader's gate and its result.
func heldOldReader(e *env, step memstore.Step, phase memstore.Phase) (*memstore.Store[string], *gates, *gate, <-chan error) {
	t := e.t
	t.Helper()
	g := newGates(t)
	s := store(e, &memstore.Options[string]{Hook: g.hook, DisableReconciler: true})
	mustSet(t, s, "k", "old")
	held := g.pause("old-reader", step, phase)
	old := async(func() error { _, err := s.Get(as("old-reader"), "k"); return err })
	held.wait(t)
	mustSet(t, s, "k", "new")
	return s, g, held, old
}

// A Get that starts after a Set returned, while an older load of the same key
// is still in flight in the same process, must not be handed the old row.
func TestRaceJoinAfterWrite(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		s, g, loaded, old := heldOldReader(e, memstore.StepDBLoad, memstore.After)
		var late atomic.Value
		lctx := waitingAs("late")
		lateDone := async(func() error {
			v, err := s.Get(lctx, "k")
			late.Store(v)
			return err
		})
		lctx.joined(t, g) // the late reader waits in the old flight
		loaded.open()
		if err := await(t, old); err != nil {
			t.Fatal(err)
		}
		if err := await(t, lateDone); err != nil {
			t.Fatal(err)
		}
		if got := late.Load(); got != "new" {
			t.Fatalf("a Get that began after Set returned read %q, want new", got)
		}
		// It refused the flight's row and read its own.
		if st := s.Stats(); st.Coalesced != 0 || st.DBLoads != 2 {
			t.Fatalf("coalesced %d, DB loads %d; want 0 and 2: the late reader loads on its own", st.Coalesced, st.DBLoads)
		}
	})
}

// A flight closes to joiners before its fill is sent: a Get that starts
// after a Set returned must not take the row of a fill that landed before
// that write began.
func TestRaceJoinAfterFill(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		// "old" is installed; the leader has not returned.
		s, _, filled, old := heldOldReader(e, memstore.StepRedisFill, memstore.After)
		// Bounded: a late reader that joined the flight would wait for a
		// leader held until it returns.
		ctx, cancel := context.WithTimeout(as("late"), 10*time.Second)
		defer cancel()
		v, err := s.Get(ctx, "k")
		if err != nil || v != "new" {
			t.Fatalf("a Get that began after Set returned read %q, %v; want new", v, err)
		}
		if n := s.Stats().Coalesced; n != 0 {
			t.Fatalf("coalesced = %d, want 0: the late reader took the filled flight's row", n)
		}
		filled.open()
		if err := await(t, old); err != nil {
			t.Fatal(err)
		}
		if n := s.Stats().Fills; n < 1 {
			t.Fatalf("fills = %d: the old row's fill never landed, so the race was not run", n)
		}
	})
}

// 200 concurrent callers across two store instances cause one DB load.
func TestStampedeOneLoad(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		var loads atomic.Int64
		var a, b *memstore.Store[string]
		// The first load holds its lease until a caller of the other
		// instance waits for it: the race across processes is then
		// certain to happen, not left to the scheduler.
		held := func(other **memstore.Store[string]) memstore.Hook {
			return func(ctx context.Context, ev memstore.HookEvent) error {
				if ev.Step != memstore.StepDBLoad || ev.Phase != memstore.Before || loads.Add(1) != 1 {
					return nil
				}
				return until(ctx, func() bool { return (*other).Stats().LeaseWaits > 0 })
			}
		}
		// Loads are coordinated by the lease as long as Redis answers
		// within the budget; past it a reader goes to the DB on purpose.
		// This test is about the lease, so Redis gets all the time it
		// needs on a loaded machine, and the lease outlives the hold.
		const budget = 5 * time.Second
		opts := func(h memstore.Hook) *memstore.Options[string] {
			return &memstore.Options[string]{Hook: h, DisableReconciler: true, RedisBudget: budget, LeaseWait: 30 * time.Second}
		}
		a = store(e, opts(held(&b)))
		o := opts(held(&a))
		o.Namespace = a.Namespace()
		b = storeOn(e, e.client(), o)
		w := storeOn(e, e.client(), &memstore.Options[string]{Namespace: a.Namespace(), DisableReconciler: true})
		mustSet(t, w, "hot", "v")
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range 200 {
			s := a
			if i%2 == 1 {
				s = b
			}
			wg.Go(func() {
				<-start
				if v, err := s.Get(ctx, "hot"); err != nil || v != "v" {
					t.Errorf("Get = %q, %v", v, err)
				}
			})
		}
		close(start)
		wg.Wait()
		if n := loads.Load(); n != 1 {
			t.Fatalf("200 callers on a cold key made %d DB loads, want 1", n)
		}
		if n := a.Stats().LeaseWaits + b.Stats().LeaseWaits; n == 0 {
			t.Fatal("no caller waited for the other instance's lease: the race was not run")
		}
	})
}

// until waits for cond, checking it every millisecond, for ctx or for 10
// s at the most. It waits for a state, not for a time: a slow machine only
// waits longer.
func until(ctx context.Context, cond func() bool) error {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	limit := time.After(10 * time.Second)
	for !cond() {
		select {
		case <-tick.C:
		case <-limit:
			return errors.New("the awaited state never came")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
