package verify

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/memstore/memstore/fault"
	"github.com/memstore/memstore/history"
)

// The fault names Config.Faults accepts.
const (
	FaultRedisKill    = "redis-kill"    // SIGKILL the redis-server; restart it empty on heal
	FaultRedisRestart = "redis-restart" // kill and restart at once: all cache state lost
	FaultRedisPause   = "redis-pause"   // SIGSTOP the redis-server; SIGCONT on heal
	FaultRedisOOM     = "redis-oom"     // maxmemory 1 byte, noeviction: writes to Redis fail
	FaultEvict        = "evict"         // drop every key's cache entry, as eviction would
	FaultFlush        = "flush"         // delete every Redis key of the run (values, intents, leases)
	FaultLatency      = "latency"       // slow every Redis connection (proxy)
	FaultReset        = "reset"         // reset Redis connections (proxy)
	FaultPartition    = "partition"     // cut the instances off from Redis (proxy)
	FaultDBFail       = "db-fail"       // every DB statement fails (driver wrapper)
	FaultWorkerKill   = "worker-kill"   // SIGKILL a worker process mid-operation; restart it on heal
)

// FaultNames returns every fault name Config.Faults accepts.
func FaultNames() []string {
	return []string{
		FaultRedisKill, FaultRedisRestart, FaultRedisPause, FaultRedisOOM,
		FaultEvict, FaultFlush, FaultLatency, FaultReset, FaultPartition,
		FaultDBFail, FaultWorkerKill,
	}
}

// DefaultFaults returns the faults a run uses when Config.Faults is nil:
// all of them. Those the environment cannot produce are left out at run
// time and noted.
func DefaultFaults() []string { return FaultNames() }

func knownFault(name string) bool { return slices.Contains(FaultNames(), name) }

// ErrFaultUnavailable is returned by Run, with Config.RequireFaults, when a
// named fault cannot be produced here.
var ErrFaultUnavailable = errors.New("verify: fault unavailable")

// nemesis is a fault.Nemesis made of two functions.
type nemesis struct {
	name         string
	inject, heal func(ctx context.Context) error
}

func (n *nemesis) Name() string                     { return n.name }
func (n *nemesis) Inject(ctx context.Context) error { return n.inject(ctx) }
func (n *nemesis) Heal(ctx context.Context) error {
	if n.heal == nil {
		return nil
	}
	return n.heal(ctx)
}

var _ fault.Nemesis = (*nemesis)(nil)

// buildNemeses turns the configured fault names into nemeses, leaving out
// (and noting) those the environment cannot produce.
func (e *engine) buildNemeses() []fault.Nemesis {
	var out []fault.Nemesis
	for _, name := range e.cfg.Faults {
		if name == "none" {
			continue
		}
		n, why := e.nemesis(name)
		if n == nil {
			e.env.note("fault %s left out: %s", name, why)
			if e.leftOut == nil {
				e.leftOut = make(map[string]string)
			}
			e.leftOut[name] = why
			continue
		}
		out = append(out, n)
	}
	return append(out, e.cfg.Nemeses...)
}

func (e *engine) nemesis(name string) (fault.Nemesis, string) {
	rs := e.env.rs
	noProc := "process faults need a private redis-server (Config.Redis from memtest, or no Redis at all)"
	if rs != nil && rs.Shared() {
		noProc = "shared Redis (MEMSTORE_REDIS_URL): process faults would hit other users"
	}
	switch name {
	case FaultRedisKill:
		if !e.env.processFaults() {
			return nil, noProc
		}
		return &nemesis{name: name,
			inject: func(context.Context) error { return rs.Kill() },
			heal:   func(context.Context) error { return rs.Restart() },
		}, ""
	case FaultRedisRestart:
		if !e.env.processFaults() {
			return nil, noProc
		}
		return &nemesis{name: name, inject: func(context.Context) error { return rs.Restart() }}, ""
	case FaultRedisPause:
		if !e.env.processFaults() {
			return nil, noProc
		}
		return &nemesis{name: name,
			inject: func(context.Context) error { return rs.Pause() },
			heal:   func(context.Context) error { return rs.Resume() },
		}, ""
	case FaultRedisOOM:
		if !e.env.processFaults() {
			return nil, noProc
		}
		return e.oomNemesis(), ""
	case FaultEvict:
		return &nemesis{name: name, inject: func(ctx context.Context) error {
			var errs []error
			for _, k := range e.keys {
				errs = append(errs, e.instances[0].store.Evict(ctx, k))
			}
			return errors.Join(errs...)
		}}, ""
	case FaultFlush:
		return &nemesis{name: name, inject: e.flushNamespace}, ""
	case FaultWorkerKill:
		if len(e.workers) == 0 {
			return nil, "no worker processes (Config.Processes is 0)"
		}
		return e.workerKillNemesis(), ""
	}
	return e.externalNemesis(name)
}

