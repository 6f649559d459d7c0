package verify_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/memstore/memstore"
	"github.com/memstore/memstore/check"
	"github.com/memstore/memstore/history"
	"github.com/memstore/memstore/memtest"
	"github.com/memstore/memstore/strategies"
	"github.com/memstore/memstore/verify"
)

// run runs cfg on a private redis-server and a fresh SQLite file.
func run(t *testing.T, cfg verify.Config) *verify.Result {
	t.Helper()
	if cfg.Redis == nil {
		cfg.Redis = memtest.RedisWith(t, &memtest.RedisOptions{Private: true})
	}
	if cfg.DB == "" {
		cfg.DB = filepath.Join(t.TempDir(), "verify.db")
	}
	r, err := verify.Run(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Run(%s): %v", cfg.Store.Name, err)
	}
	t.Log(r.Summary())
	keepHistory(t, r)
	return r
}

// keepHistory saves the history of a run that is not OK: go test -artifacts
// keeps it.
func keepHistory(t *testing.T, r *verify.Result) {
	t.Helper()
	if r.OK() {
		return
	}
	path := filepath.Join(t.ArtifactDir(), fmt.Sprintf("%s-%d.history.jsonl", r.Store, r.Seed))
	if f, err := os.Create(path); err == nil {
		_ = history.Write(f, r.History)
		f.Close()
		t.Logf("history saved in %s", path)
	}
}

// detectionSeeds is how many seeds the normal suite runs per known-bad
// strategy (TestSweep, with -sweep, runs 20).
const detectionSeeds = 3

// Every known-bad strategy is caught in every seed, without faults (they
// only make a cache+DB store's races rarer: the sweep, -sweep, measures
// both), and by the checks that name its flaw: the linearizability search (the verdict), and the
// explainers that name the culprit operations. Each strategy lists the
// checks that must fire in every run; removing any of those checks (or the
// read windows and final reads that expose write-db-set-cache) fails this
// test.
func TestDetection(t *testing.T) {
	want := map[string][]string{
		"write-db-delete-cache": {verify.CheckLinearizability, string(check.StaleRead)},
		"delete-cache-write-db": {verify.CheckLinearizability, string(check.StaleRead)},
		"write-db-set-cache":    {verify.CheckLinearizability},
		"double-delete":         {verify.CheckLinearizability, string(check.StaleRead)},
		"lease-no-intent":       {verify.CheckLinearizability},
	}
	for _, f := range knownBad() {
		checks, ok := want[f.Name]
		if !ok {
			t.Errorf("no expected checks for known-bad strategy %s", f.Name)
			continue
		}
		t.Run(f.Name, func(t *testing.T) {
			t.Parallel()
			rs := memtest.RedisWith(t, &memtest.RedisOptions{Private: true})
			var explained int
			for seed := int64(1); seed <= detectionSeeds; seed++ {
				// Bounded by operations, with a time cap: a loaded machine
				// (or -race) makes fewer operations per second, and a
				// race needs operations to show.
				r := run(t, verify.Config{Store: f, Redis: rs, Seed: seed, Ops: 2000, Duration: 20 * time.Second, Faults: []string{"none"}, Quiet: 200 * time.Millisecond})
				if !r.Caught() || !r.OK() {
					t.Errorf("seed %d: %s was not caught: %s", seed, f.Name, r.Summary())
					continue
				}
				if !r.Detected || r.TimeToDetection <= 0 {
					t.Errorf("seed %d: caught, but no time to detection", seed)
				}
				for _, c := range checks {
					if !r.FiredCheck(c) {
						t.Errorf("seed %d: check %s did not fire (fired: %v)", seed, c, r.Fired())
					}
				}
				if len(r.Report.Anomalies) > 0 {
					explained++
				}
			}
			// The explainers name culprits for every strategy, if not in
			// every single run.
			if explained == 0 {
				t.Errorf("no run of %s had an anomaly that names the culprit operations", f.Name)
			}
		})
	}
}

// The stores that keep their promises pass under every fault, worker
// processes killed included: memstore, and the DB-only control, on which
// any failure would be a false alarm of the verifier.
func TestNoFalseAlarmsUnderFaults(t *testing.T) {
	for _, f := range []strategies.Factory{strategies.Memstore(), strategies.DBOnly()} {
		t.Run(f.Name, func(t *testing.T) {
			t.Parallel()
			faults := verify.DefaultFaults()
			r := run(t, verify.Config{
				Store: f, Seed: 3, Processes: 2, Instances: 2, Faults: faults,
				// Every fault comes once per round: one round.
				FaultRounds:   1,
				Duration:      time.Minute,
				RequireFaults: true,
			})
			if !r.Passed() {
				t.Errorf("%s did not pass under faults:\n%s", f.Name, strings.Join(r.Problems(), "\n"))
			}
			if !r.ExpectPass || !r.OK() {
				t.Errorf("OK() = false for a store expected to pass")
			}
			seen := map[string]bool{}
			for _, ev := range r.Faults {
				seen[ev.Name] = true
			}
			for _, name := range faults {
				if !seen[name] {
					t.Errorf("fault %s never injected (windows: %v)", name, r.Faults)
				}
			}
			if r.Report.Summary.Outcomes[history.Unknown] == 0 && r.Report.Summary.Outcomes[history.Failed] == 0 {
				t.Errorf("no failed or unknown operation under faults: were they injected?")
			}
			if r.Stampede == nil {
				t.Errorf("no stampede figure")
			} else {
				// memstore makes one load per cold key; the count is the
				// stampede subtest's of storetest to judge, on a quiet
				// system.
				t.Logf("stampede: %d loads at most per cold key (%d readers)", r.Stampede.Max, verify.DefaultReaders)
			}
			t.Logf("latency: %+v; notes: %q", r.Latency, r.Notes)
		})
	}
}

