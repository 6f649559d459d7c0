package fault_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/memstore/memstore/fault"
	"github.com/memstore/memstore/memtest"
)

// probe is a nemesis that tells the test when it is injected and healed.
type probe struct {
	name      string
	injectErr error
	injected  chan struct{} // receives at every Inject

	mu     sync.Mutex
	active bool
	heals  int
}

func newProbe(name string) *probe {
	return &probe{name: name, injected: make(chan struct{}, 100)}
}

func (p *probe) Name() string { return p.name }

func (p *probe) Inject(context.Context) error {
	p.mu.Lock()
	p.active = true
	p.mu.Unlock()
	p.injected <- struct{}{}
	return p.injectErr
}

func (p *probe) Heal(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err // Cycle must heal under a live context
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.active = false
	p.heals++
	return nil
}

func (p *probe) state() (active bool, heals int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.active, p.heals
}

// The context ends during a hold: Cycle heals before it returns, with a
// context that has not ended, and reports the window.
func TestCycleHealsWhenContextEnds(t *testing.T) {
	t.Parallel()
	p := newProbe("probe")
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-p.injected
		cancel()
	}()
	var events []fault.Event
	err := fault.Cycle(ctx, []fault.Nemesis{p}, rand.New(rand.NewPCG(1, 1)), time.Hour, time.Millisecond, func(e fault.Event) {
		events = append(events, e)
	})
	if err != nil {
		t.Fatalf("Cycle: %v", err)
	}
	if active, heals := p.state(); active || heals == 0 {
		t.Errorf("after Cycle: active %v, %d heals; want healed", active, heals)
	}
	if len(events) != 1 {
		t.Fatalf("events = %+v, want 1", events)
	}
	if e := events[0]; e.Name != "probe" || e.Err != nil || e.End.Before(e.Start) {
		t.Errorf("event = %+v, want probe's window without error", e)
	}
}

// A failed Inject is healed at once (it may be half applied) and reported.
func TestCycleInjectError(t *testing.T) {
	t.Parallel()
	p := newProbe("probe")
	p.injectErr = errors.New("boom")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var events []fault.Event
	err := fault.Cycle(ctx, []fault.Nemesis{p}, nil, time.Hour, time.Millisecond, func(e fault.Event) {
		events = append(events, e)
		cancel()
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || !errors.Is(events[0].Err, p.injectErr) {
		t.Fatalf("events = %+v, want one with the Inject error", events)
	}
	if _, heals := p.state(); heals == 0 {
		t.Error("a failed Inject was not healed")
	}
}

func TestCycleNoNemeses(t *testing.T) {
	t.Parallel()
	if err := fault.Cycle(t.Context(), nil, nil, time.Millisecond, time.Millisecond, nil); err == nil {
		t.Error("Cycle with no nemeses succeeded")
	}
}

// Real faults in quick turns; when the context ends, everything is whole.
func TestCycleRealFaults(t *testing.T) {
	t.Parallel()
	rs, p := redisProxy(t)
	direct := rs.Client()
	maxmemory, policy := config(t, direct, "maxmemory"), config(t, direct, "maxmemory-policy")
	conn, err := fault.SQLiteConnector(memtest.SQLiteDSN(filepath.Join(t.TempDir(), "x.db")))
	if err != nil {
		t.Fatal(err)
	}
	sf := newSQLFaults(t, conn)
	proxies := []*fault.Proxy{p}
	nemeses := []fault.Nemesis{
		fault.Latency(proxies, 5*time.Millisecond, time.Millisecond),
		fault.Reset(proxies),
		fault.Partition(proxies),
		fault.Blackhole(proxies),
		fault.RedisOOM(direct),
		fault.RedisPause(rs),
		fault.DBFail(sf),
		fault.DBFailCommits(sf),
		fault.DBLatency(sf, time.Hour),
	}

	// The Cycle runs until every nemesis has had a turn, and one more is
	// held when the context ends.
	ctx, cancel := context.WithCancel(t.Context())
	seen := make(map[string]bool)
	var events []fault.Event
	err = fault.Cycle(ctx, nemeses, rand.New(rand.NewPCG(3, 4)), 5*time.Millisecond, time.Millisecond, func(e fault.Event) {
		events = append(events, e)
		seen[e.Name] = true
		if len(seen) == len(nemeses) || len(events) > 2000 {
			cancel()
		}
	})
	cancel()
	if err != nil {
		t.Fatalf("Cycle: %v", err)
	}
	if len(seen) != len(nemeses) {
		t.Errorf("%d of %d nemeses injected in %d turns", len(seen), len(nemeses), len(events))
	}
	for _, e := range events {
		if e.Err != nil {
			t.Errorf("%s: %v", e.Name, e.Err)
		}
	}

	// Everything healed: the proxy forwards without toxics, Redis answers
	// and takes writes with its own settings, the database answers quickly.
	if names := fault.ToxicNames(p); len(names) != 0 || !fault.Enabled(p) {
		t.Errorf("proxy: toxics %v, enabled %v; want none, true", names, fault.Enabled(p))
	}
	c := strictClient(rs, p.Addr(), time.Second)
	if err := c.Set(t.Context(), "k", "v", 0).Err(); err != nil {
		t.Errorf("SET through the proxy: %v", err)
	}
	if got := config(t, direct, "maxmemory"); got != maxmemory {
		t.Errorf("maxmemory = %s, want %s", got, maxmemory)
	}
	if got := config(t, direct, "maxmemory-policy"); got != policy {
		t.Errorf("maxmemory-policy = %s, want %s", got, policy)
	}
	dbCtx, dbCancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer dbCancel()
	tx, err := sf.DB().BeginTx(dbCtx, nil)
	if err != nil {
		t.Fatalf("BeginTx: %v", err)
	}
	if _, err := tx.ExecContext(dbCtx, "CREATE TABLE t (x)"); err != nil {
		t.Errorf("Exec: %v", err)
	}
	if err := tx.Commit(); err != nil {
		t.Errorf("Commit: %v", err)
	}
}

func ExampleCycle() {
	p := newProbe("probe")
	ctx, cancel := context.WithCancel(context.Background())
	rounds := 0
	err := fault.Cycle(ctx, []fault.Nemesis{p}, rand.New(rand.NewPCG(1, 2)), time.Millisecond, time.Millisecond, func(e fault.Event) {
		fmt.Println(e.Name, "held for at least 1ms:", e.End.Sub(e.Start) >= time.Millisecond, "error:", e.Err)
		if rounds++; rounds == 2 {
			cancel()
		}
	})
	fmt.Println("Cycle:", err)
	// Output:
	// probe held for at least 1ms: true error: <nil>
	// probe held for at least 1ms: true error: <nil>
	// Cycle: <nil>
}