// oomNemesis makes Redis refuse every write (maxmemory of one byte with the
// noeviction policy) and restores the settings on heal.
func (e *engine) oomNemesis() fault.Nemesis {
	var saved map[string]string
	return &nemesis{name: FaultRedisOOM,
		inject: func(ctx context.Context) error {
			cur, err := e.env.admin.ConfigGet(ctx, "maxmemory*").Result()
			if err != nil {
				return err
			}
			saved = map[string]string{"maxmemory": cur["maxmemory"], "maxmemory-policy": cur["maxmemory-policy"]}
			if err := e.env.admin.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err(); err != nil {
				return err
			}
			return e.env.admin.ConfigSet(ctx, "maxmemory", "1").Err()
		},
		heal: func(ctx context.Context) error {
			if saved == nil {
				return nil
			}
			err := errors.Join(
				e.env.admin.ConfigSet(ctx, "maxmemory", saved["maxmemory"]).Err(),
				e.env.admin.ConfigSet(ctx, "maxmemory-policy", saved["maxmemory-policy"]).Err())
			saved = nil
			return err
		},
	}
}

// flushNamespace deletes every Redis key of the run: what a FLUSHDB does to
// the store, without touching anyone else's keys on a shared server.
func (e *engine) flushNamespace(ctx context.Context) error {
	pattern := globEscape(e.env.namespace) + "*"
	iter := e.env.admin.Scan(ctx, 0, pattern, 256).Iterator()
	var batch []string
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return err
	}
	if len(batch) == 0 {
		return nil
	}
	return e.env.admin.Del(ctx, batch...).Err()
}

func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// faultLoop cycles through the nemeses until stop is closed: a gap, then
// one fault (chosen with the run's seed) injected, held and healed, each
// window recorded as a fault event.
func (e *engine) faultLoop(ctx context.Context, nems []fault.Nemesis, stop <-chan struct{}) {
	if len(nems) == 0 {
		return
	}
	rng := newRand(e.cfg.Seed, 7)
	wait := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-stop:
			return false
		case <-ctx.Done():
			return false
		}
	}
	for {
		if !wait(e.cfg.FaultGap) {
			return
		}
		n := nems[rng.IntN(len(nems))]
		ev := e.rec.BeginEvent(history.Fault, n.Name(), "")
		e.setFault(n.Name())
		ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := n.Inject(ictx)
		cancel()
		if err != nil {
			e.env.note("fault %s: inject: %v", n.Name(), err)
		}
		wait(e.cfg.FaultHold)
		e.heal(ctx, n)
		ev.End()
		e.setFault("")
	}
}

// heal heals n even when ctx has ended: a fault must never outlive the run.
func (e *engine) heal(ctx context.Context, n fault.Nemesis) {
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := n.Heal(hctx); err != nil {
		e.env.note("fault %s: heal: %v", n.Name(), err)
	}
}

// externalNemesis builds the faults that need package fault's machinery
// (proxies, the failing SQL driver).
func (e *engine) externalNemesis(name string) (fault.Nemesis, string) {
	return nil, fmt.Sprintf("not available in this build (package fault has no %s yet)", name)
}
