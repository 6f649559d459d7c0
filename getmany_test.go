package memstore_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/memstore/memstore"
	"github.com/memstore/memstore/internal/inspect"
)

// tripCounter counts the commands and pipelines a go-redis client sends.
type tripCounter struct{ cmds, pipelines atomic.Int64 }

func (r *tripCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (r *tripCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		r.cmds.Add(1)
		return next(ctx, cmd)
	}
}
func (r *tripCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		r.pipelines.Add(1)
		return next(ctx, cmds)
	}
}

func (r *tripCounter) take() (cmds, pipelines int64) {
	return r.cmds.Swap(0), r.pipelines.Swap(0)
}

var _ redis.Hook = (*tripCounter)(nil)

// GetMany of 100 keys is one round trip (an MGET) when they are cached,
// and three when they are cold (the MGET, the leases, the fills), plus one
// DB query; and two more, not one per key, when Redis has lost its
// scripts.
func TestGetManyRoundTrips(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		var rt tripCounter
		rdb := e.client()
		rdb.AddHook(&rt)
		s := storeOn[int](e, rdb, nil)
		in := map[string]int{}
		batch := map[string][]string{}
		for i := range 200 {
			k := fmt.Sprintf("key-%03d", i)
			in[k] = i
			b := []string{"first", "cold"}[i/100]
			batch[b] = append(batch[b], k)
		}
		if err := s.SetMany(ctx, in); err != nil {
			t.Fatal(err)
		}
		mustSync(t, s)
		// The first batch after a restart (or a failover, or a first use)
		// finds the scripts gone: the calls answered NOSCRIPT run again in
		// one more pipeline each, not one command per key.
		if err := e.redis.Client().ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		rt.take()
		for _, c := range []struct {
			name, batch string
			trips, hits uint64
		}{{"first", "first", 5, 0}, {"cold", "cold", 3, 0}, {"cached", "cold", 1, 100}} {
			keys := batch[c.batch]
			before := s.Stats()
			got, err := s.GetMany(ctx, keys)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			for _, k := range keys {
				if got[k] != in[k] {
					t.Fatalf("%s: GetMany[%q] = %d, want %d", c.name, k, got[k], in[k])
				}
			}
			if len(got) != len(keys) {
				t.Fatalf("%s: GetMany returned %d keys, want %d", c.name, len(got), len(keys))
			}
			cmds, pipes := rt.take()
			if n := uint64(cmds + pipes); n != c.trips {
				t.Errorf("%s GetMany of 100 keys: %d commands and %d pipelines; want %d round trips", c.name, cmds, pipes, c.trips)
			}
			after := s.Stats()
			if hits := after.Hits - before.Hits; hits != c.hits {
				t.Errorf("%s GetMany: %d hits, want %d", c.name, hits, c.hits)
			}
			if c.hits == 0 && after.Fills-before.Fills != 100 {
				t.Errorf("cold GetMany installed %d fills, want 100", after.Fills-before.Fills)
			}
		}
	})
}