// A run against PostgreSQL: the engine opens one pool per instance from a
// URL.
func TestPostgres(t *testing.T) {
	t.Parallel()
	pg := memtest.Postgres(t)
	r := run(t, verify.Config{Store: strategies.Memstore(), DB: pg.DSN(), Duration: time.Second, Faults: []string{verify.FaultRedisKill, verify.FaultDBFail}})
	if !r.Passed() {
		t.Errorf("memstore on PostgreSQL: %v", r.Problems())
	}
}

// With a Redis URL only, the process faults are left out and the Result
// says so.
func TestRedisURLLeavesOutProcessFaults(t *testing.T) {
	t.Parallel()
	rs := memtest.RedisWith(t, &memtest.RedisOptions{Private: true})
	r, err := verify.Run(t.Context(), verify.Config{
		Store: strategies.DBOnly(), RedisURL: rs.URL(), Duration: 500 * time.Millisecond,
		Faults: []string{verify.FaultRedisKill, verify.FaultEvictKeys},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.LeftOut[verify.FaultRedisKill]; !ok {
		t.Errorf("LeftOut = %v; want redis-kill left out", r.LeftOut)
	}
	if _, ok := r.LeftOut[verify.FaultEvictKeys]; ok {
		t.Errorf("evict-keys left out, but it needs no process control")
	}
	if !slices.ContainsFunc(r.Notes, func(n string) bool { return strings.Contains(n, "redis-kill left out") }) {
		t.Errorf("notes %q do not say redis-kill was left out", r.Notes)
	}
	_, err = verify.Run(t.Context(), verify.Config{
		Store: strategies.DBOnly(), RedisURL: rs.URL(), Duration: 100 * time.Millisecond,
		Faults: []string{verify.FaultRedisKill}, RequireFaults: true,
	})
	if !errors.Is(err, verify.ErrFaultUnavailable) {
		t.Errorf("Run with RequireFaults = %v; want ErrFaultUnavailable", err)
	}
}

// RunAll runs stores one after another on one Redis and DB, each in its own
// namespace, and the history holds what the Result says.
func TestRunAll(t *testing.T) {
	t.Parallel()
	var phases []string // Progress calls never overlap
	cfg := verify.Config{
		Duration: 500 * time.Millisecond, Faults: []string{"none"}, Quiet: 100 * time.Millisecond, Seed: 9,
		Progress: func(p verify.Progress) {
			if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
				phases = append(phases, p.Phase)
			}
		},
	}
	rs, err := verify.RunAll(t.Context(), cfg, []strategies.Factory{strategies.DBOnly(), strategies.WriteDBDeleteCache()})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].Store != "db-only" || rs[1].Store != "write-db-delete-cache" {
		t.Fatalf("RunAll returned %d results", len(rs))
	}
	if rs[0].Namespace == rs[1].Namespace {
		t.Errorf("both runs in namespace %q", rs[0].Namespace)
	}
	for _, want := range []string{"warm-up", "workload", "heal", "quiet", "convergence", "final", "stampede", "check"} {
		if !slices.Contains(phases, want) {
			t.Errorf("progress never reported phase %q (saw %v)", want, phases)
		}
	}
	r := rs[0]
	if !r.Passed() {
		t.Errorf("db-only: %v", r.Problems())
	}
	if r.Ops != len(r.History.Ops) || r.Ops == 0 {
		t.Errorf("Ops = %d, history has %d", r.Ops, len(r.History.Ops))
	}
	finals := 0
	for _, op := range r.History.Ops {
		if op.Final {
			finals++
		}
	}
	if want := 2 * verify.DefaultKeys; finals != want {
		t.Errorf("%d final reads; want %d (read, evict, read again per key)", finals, want)
	}
	if len(r.Series) == 0 || r.Latency[history.Get].Count == 0 {
		t.Errorf("no latency figures: %+v", r.Latency)
	}
	if err := r.History.Validate(); err != nil {
		t.Errorf("history: %v", err)
	}
	if _, err := json.Marshal(r); err != nil {
		t.Errorf("Result does not marshal: %v", err)
	}
}

