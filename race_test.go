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
	mu sync.Mutex
	at map[gateKey]*gate
}

type gateKey struct {
	who   string
	step  memstore.Step
	phase memstore.Phase
}

type gate struct {
	reached, release chan struct{}
	fired            bool
}

type whoKey struct{}

func as(who string) context.Context { return context.WithValue(context.Background(), whoKey{}, who) }

func newGates() *gates { return &gates{at: map[gateKey]*gate{}} }

// pause arms a gate: the first time who reaches step/phase it blocks until
// release is closed.
func (g *gates) pause(who string, step memstore.Step, phase memstore.Phase) *gate {
	g.mu.Lock()
	defer g.mu.Unlock()
	gt := &gate{reached: make(chan struct{}), release: make(chan struct{})}
	g.at[gateKey{who, step, phase}] = gt
	return gt
}

func (g *gates) hook(ctx context.Context, ev memstore.HookEvent) error {
	who, _ := ctx.Value(whoKey{}).(string)
	g.mu.Lock()
	gt := g.at[gateKey{who, ev.Step, ev.Phase}]
	if gt == nil || gt.fired {
		g.mu.Unlock()
		return nil
	}
	gt.fired = true
	g.mu.Unlock()
	close(gt.reached)
	// The watchdog is no synchronisation: a passing test opens every gate
	// within milliseconds. A test that failed before opening one would
	// otherwise hang in its cleanup (Close waits for the paused call).
	watchdog := time.NewTimer(gateWatchdog)
	defer watchdog.Stop()
	select {
	case <-gt.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-watchdog.C:
		return errGateNeverOpened
	}
}

const gateWatchdog = 15 * time.Second

var errGateNeverOpened = errors.New("test gate never opened (the test failed before opening it)")

func (gt *gate) wait(t testing.TB) {
	t.Helper()
	select {
	case <-gt.reached:
	case <-time.After(10 * time.Second):
		t.Fatal("gate never reached")
	}
}

func (gt *gate) open() { close(gt.release) }

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
				g := newGates()
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
		g := newGates()
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
		g := newGates()
		s := store(e, &memstore.Options[string]{Hook: g.hook, DisableReconciler: true})
		end1 := g.pause("w1", memstore.StepRedisEnd, memstore.Before)
		w1 := async(func() error { return s.Set(as("w1"), "k", "first") })
		end1.wait(t) // w1 committed; the ends wait behind w1's
		if err := s.Set(context.Background(), "k", "second"); err != nil {
			t.Fatal(err)
		}
		mustGet(t, s, "k", "second") // w1's intent blocks the fill; read from DB
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
		g := newGates()
		s := store(e, &memstore.Options[string]{Hook: g.hook, DisableReconciler: true})
		mustSet(t, s, "k", "v")
		get := g.pause("a", memstore.StepDBLoad, memstore.Before) // a holds the lease and leads a flight
		a := async(func() error { _, err := s.Get(as("a"), "k"); return err })
		get.wait(t)
		b := async(func() error { v, err := s.Get(as("b"), "k"); _ = v; return err })
		time.Sleep(20 * time.Millisecond) // let b join a's flight; it must wait, not load
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
	})
}

// A Get that starts after a Set returned, while an older load of the same key
// is still in flight in the same process, must not be handed the old row.
func TestRaceJoinAfterWrite(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		g := newGates()
		s := store(e, &memstore.Options[string]{Hook: g.hook, DisableReconciler: true})
		mustSet(t, s, "k", "old")
		loaded := g.pause("old-reader", memstore.StepDBLoad, memstore.After)
		old := async(func() error { _, err := s.Get(as("old-reader"), "k"); return err })
		loaded.wait(t)
		mustSet(t, s, "k", "new")
		var late atomic.Value
		lateDone := async(func() error {
			v, err := s.Get(as("late"), "k")
			late.Store(v)
			return err
		})
		time.Sleep(20 * time.Millisecond) // the late reader joins the old flight
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
	})
}

// 200 concurrent callers across two store instances cause one DB load.
func TestStampedeOneLoad(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		var loads atomic.Int64
		slow := func(ctx context.Context, ev memstore.HookEvent) error {
			if ev.Step == memstore.StepDBLoad && ev.Phase == memstore.Before {
				loads.Add(1)
				time.Sleep(20 * time.Millisecond) // a slow query widens the window
			}
			return nil
		}
		// Loads are coordinated by the lease as long as Redis answers
		// within the budget; past it a reader goes to the DB on purpose.
		// This test is about the lease, so Redis gets all the time it
		// needs on a loaded machine.
		const budget = 5 * time.Second
		a := store(e, &memstore.Options[string]{Hook: slow, DisableReconciler: true, RedisBudget: budget})
		b := storeOn(e, e.client(), &memstore.Options[string]{Namespace: a.Namespace(), Hook: slow, DisableReconciler: true, RedisBudget: budget})
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
	})
}
