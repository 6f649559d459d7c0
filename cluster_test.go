package memstore_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/memstore/memstore"
	"github.com/memstore/memstore/fault"
	"github.com/memstore/memstore/memtest"
)

// roundTrips counts what a cluster client sends to each node: single
// commands (process calls) and pipelines, with the commands in them.
type roundTrips struct {
	mu        sync.Mutex
	single    map[string]int
	pipelines map[string]int
	cmds      map[string]int
}

func newRoundTrips() *roundTrips {
	r := &roundTrips{}
	r.reset()
	return r
}

func (r *roundTrips) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.single, r.pipelines, r.cmds = map[string]int{}, map[string]int{}, map[string]int{}
}

// nodeHook counts into r what the node at addr is sent.
type nodeHook struct {
	r    *roundTrips
	addr string
}

func (h nodeHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h nodeHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.r.mu.Lock()
		h.r.single[h.addr]++
		h.r.mu.Unlock()
		return next(ctx, cmd)
	}
}

func (h nodeHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.r.mu.Lock()
		h.r.pipelines[h.addr]++
		h.r.cmds[h.addr] += len(cmds)
		h.r.mu.Unlock()
		return next(ctx, cmds)
	}
}

func (r *roundTrips) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	var addrs []string
	for a := range r.pipelines {
		addrs = append(addrs, a)
	}
	for a := range r.single {
		if _, ok := r.pipelines[a]; !ok {
			addrs = append(addrs, a)
		}
	}
	sort.Strings(addrs)
	for _, a := range addrs {
		fmt.Fprintf(&b, "%s: %d pipelines (%d commands), %d single; ", a, r.pipelines[a], r.cmds[a], r.single[a])
	}
	return b.String()
}

// A 100-key GetMany over three masters costs one pipeline per master per
// phase, and no single command: the keys are grouped by node, never sent one
// by one. All cached, it is one phase (the HGETs); all cold, three (the
// HGETs, the get scripts that take the fill leases, the fills).
func TestGetManyRoundTripsOnCluster(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			c := memtest.Cluster(t)
			counts := newRoundTrips()
			rdb := c.NewClient(nil).(*redis.ClusterClient)
			rdb.OnNewNode(func(n *redis.Client) {
				n.AddHook(nodeHook{r: counts, addr: n.Options().Addr})
			})
			e := &env{t: t, cluster: c, db: b.open(t), rdb: rdb}
			s := store[string](e, nil)
			ctx := t.Context()
			keys := make([]string, 100)
			vals := make(map[string]string, 100)
			for i := range keys {
				keys[i] = fmt.Sprintf("k%03d", i)
				vals[keys[i]] = "v" + keys[i]
			}
			if err := s.SetMany(ctx, vals); err != nil {
				t.Fatal(err)
			}
			mustSync(t, s)
			// Warm up on other keys: every master loads the scripts (a
			// NOSCRIPT costs a second pipeline once), and the client its
			// slot map.
			warm := make(map[string]string, 100)
			for i := range 100 {
				warm[fmt.Sprintf("w%03d", i)] = "w"
			}
			if err := s.SetMany(ctx, warm); err != nil {
				t.Fatal(err)
			}
			mustSync(t, s)
			if _, err := s.GetMany(ctx, slices.Collect(maps.Keys(warm))); err != nil {
				t.Fatal(err)
			}
			if _, err := s.GetMany(ctx, slices.Collect(maps.Keys(warm))); err != nil {
				t.Fatal(err)
			}
			masters, err := c.Masters(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				name   string
				phases int
			}{{"cold", 3}, {"cached", 1}} {
				counts.reset()
				got, err := s.GetMany(ctx, keys)
				if err != nil {
					t.Fatalf("%s GetMany: %v", tc.name, err)
				}
				if len(got) != len(keys) {
					t.Fatalf("%s GetMany: %d values, want %d", tc.name, len(got), len(keys))
				}
				for k, v := range got {
					if v != vals[k] {
						t.Errorf("%s GetMany: %s = %q, want %q", tc.name, k, v, vals[k])
					}
				}
				t.Logf("%s GetMany of 100 keys: %s", tc.name, counts)
				counts.mu.Lock()
				total := 0
				for _, m := range masters {
					addr := m.AnnouncedAddr()
					if n := counts.pipelines[addr]; n != tc.phases {
						t.Errorf("%s GetMany: %d pipelines to master %s, want %d (one per phase)", tc.name, n, addr, tc.phases)
					}
					total += counts.pipelines[addr]
				}
				for addr, n := range counts.single {
					if n != 0 {
						t.Errorf("%s GetMany: %d single commands to %s, want none", tc.name, n, addr)
					}
				}
				if want := tc.phases * len(masters); total != want {
					t.Errorf("%s GetMany: %d pipelines in all, want %d", tc.name, total, want)
				}
				cmds := 0
				for _, n := range counts.cmds {
					cmds += n
				}
				if want := tc.phases * len(keys); cmds != want {
					t.Errorf("%s GetMany: %d commands in the pipelines, want %d (one per key per phase)", tc.name, cmds, want)
				}
				counts.mu.Unlock()
			}
		})
	}
}