// The worker protocol: JSON lines in, JSON lines out, a ready line first,
// errors classified.
func TestWorkerMain(t *testing.T) {
	t.Parallel()
	rs := memtest.Redis(t)
	db := filepath.Join(t.TempDir(), "w.db")
	sdb, err := memtest.OpenSQLite(db)
	if err != nil {
		t.Fatal(err)
	}
	st, err := strategies.Memstore().New(t.Context(), strategies.Config{Redis: rs.Client(), DB: sdb, Namespace: "w", Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	sdb.Close()

	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- verify.WorkerMain(context.Background(), []string{"-store", "memstore", "-redis", rs.URL(), "-db", db, "-ns", "w"}, inR, outW)
		outW.Close()
	}()
	lines := bufio.NewScanner(outR)
	next := func() map[string]any {
		t.Helper()
		if !lines.Scan() {
			t.Fatalf("worker output ended: %v", lines.Err())
		}
		var m map[string]any
		if err := json.Unmarshal(lines.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	if m := next(); m["ready"] != true {
		t.Fatalf("first line %v; want ready", m)
	}
	for _, step := range []struct{ req, want string }{
		{`{"id":1,"kind":"get","key":"k"}`, `{"id":1}`},
		{`{"id":2,"kind":"set","key":"k","value":"c1-1"}`, `{"id":2}`},
		{`{"id":3,"kind":"get","key":"k"}`, `{"found":true,"id":3,"value":"c1-1"}`},
		{`{"id":4,"kind":"get","key":""}`, `{"err":"..","errkind":"failed","id":4}`},
	} {
		fmt.Fprintln(inW, step.req)
		got := next()
		if e, ok := got["err"]; ok && e != "" {
			got["err"] = ".."
		}
		b, _ := json.Marshal(got)
		if string(b) != step.want {
			t.Errorf("%s -> %s; want %s", step.req, b, step.want)
		}
	}
	inW.Close()
	if err := <-done; err != nil {
		t.Errorf("WorkerMain: %v", err)
	}
	if err := verify.WorkerMain(t.Context(), []string{"-store", "nope"}, strings.NewReader(""), io.Discard); err == nil {
		t.Error("WorkerMain with an unknown store succeeded")
	}
}

func TestDefaultOutcome(t *testing.T) {
	wrap := func(err error) error { return &memstore.OpError{Op: "set", Key: "k", Err: err} }
	for _, tc := range []struct {
		kind history.Kind
		err  error
		want history.Outcome
	}{
		{history.Get, nil, history.OK},
		{history.Get, wrap(memstore.ErrNotFound), history.OK},
		{history.Get, wrap(memstore.ErrUnavailable), history.Failed},
		{history.Get, context.DeadlineExceeded, history.Failed},
		{history.Set, nil, history.OK},
		{history.Set, wrap(memstore.ErrUnavailable), history.Failed},
		{history.Set, wrap(errors.Join(memstore.ErrUnavailable, memstore.ErrOutcomeUnknown)), history.Unknown},
		{history.Set, wrap(memstore.ErrOutcomeUnknown), history.Unknown},
		{history.Set, wrap(errors.Join(memstore.ErrUnavailable, context.DeadlineExceeded)), history.Unknown},
		{history.Delete, wrap(memstore.ErrInvalidKey), history.Failed},
		{history.Delete, errors.New("dial tcp: connection refused"), history.Unknown},
		{history.Set, context.Canceled, history.Unknown},
	} {
		if got := verify.DefaultOutcome(tc.kind, tc.err); got != tc.want {
			t.Errorf("DefaultOutcome(%s, %v) = %s; want %s", tc.kind, tc.err, got, tc.want)
		}
	}
}

// An inconclusive linearizability verdict is not a pass, and says so.
func TestUnknownIsNotAPass(t *testing.T) {
	r := &verify.Result{Store: "s", ExpectPass: true, Report: &check.Report{
		Verdict: check.Unknown,
		Linearizability: check.LinearizabilityResult{Verdict: check.Unknown, Keys: []check.KeyResult{
			{Key: "k", Verdict: check.Unknown, Cause: check.CauseTimeout},
		}},
		Summary: check.Summary{Outcomes: map[history.Outcome]int{history.OK: 1}},
	}}
	if r.Passed() || r.OK() || r.Caught() {
		t.Fatalf("Passed %v, OK %v, Caught %v; want none for an Unknown verdict", r.Passed(), r.OK(), r.Caught())
	}
	if p := r.Problems(); len(p) != 1 || !strings.Contains(p[0], "not a pass") {
		t.Errorf("Problems() = %q; want one saying unknown is not a pass", p)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []verify.Config{
		{},
		{Store: strategies.DBOnly(), Skew: "pareto"},
		{Store: strategies.DBOnly(), Faults: []string{"meteor"}},
		{Store: strategies.DBOnly(), Mix: verify.Mix{Get: -1, Set: 2}},
		{Store: strategies.DBOnly(), Clients: -1},
	} {
		if _, err := verify.Run(t.Context(), cfg); err == nil {
			t.Errorf("Run(%+v) succeeded; want a config error", cfg)
		}
	}
}