// Each key of a GetMany is settled as Get would settle it: a corrupt entry
// is dropped and reloaded, a key another reader is loading is waited for, a
// key whose write is in flight is read from the DB and not filled.
func TestGetManySettlesEachKeyAsGet(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		// A reader in another process holds "busy"'s lease, stalled in its
		// DB read until this store's GetMany has come to wait for it.
		release := make(chan struct{})
		loading := make(chan struct{})
		other := store(e, &memstore.Options[string]{DisableReconciler: true, Hook: func(ctx context.Context, ev memstore.HookEvent) error {
			if ev.Step == memstore.StepDBLoad && ev.Phase == memstore.Before && ev.Key == "busy" {
				close(loading)
				select {
				case <-release:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		}})
		// A writer of "written" stalls between its intent and its commit.
		commit := make(chan struct{})
		begun := make(chan struct{})
		writer := storeOn(e, e.client(), &memstore.Options[string]{Namespace: other.Namespace(), DisableReconciler: true, Hook: func(ctx context.Context, ev memstore.HookEvent) error {
			if ev.Step == memstore.StepDBWrite && ev.Phase == memstore.Before && ev.Key == "written" {
				close(begun)
				<-commit
			}
			return nil
		}})
		var gets atomic.Int32
		s := storeOn(e, e.client(), &memstore.Options[string]{Namespace: other.Namespace(), DisableReconciler: true, Hook: func(ctx context.Context, ev memstore.HookEvent) error {
			// Gets of "busy": the bulk call, then the single-key path's
			// HGET and its get script, which answers that another reader
			// holds the lease: let that reader go on, and this one wait.
			if ev.Step == memstore.StepRedisGet && ev.Phase == memstore.After && ev.Key == "busy" && gets.Add(1) == 3 {
				close(release)
			}
			return nil
		}})
		want := map[string]string{"hit": "h", "cold": "c", "corrupt": "x", "busy": "b", "written": "old"}
		for k, v := range want {
			mustSet(t, s, k, v)
		}
		mustGet(t, s, "hit", "h")
		mustGet(t, s, "corrupt", "x")
		if err := inspect.WriteRaw(ctx, e.redis.Client(), s.Namespace(), "corrupt", []byte("not an entry")); err != nil {
			t.Fatal(err)
		}
		busyDone := make(chan error, 1)
		go func() {
			_, err := other.Get(ctx, "busy")
			busyDone <- err
		}()
		<-loading
		writeDone := make(chan error, 1)
		go func() { writeDone <- writer.Set(ctx, "written", "new") }()
		<-begun

		before := s.Stats()
		got, err := s.GetMany(ctx, []string{"hit", "cold", "corrupt", "busy", "written", "absent"})
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("GetMany (-want +got)\n%s", d)
		}
		st := s.Stats()
		if st.Corrupt-before.Corrupt != 1 {
			t.Errorf("corrupt entries dropped: %d, want 1", st.Corrupt-before.Corrupt)
		}
		if st.LeaseWaits-before.LeaseWaits != 1 {
			t.Errorf("lease waits: %d, want 1 (busy waited for the other reader)", st.LeaseWaits-before.LeaseWaits)
		}
		if err := <-busyDone; err != nil {
			t.Fatalf("the other reader's Get: %v", err)
		}
		if _, ok := cached(t, e, s, "written"); ok {
			t.Errorf("GetMany filled a key whose write was in flight")
		}
		close(commit)
		if err := <-writeDone; err != nil {
			t.Fatal(err)
		}
		mustSync(t, writer)
		got, err = s.GetMany(ctx, []string{"written", "corrupt"})
		if err != nil || got["written"] != "new" || got["corrupt"] != "x" {
			t.Fatalf("after the write: GetMany = %v, %v; want written=new, corrupt=x", got, err)
		}
	})
}

// A GetMany that finds the stripe's marker lost fences the stripe once, as
// Get does, and then fills.
func TestGetManyAfterMarkerLoss(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		s := store[string](e, nil)
		in := map[string]string{"a": "1", "b": "2", "c": "3"}
		if err := s.SetMany(ctx, in); err != nil {
			t.Fatal(err)
		}
		mustSync(t, s)
		before := s.Stats() // a new namespace's first write fences its stripe
		markers, err := e.redis.Client().Keys(ctx, s.Namespace()+":{*}:m").Result()
		if err != nil || len(markers) != 1 {
			t.Fatalf("markers %v, %v; want the namespace's one", markers, err)
		}
		if err := e.redis.Client().Del(ctx, markers[0]).Err(); err != nil {
			t.Fatal(err)
		}
		for round := range 2 {
			got, err := s.GetMany(ctx, []string{"a", "b", "c"})
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(in, got); d != "" {
				t.Fatalf("round %d: (-want +got)\n%s", round, d)
			}
		}
		if st := s.Stats(); st.Fences-before.Fences != 1 || st.Hits != 3 {
			t.Fatalf("fences %d, hits %d; want 1 fence, then 3 hits in the second round: %+v", st.Fences-before.Fences, st.Hits, st)
		}
	})
}