// A slot migrating under load (CLUSTER SETSLOT MIGRATING/IMPORTING, MIGRATE
// of its keys, then the slot handed over) makes clients meet ASK, MOVED and
// TRYAGAIN. go-redis follows them; what escapes must surface as
// ErrUnavailable (or, for a write whose end failed, ErrOutcomeUnknown), and
// no read may return a value older than one whose write was acknowledged
// before the read began.
func TestSlotMigrationUnderLoad(t *testing.T) {
	t.Parallel()
	c := memtest.ClusterWith(t, &memtest.ClusterOptions{Private: true})
	e := &env{t: t, cluster: c, db: memtest.SQLite(t)}
	e.rdb = e.client()
	s := store[string](e, nil)
	const nkeys = 6
	keys := make([]string, nkeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%d", i)
		mustSet(t, s, keys[i], "0")
	}
	var (
		acked                [nkeys]atomic.Int64 // the newest value acknowledged, per key
		okReads, unavailable atomic.Int64
		mu                   sync.Mutex
		problems             []string
	)
	report := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(problems) < 20 {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	expected := func(err error) bool {
		if ctx.Err() != nil || errors.Is(err, memstore.ErrUnavailable) || errors.Is(err, memstore.ErrOutcomeUnknown) {
			unavailable.Add(1)
			return true
		}
		return false
	}
	check := func(k int, floor int64, v string) {
		n, err := strconv.ParseInt(v, 10, 64)
		switch {
		case err != nil:
			report("%s: read %q, never written", keys[k], v)
		case n < floor:
			report("%s: stale read %d after %d was acknowledged", keys[k], n, floor)
		default:
			okReads.Add(1)
		}
	}
	var wg sync.WaitGroup
	for k, key := range keys {
		wg.Go(func() { // the key's one writer: values 1, 2, 3, ...
			for n := int64(1); ctx.Err() == nil; n++ {
				err := s.Set(ctx, key, strconv.FormatInt(n, 10))
				switch {
				case err == nil:
					acked[k].Store(n)
				case !expected(err):
					report("Set(%s): %v", key, err)
				}
			}
		})
		wg.Go(func() {
			for ctx.Err() == nil {
				floor := acked[k].Load()
				v, err := s.Get(ctx, key)
				switch {
				case err == nil:
					check(k, floor, v)
				case !expected(err):
					report("Get(%s): %v", key, err)
				}
			}
		})
	}
	wg.Go(func() {
		for ctx.Err() == nil {
			var floors [nkeys]int64
			for k := range keys {
				floors[k] = acked[k].Load()
			}
			got, err := s.GetMany(ctx, keys)
			if err != nil {
				if !expected(err) {
					report("GetMany: %v", err)
				}
				continue
			}
			for k, key := range keys {
				if v, ok := got[key]; ok {
					check(k, floors[k], v)
				} else {
					report("GetMany: %s missing", key)
				}
			}
		}
	})
	nem := fault.SlotMigration(c, rand.New(rand.NewPCG(1, 2)))
	migrations := 0
	for range 6 {
		if err := nem.Inject(t.Context()); err != nil {
			t.Errorf("migrate: %v", err)
		} else {
			migrations++
		}
		if err := nem.Heal(t.Context()); err != nil {
			t.Errorf("heal: %v", err)
		}
	}
	cancel()
	wg.Wait()
	for _, p := range problems {
		t.Error(p)
	}
	t.Logf("%d migrations, %d good reads, %d calls unavailable", migrations, okReads.Load(), unavailable.Load())
	if migrations == 0 || okReads.Load() == 0 {
		t.Errorf("%d migrations and %d good reads: the test exercised nothing", migrations, okReads.Load())
	}
}

// A failover that loses acknowledged Redis writes: a shard's replica is cut
// off its master's stream (fault.ClusterLossyFailover's Inject), every key
// is written, then the replica is promoted (Heal) without what its master
// acknowledged in between: the cache drops and intents of those writes. A
// read after that must not return the value the replica kept.
func TestLossyFailoverKeepsAcknowledgedWrites(t *testing.T) {
	t.Parallel()
	c := memtest.ClusterWith(t, &memtest.ClusterOptions{Private: true})
	e := &env{t: t, cluster: c, db: memtest.SQLite(t)}
	e.rdb = e.client()
	s := store[string](e, nil)
	ctx := t.Context()
	keys := make([]string, 30) // some on every shard, whichever is cut
	for i := range keys {
		keys[i] = fmt.Sprintf("k%02d", i)
		mustSet(t, s, keys[i], "old")
		mustGet(t, s, keys[i], "old") // cached
	}
	if err := c.WaitHealthy(ctx); err != nil { // the replicas have the entries
		t.Fatal(err)
	}
	nem := fault.ClusterLossyFailover(c, rand.New(rand.NewPCG(3, 4)))
	if err := nem.Inject(ctx); err != nil {
		t.Fatal(err)
	}
	acked := map[string]bool{}
	for _, k := range keys {
		err := s.Set(ctx, k, "new")
		switch {
		case err == nil:
			acked[k] = true
		case errors.Is(err, memstore.ErrUnavailable):
		default:
			t.Errorf("Set(%s): %v", k, err)
		}
	}
	mustSync(t, s)
	if err := nem.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	stale := 0
	for _, k := range keys {
		v, err := s.Get(ctx, k)
		switch {
		case err != nil && !errors.Is(err, memstore.ErrUnavailable):
			t.Errorf("Get(%s): %v", k, err)
		case err == nil && acked[k] && v != "new":
			stale++
			t.Errorf("Get(%s) = %q after Set(%s, \"new\") returned nil: the promoted replica's entry", k, v, k)
		}
	}
	t.Logf("%d of %d writes acknowledged during the cut; %d stale reads after the failover", len(acked), len(keys), stale)
	if len(acked) == 0 {
		t.Errorf("no write acknowledged: the test exercised nothing")
	}
}

// On a Sentinel failover client a write waits for the replica to have its
// intent: with the replica stopped, Set fails with ErrUnavailable and
// nothing is written; resumed, writes go through again.
func TestSentinelWriteNeedsReplica(t *testing.T) {
	t.Parallel()
	sn := memtest.Sentinel(t)
	ctx := t.Context()
	rdb := sn.NewClient(func(o *redis.FailoverOptions) {
		o.ContextTimeoutEnabled = true
		o.ReadTimeout = 300 * time.Millisecond
		o.WriteTimeout = 300 * time.Millisecond
	})
	e := &env{t: t, db: memtest.SQLite(t), rdb: rdb}
	s := storeOn[string](e, rdb, nil)
	mustSet(t, s, "k", "v1")
	mustGet(t, s, "k", "v1")
	master, err := sn.Master(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var replica *memtest.RedisServer
	for _, srv := range sn.Servers() {
		if srv != master {
			replica = srv
		}
	}
	if err := replica.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = replica.Resume() })
	if err := s.Set(ctx, "k", "v2"); !errors.Is(err, memstore.ErrUnavailable) {
		t.Errorf("Set with the replica stopped: %v, want ErrUnavailable", err)
	}
	if err := replica.Resume(); err != nil {
		t.Fatal(err)
	}
	mustGet(t, s, "k", "v1") // the failed write wrote nothing
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := s.Set(ctx, "k", "v3")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Set after the replica resumed: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // the replica reconnects on its own schedule
	}
	mustSync(t, s)
	mustGet(t, s, "k", "v3")
}
