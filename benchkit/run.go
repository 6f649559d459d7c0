package benchkit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Kind says what a row measures, and so what its numbers are compared with.
type Kind string

// The kinds of rows.
const (
	KindRaw      Kind = "raw"      // plain go-redis commands: the physical floor
	KindMemstore Kind = "memstore" // this module's store
	KindStrategy Kind = "strategy" // a classic (known-bad) store of package strategies
	KindPeer     Kind = "peer"     // a library users would pick instead (nested bench module)
)

// Row is one thing to measure: an operation run by many goroutines at once.
type Row struct {
	Name string
	Kind Kind
	// Baseline names the raw row this row's ratio_to_raw divides by, at the
	// same number of goroutines ("raw/get" for reads of one key, "raw/set"
	// for writes, "raw/mget" for batch reads). Empty: no ratio.
	Baseline string
	// Concurrency, if set, is the one goroutine count the row runs at,
	// instead of each of Options.Goroutines.
	Concurrency int
	// Rounds, if set, runs the row in rounds instead of for a duration:
	// in each round the Concurrency goroutines are released together and
	// each calls Op(ctx, worker, round) once; the next round starts when
	// all have returned. A stampede row is Rounds cold keys, each read by
	// Concurrency callers at once. Rounds rows have no warm-up.
	Rounds int
	// Setup runs once, before the row's first measurement.
	Setup func(ctx context.Context) error
	// Op runs one operation. worker is the goroutine's index (0 to
	// goroutines-1); i numbers the row's operations, unique over the whole
	// run (warm-ups included), or is the round in a Rounds row. An error
	// counts the operation as failed, except ErrExhausted.
	Op func(ctx context.Context, worker, i int) error
	// DBLoads, if set, returns how many rows the subject has read from the
	// database so far (the runner takes differences).
	DBLoads func() int64
	// Settle, if set, runs after each measurement, outside it: it lets
	// background work the row started finish, or resets its key pools.
	Settle func(ctx context.Context) error
	// DB names the database the row's subject writes ("sqlite",
	// "postgres"), for targets that differ by database.
	DB string
}

// ErrExhausted, returned by an Op, ends the measurement early without
// counting as a failure: the row ran out of something it cannot make more
// of during the measurement (a pool of never-cached keys). The numbers
// cover the operations done until then.
var ErrExhausted = errors.New("benchkit: the row's key pool is exhausted")

// Options configure Run. The zero value means the defaults.
type Options struct {
	// Duration of each measurement. Default 1s. Ignored when Ops is set.
	Duration time.Duration
	// Ops, if set, makes each measurement exactly this many operations
	// (shared by the goroutines) instead of a duration.
	Ops int
	// Warmup runs the row's operation, unmeasured, before each measurement
	// so connection pools are full and caches warm. Default: Duration/5, at
	// most 200ms, in duration mode; none in Ops mode.
	Warmup time.Duration
	// Goroutines lists the concurrencies each row runs at (rows with a
	// Concurrency of their own ignore it). Default 1 and 16.
	Goroutines []int
	// Count repeats every measurement this many times, interleaved (all
	// rows, then all rows again), and reports the one with the median
	// ops/s: a cheap guard against a noisy neighbour. Default 1.
	Count int
	// Progress, if set, gets one line per measurement as it ends.
	Progress io.Writer
}

func (o Options) withDefaults() Options {
	if o.Duration <= 0 {
		o.Duration = time.Second
	}
	if o.Warmup <= 0 && o.Ops <= 0 {
		o.Warmup = min(o.Duration/5, 200*time.Millisecond)
	}
	if len(o.Goroutines) == 0 {
		o.Goroutines = []int{1, 16}
	}
	if o.Count <= 0 {
		o.Count = 1
	}
	return o
}

