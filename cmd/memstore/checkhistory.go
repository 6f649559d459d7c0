package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/memstore/memstore/check"
	"github.com/memstore/memstore/history"
	"github.com/memstore/memstore/report"
	"github.com/memstore/memstore/verify"
)

const checkHistoryHelp = `Usage: memstore check-history [flags] FILE

Checks a history recorded elsewhere (JSON lines, see history/FORMAT.md; the
histories/ directory of a check's --out holds them): per-key
linearizability, the explainers (stale reads, lost writes, ...) and the
Polaris figure. Prints the same table as check and writes report.html and
result.json into --out. The verdict column holds the expectation of the
store the history names (a known-bad store's history is CAUGHT); the exit
status does not: 0 if the history is linearizable with no anomaly, 1
otherwise, 2 for a usage problem or a file that cannot be read.

Flags:
`

func runCheckHistory(ctx context.Context, m *Main, args []string) error {
	fs := flag.NewFlagSet("check-history", flag.ContinueOnError)
	out := fs.String("out", defaultOut, "directory for report.html and result.json")
	asJSON := fs.Bool("json", false, "print the JSON document (the same as result.json) on stdout instead of the table")
	timeout := fs.Duration("timeout", check.DefaultTimeout, "bound of the linearizability search of each key (it ends inconclusive: not a pass)")
	pos, err := m.parseArgs(fs, args, checkHistoryHelp, 1)
	if err != nil {
		return err
	}
	path := pos[0]
	f, err := os.Open(path)
	if err != nil {
		return setupf("check-history: %v", err)
	}
	h, err := history.Read(f)
	f.Close()
	if err != nil {
		return setupf("check-history: %s: %v", path, err)
	}
	if err := probeDir(*out); err != nil {
		return err
	}
	start := time.Now()
	rep := check.All(h, &check.Options{Timeout: *timeout})
	res := report.FromHistory(h, rep)
	run := &report.Run{
		Title:   "memstore check-history",
		Command: "memstore " + strings.Join(append([]string{"check-history"}, args...), " "),
		Started: start,
		Elapsed: time.Since(start),
		Settings: []report.Setting{
			{Name: "history", Value: path},
			{Name: "recorded", Value: h.Header.Start.UTC().Format(time.RFC3339)},
			{Name: "seed", Value: fmt.Sprint(h.Header.Seed)},
		},
		Results:     []*verify.Result{res},
		RequirePass: true,
		Histories:   map[string]string{},
	}
	for _, k := range sortedMeta(h.Header.Meta) {
		v := h.Header.Meta[k]
		if k == "faults" {
			// Recorded as Go prints a slice: [redis-kill flush ...].
			v = strings.Join(strings.Fields(strings.Trim(v, "[]")), ", ")
		}
		run.Settings = append(run.Settings, report.Setting{Name: k, Value: v})
	}
	if err := writeFile(filepath.Join(*out, "result.json"), func(w *os.File) error { return report.WriteJSON(w, run) }); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(*out, "report.html"), func(w *os.File) error { return report.WriteHTML(w, run, nil) }); err != nil {
		return err
	}
	if *asJSON {
		if err := report.WriteJSON(m.Stdout, run); err != nil {
			return err
		}
	} else {
		if err := report.WriteTable(m.Stdout, run); err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "report: %s\n", filepath.Join(*out, "report.html"))
	}
	if !run.OK() {
		return &checkFailed{run: run}
	}
	return nil
}

func sortedMeta(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
