package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/memstore/memstore/report"
)

// runSummary is what one run of `memstore check` found, for --runs.
type runSummary struct {
	run *report.Run
	dir string
}

// openRunDir makes the run's own directory under out, named by the time
// it started, so that no run overwrites another (a rare failing run is
// kept), as Jepsen's store does; latestLink then points out/latest at it.
func (m *moreFlags) openRunDir(out string) (string, error) {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", setupf("output directory %s: %v", out, unwrapPath(err))
	}
	stamp := time.Now().Format("20060102T150405.000")
	for i := 1; ; i++ {
		name := stamp
		if i > 1 {
			name = fmt.Sprintf("%s-%d", stamp, i)
		}
		dir := filepath.Join(out, name)
		err := os.Mkdir(dir, 0o755)
		if err == nil {
			m.runDir = dir
			return dir, nil
		}
		if !errors.Is(err, os.ErrExist) || i > 100 {
			return "", setupf("output directory %s: %v", dir, unwrapPath(err))
		}
	}
}

// latestLink points <out>/latest at the run's directory (a relative
// symbolic link, replaced atomically).
func (m *moreFlags) latestLink() error {
	if m.runDir == "" {
		return nil
	}
	out := filepath.Dir(m.runDir)
	tmp := filepath.Join(out, ".latest-"+filepath.Base(m.runDir))
	_ = os.Remove(tmp)
	if err := os.Symlink(filepath.Base(m.runDir), tmp); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(out, "latest"))
}

// runRepeated is `memstore check --runs N`: the same check N times with
// successive seeds, each run in its own directory, then how many runs
// caught each store. The status is 1 if any run did not meet its
// expectation.
func runRepeated(ctx context.Context, m *Main, f *checkFlags, args []string) error {
	n := f.more.runs
	base := f.seed
	if base == 0 {
		base = time.Now().UnixNano() % 1_000_000
	}
	type tally struct {
		name           string
		expectPass     bool
		caught, passed int
		runs           int
	}
	var order []*tally
	byName := make(map[string]*tally)
	var failedRuns []int64
	for i := range n {
		g := *f
		g.seed = base + int64(i)
		g.more.runs = 1
		g.more.last = nil
		fmt.Fprintf(m.Stdout, "== run %d of %d, seed %d\n", i+1, n, g.seed)
		err := checkRun(ctx, m, &g, args)
		var cf *checkFailed
		switch {
		case err == nil:
		case errors.As(err, &cf):
			failedRuns = append(failedRuns, g.seed)
		default:
			return err
		}
		if g.more.last == nil {
			continue
		}
		for _, r := range g.more.last.run.Results {
			t := byName[r.Store]
			if t == nil {
				t = &tally{name: r.Store, expectPass: r.ExpectPass}
				byName[r.Store] = t
				order = append(order, t)
			}
			t.runs++
			if r.Caught() {
				t.caught++
			}
			if r.Passed() {
				t.passed++
			}
		}
	}
	fmt.Fprintf(m.Stdout, "== %d runs, seeds %d to %d, in %s\n", n, base, base+int64(n)-1, f.out)
	for _, t := range order {
		what := "known-bad"
		if t.expectPass {
			what = "expected to pass"
		}
		fmt.Fprintf(m.Stdout, "%-24s caught in %d of %d runs, passed in %d (%s)\n", t.name, t.caught, t.runs, t.passed, what)
	}
	if len(failedRuns) > 0 {
		return fmt.Errorf("check: %d of %d runs did not meet their expectation (seeds %v)", len(failedRuns), n, failedRuns)
	}
	return nil
}

// writeExtras writes what a run keeps beyond the report: the goroutine
// dump of a store call that hung, then the latest link.
func (m *moreFlags) writeExtras(run *report.Run) error {
	for _, r := range run.Results {
		name, dump := r.GoroutineDump()
		if name == "" {
			continue
		}
		path := filepath.Join(m.runDir, r.Store+"-"+name)
		if err := writeFile(path, func(w *os.File) error { _, err := w.WriteString(dump); return err }); err != nil {
			return err
		}
		run.Notes = append(run.Notes, fmt.Sprintf("%s: a call hung; every goroutine's stack is in %s", r.Store, path))
	}
	if err := m.latestLink(); err != nil {
		run.Notes = append(run.Notes, "no latest link: "+err.Error())
	}
	return nil
}