// Result is one row measured at one goroutine count.
type Result struct {
	Name       string  `json:"name"`
	Kind       Kind    `json:"kind"`
	DB         string  `json:"db,omitempty"`
	Goroutines int     `json:"goroutines"`
	Ops        int64   `json:"ops"`    // operations that succeeded
	Errors     int64   `json:"errors"` // operations that failed
	Seconds    float64 `json:"seconds"`
	OpsPerSec  float64 `json:"ops_per_sec"`
	P50us      float64 `json:"p50_us"`
	P99us      float64 `json:"p99_us"`
	// AllocsPerOp and BytesPerOp are process-wide (runtime.MemStats) over
	// the measurement, divided by the operations: Run does nothing else
	// meanwhile, so they are the row's, plus any background goroutine of
	// the client libraries.
	AllocsPerOp float64 `json:"allocs_per_op"`
	BytesPerOp  float64 `json:"bytes_per_op"`
	DBLoads     int64   `json:"db_loads"`
	// Rounds rows only: the rounds (cold keys), and the DB loads per round:
	// the mean and the largest.
	Rounds           int     `json:"rounds,omitempty"`
	DBLoadsPerKey    float64 `json:"db_loads_per_key,omitempty"`
	MaxDBLoadsPerKey int64   `json:"db_loads_per_key_max,omitempty"`
	// Baseline is the raw row RatioToRaw compares with, at the same
	// goroutine count. RatioToRaw is OpsPerSec divided by the baseline's;
	// with Options.Count > 1, the median of that ratio over the passes,
	// each pass's two measurements having run a few seconds apart.
	Baseline   string  `json:"baseline,omitempty"`
	RatioToRaw float64 `json:"ratio_to_raw,omitempty"`
	// PassOpsPerSec is the ops/s of each pass, when Options.Count > 1.
	PassOpsPerSec []float64 `json:"pass_ops_per_sec,omitempty"`
	// Err is the first error: of Setup (then nothing was measured), or of
	// an operation (see Errors).
	Err string `json:"error,omitempty"`
}

// Run measures rows in order, each at each goroutine count, in this one
// process, and returns one Result per row and count, in the same order. A
// row whose Setup fails gets a Result with Err and no measurement; the other
// rows still run. Run stops early, returning what it measured, when ctx ends.
//
// Measurements never overlap: allocation counts are process-wide, so
// nothing else of the caller should run meanwhile.
func Run(ctx context.Context, rows []Row, opts Options) []Result {
	o := opts.withDefaults()
	type cell struct {
		row  int
		g    int
		runs []Result
	}
	var cells []*cell
	byRow := make([][]*cell, len(rows))
	for i, r := range rows {
		gs := o.Goroutines
		if r.Concurrency > 0 {
			gs = []int{r.Concurrency}
		}
		for _, g := range gs {
			c := &cell{row: i, g: g}
			cells = append(cells, c)
			byRow[i] = append(byRow[i], c)
		}
	}
	seqs := make([]atomic.Int64, len(rows))
	setupErr := make([]error, len(rows))
	setupDone := make([]bool, len(rows))
	for pass := 0; pass < o.Count && ctx.Err() == nil; pass++ {
		for i := range rows {
			r := &rows[i]
			if ctx.Err() != nil {
				break
			}
			if !setupDone[i] {
				setupDone[i] = true
				if r.Setup != nil {
					setupErr[i] = r.Setup(ctx)
				}
				if setupErr[i] != nil && o.Progress != nil {
					fmt.Fprintf(o.Progress, "%-36s setup failed: %v\n", r.Name, setupErr[i])
				}
			}
			if setupErr[i] != nil {
				continue
			}
			for _, c := range byRow[i] {
				if ctx.Err() != nil {
					break
				}
				res := measure(ctx, r, c.g, &seqs[i], o)
				if r.Settle != nil {
					if err := r.Settle(ctx); err != nil && res.Err == "" {
						res.Err = "settle: " + err.Error()
					}
				}
				c.runs = append(c.runs, res)
				if o.Progress != nil {
					fmt.Fprintf(o.Progress, "%-36s g=%-4d %12.0f ops/s  p50 %8.1fµs  p99 %8.1fµs  %6.1f allocs/op%s\n",
						res.Name, res.Goroutines, res.OpsPerSec, res.P50us, res.P99us, res.AllocsPerOp, errNote(res))
				}
			}
		}
	}
	var out []Result
	for _, c := range cells {
		r := rows[c.row]
		switch {
		case setupErr[c.row] != nil:
			out = append(out, Result{Name: r.Name, Kind: r.Kind, DB: r.DB, Goroutines: c.g, Err: "setup: " + setupErr[c.row].Error()})
		case len(c.runs) > 0:
			m := median(c.runs)
			if len(c.runs) > 1 {
				for _, r := range c.runs {
					m.PassOpsPerSec = append(m.PassOpsPerSec, r.OpsPerSec)
				}
			}
			out = append(out, m)
		}
	}
	fillRatios(out, rows)
	return out
}

func errNote(r Result) string {
	if r.Err == "" {
		return ""
	}
	return fmt.Sprintf("  (%d errors: %s)", r.Errors, r.Err)
}

// median returns the run with the median ops/s (the lower middle one).
func median(runs []Result) Result {
	s := slices.Clone(runs)
	slices.SortFunc(s, func(a, b Result) int {
		switch {
		case a.OpsPerSec < b.OpsPerSec:
			return -1
		case a.OpsPerSec > b.OpsPerSec:
			return 1
		}
		return 0
	})
	return s[(len(s)-1)/2]
}

// fillRatios sets each result's ratio to its baseline at the same
// goroutine count, where both were measured.
func fillRatios(res []Result, rows []Row) {
	baseline := make(map[string]string, len(rows))
	for _, r := range rows {
		baseline[r.Name] = r.Baseline
	}
	type at struct {
		name string
		g    int
	}
	byName := make(map[at]Result, len(res))
	for _, r := range res {
		byName[at{r.Name, r.Goroutines}] = r
	}
	for i := range res {
		b := baseline[res[i].Name]
		if b == "" {
			continue
		}
		res[i].Baseline = b
		if base, ok := byName[at{b, res[i].Goroutines}]; ok {
			res[i].RatioToRaw = Ratio(res[i], base)
		}
	}
}

// Ratio returns a's ops/s divided by b's: the median of the per-pass
// ratios when both ran the same passes, which cancels noise that drifts
// over a run better than the ratio of the medians. Zero if b has none.
func Ratio(a, b Result) float64 {
	if n := len(a.PassOpsPerSec); n > 1 && n == len(b.PassOpsPerSec) {
		rs := make([]float64, 0, n)
		for i := range n {
			if b.PassOpsPerSec[i] > 0 {
				rs = append(rs, a.PassOpsPerSec[i]/b.PassOpsPerSec[i])
			}
		}
		if len(rs) > 0 {
			slices.Sort(rs)
			if len(rs)%2 == 1 {
				return rs[len(rs)/2]
			}
			return (rs[len(rs)/2-1] + rs[len(rs)/2]) / 2
		}
	}
	if b.OpsPerSec <= 0 {
		return 0
	}
	return a.OpsPerSec / b.OpsPerSec
}

// worker is one goroutine's tally; padded apart so workers do not share
// cache lines.
type worker struct {
	h    hist
	ops  int64
	errs int64
	err  error
	_    [64]byte
}

// measure runs one measurement of r at g goroutines.
func measure(ctx context.Context, r *Row, g int, seq *atomic.Int64, o Options) Result {
	res := Result{Name: r.Name, Kind: r.Kind, DB: r.DB, Goroutines: g}
	ws := make([]*worker, g)
	for i := range ws {
		ws[i] = new(worker)
	}
	if r.Rounds > 0 {
		return measureRounds(ctx, r, g, ws, res)
	}
	var stop atomic.Bool
	defer context.AfterFunc(ctx, func() { stop.Store(true) })()

	if o.Warmup > 0 {
		runFor(ctx, r, ws, seq, &stop, time.Now().Add(o.Warmup), 0, false)
		for _, w := range ws {
			*w = worker{}
		}
	}
	var loads0 int64
	if r.DBLoads != nil {
		loads0 = r.DBLoads()
	}
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	start := time.Now()
	var deadline time.Time
	if o.Ops <= 0 {
		deadline = start.Add(o.Duration)
	}
	runFor(ctx, r, ws, seq, &stop, deadline, int64(o.Ops), true)
	elapsed := time.Since(start)
	runtime.ReadMemStats(&m1)
	if r.DBLoads != nil {
		res.DBLoads = r.DBLoads() - loads0
	}
	return tally(res, ws, elapsed, &m0, &m1)
}

// runFor runs r.Op on every worker until the deadline (or, when the
// deadline is zero, until ops operations have run), recording latencies
// when timed.
func runFor(ctx context.Context, r *Row, ws []*worker, seq *atomic.Int64, stop *atomic.Bool, deadline time.Time, ops int64, timed bool) {
	var claimed atomic.Int64
	var exhausted atomic.Bool
	var wg sync.WaitGroup
	for wi, w := range ws {
		wg.Go(func() {
			for !stop.Load() && !exhausted.Load() {
				t0 := time.Now()
				if deadline.IsZero() {
					if claimed.Add(1) > ops {
						return
					}
				} else if !t0.Before(deadline) {
					return
				}
				err := r.Op(ctx, wi, int(seq.Add(1)-1))
				if err != nil && errors.Is(err, ErrExhausted) {
					exhausted.Store(true)
					return
				}
				if timed {
					w.h.record(time.Since(t0))
				}
				if err == nil {
					w.ops++
				} else {
					w.errs++
					if w.err == nil {
						w.err = err
					}
				}
			}
		})
	}
	wg.Wait()
}

// measureRounds runs a Rounds row: per round, all g workers released at
// once, each calling Op once, and the DB loads of the round counted.
func measureRounds(ctx context.Context, r *Row, g int, ws []*worker, res Result) Result {
	starts := make([]chan struct{}, r.Rounds)
	for i := range starts {
		starts[i] = make(chan struct{})
	}
	// finished tells the workers waiting for a round that will not come to
	// leave. A worker released into a round always runs it and reports.
	var finished atomic.Bool
	var done, all sync.WaitGroup
	for wi, w := range ws {
		all.Go(func() {
			for round := range r.Rounds {
				<-starts[round]
				if finished.Load() {
					return
				}
				t0 := time.Now()
				err := r.Op(ctx, wi, round)
				w.h.record(time.Since(t0))
				if err == nil {
					w.ops++
				} else {
					w.errs++
					if w.err == nil {
						w.err = err
					}
				}
				done.Done()
			}
		})
	}
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	start := time.Now()
	next := 0
	for ; next < r.Rounds && ctx.Err() == nil; next++ {
		var before int64
		if r.DBLoads != nil {
			before = r.DBLoads()
		}
		done.Add(g)
		close(starts[next])
		done.Wait()
		res.Rounds++
		if r.DBLoads != nil {
			n := r.DBLoads() - before
			res.DBLoads += n
			res.MaxDBLoadsPerKey = max(res.MaxDBLoadsPerKey, n)
		}
	}
	elapsed := time.Since(start)
	runtime.ReadMemStats(&m1)
	finished.Store(true)
	for _, ch := range starts[next:] {
		close(ch)
	}
	all.Wait()
	if r.DBLoads != nil && res.Rounds > 0 {
		res.DBLoadsPerKey = float64(res.DBLoads) / float64(res.Rounds)
	}
	return tally(res, ws, elapsed, &m0, &m1)
}

func tally(res Result, ws []*worker, elapsed time.Duration, m0, m1 *runtime.MemStats) Result {
	var h hist
	var err error
	for _, w := range ws {
		h.merge(&w.h)
		res.Ops += w.ops
		res.Errors += w.errs
		if err == nil {
			err = w.err
		}
	}
	res.Seconds = elapsed.Seconds()
	if res.Seconds > 0 {
		res.OpsPerSec = float64(res.Ops) / res.Seconds
	}
	res.P50us = float64(h.quantile(0.50)) / 1e3
	res.P99us = float64(h.quantile(0.99)) / 1e3
	if n := res.Ops + res.Errors; n > 0 {
		res.AllocsPerOp = float64(m1.Mallocs-m0.Mallocs) / float64(n)
		res.BytesPerOp = float64(m1.TotalAlloc-m0.TotalAlloc) / float64(n)
	}
	if err != nil {
		res.Err = err.Error()
	}
	return res
}
