package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/memstore/memstore/benchkit"
	"github.com/memstore/memstore/memtest"
	"github.com/memstore/memstore/report"
)

// binary is the memstore command, built once by TestMain: the tests that
// check what main itself does (exit codes, stderr) run it, and so do the
// worker processes of --processes.
var binary string

func TestMain(m *testing.M) {
	redis.SetLogger(quietLogger{})
	dir, err := os.MkdirTemp("", "memstore-cmd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "memstore")
	build := exec.Command("go", "build", "-o", binary, ".")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := memtest.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// stackTrace matches the header of a goroutine's stack in a panic.
var stackTrace = regexp.MustCompile(`goroutine \d+ \[`)

// runBinary runs the built command with args (and env added to the
// environment) and returns its output and exit status.
func runBinary(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), binary, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

// run runs Main in-process and returns its output, its error and the exit
// status main would give it.
func run(t *testing.T, args ...string) (stdout, stderr string, code int, err error) {
	t.Helper()
	var out, errOut, exitMsg bytes.Buffer
	m := NewMain()
	m.Stdout, m.Stderr = &out, &errOut
	m.WorkerCommand = []string{binary, "worker"}
	err = m.Run(t.Context(), args)
	return out.String(), errOut.String(), exitCode(err, &exitMsg), err
}

// checkDoc is the part of the JSON document the tests read.
type checkDoc struct {
	OK          bool `json:"ok"`
	RequirePass bool `json:"require_pass"`
	Interrupted bool `json:"interrupted"`
	Stores      []struct {
		Name         string            `json:"name"`
		Expected     string            `json:"expected"`
		Verdict      string            `json:"verdict"`
		OK           bool              `json:"ok"`
		Linearizable string            `json:"linearizable"`
		Anomalies    *int              `json:"anomalies"`
		AnomalyKinds map[string]int    `json:"anomaly_kinds"`
		Converged    *bool             `json:"converged"`
		Ops          int               `json:"ops"`
		Loads        *float64          `json:"db_loads_per_cold_key"`
		Fired        []string          `json:"fired"`
		Faults       map[string]int    `json:"faults"`
		LeftOut      map[string]string `json:"left_out_faults"`
		Violations   []struct {
			Check       string `json:"check"`
			Key         string `json:"key"`
			Ops         []int  `json:"ops"`
			Explanation string `json:"explanation"`
		} `json:"violations"`
	} `json:"stores"`
	Notes []string `json:"notes"`
}

func parseDoc(t *testing.T, s string) checkDoc {
	t.Helper()
	var d checkDoc
	if err := json.Unmarshal([]byte(s), &d); err != nil {
		t.Fatalf("stdout is not the JSON document: %v\n%s", err, s)
	}
	return d
}

func TestCheckMemstorePasses(t *testing.T) {
	t.Parallel()
	out := t.TempDir()
	// The default faults: every one.
	stdout, stderr, code, err := run(t, "check", "--store=memstore", "--duration=5s", "--json", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d (%v), want 0\nstderr:\n%s\nstdout:\n%s", code, err, stderr, stdout)
	}
	d := parseDoc(t, stdout)
	if !d.OK || len(d.Stores) != 1 {
		t.Fatalf("ok %v, %d stores; want true, 1", d.OK, len(d.Stores))
	}
	s := d.Stores[0]
	if s.Name != "memstore" || s.Expected != "pass" || s.Verdict != "PASS" || !s.OK || s.Linearizable != "ok" ||
		s.Anomalies == nil || *s.Anomalies != 0 || s.Converged == nil || !*s.Converged || s.Ops == 0 || s.Loads == nil {
		t.Errorf("memstore: %+v", s)
	}
	if len(s.Faults) == 0 {
		t.Errorf("no fault was injected: %+v", s)
	}
	// Each run has a directory of its own under --out; latest names it.
	for _, f := range []string{"report.html", "result.json", "histories/memstore.jsonl"} {
		if _, err := os.Stat(filepath.Join(out, "latest", f)); err != nil {
			t.Errorf("output: %v", err)
		}
	}
	// The report of a passing run, as a person reads it.
	page := readReport(t, filepath.Join(out, "latest"))
	for _, want := range []string{`<div class="verdict good">OK: every store passed every check`, `<span class="badge good">PASS</span>`, "Injected, one at a time:"} {
		if !strings.Contains(page, want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
	// result.json is the same document.
	b, err := os.ReadFile(filepath.Join(out, "latest", "result.json"))
	if err != nil {
		t.Fatal(err)
	}
	if rd := parseDoc(t, string(b)); !rd.OK || len(rd.Stores) != 1 {
		t.Errorf("result.json: ok %v, %d stores", rd.OK, len(rd.Stores))
	}
}

func TestCheckKnownBadExitsOne(t *testing.T) {
	t.Parallel()
	// Named on its own, a known-bad store is asked "is it safe?": it is
	// caught (its expectation), and the exit status is 1.
	stdout, stderr, code, err := run(t, "check", "--store=write-db-delete-cache", "--duration=5s", "--json", "--out", t.TempDir())
	var cf *checkFailed
	if code != 1 || !errors.As(err, &cf) {
		t.Fatalf("exit %d (%v), want 1 from a checkFailed\nstderr:\n%s", code, err, stderr)
	}
	d := parseDoc(t, stdout)
	if d.OK || !d.RequirePass || len(d.Stores) != 1 {
		t.Fatalf("ok %v, require_pass %v, %d stores; want false, true, 1", d.OK, d.RequirePass, len(d.Stores))
	}
	s := d.Stores[0]
	if s.Name != "write-db-delete-cache" || s.Expected != "fail" || s.Verdict != "CAUGHT" || s.Linearizable != "illegal" ||
		s.Anomalies == nil || *s.Anomalies == 0 || len(s.Fired) == 0 {
		t.Fatalf("write-db-delete-cache: %+v", s)
	}
	kinds := map[string]int{}
	for _, v := range s.Violations {
		kinds[v.Check]++
		if v.Explanation == "" || v.Key == "" {
			t.Errorf("violation without a key or an explanation: %+v", v)
		}
	}
	if kinds["linearizability"] == 0 || len(kinds) < 2 {
		t.Errorf("violations by check %v: want linearizability and the anomalies that explain it", kinds)
	}
	t.Logf("fired %v; violations by check %v", s.Fired, kinds)
}

// readReport reads dir/report.html without porcupine's timelines (their
// own script and data) and its style sheet, and fails on what must not
// reach a person: the library's names, times to the nanosecond.
func readReport(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	page := regexp.MustCompile(`srcdoc="[^"]*"`).ReplaceAllString(string(b), `srcdoc=""`)
	leaks := regexp.MustCompile(`Config\.|memtest|DefaultOutcome|\b(stale_read|lost_write|non_monotonic_read)\b|\d\.\d{5,}(s|ms|µs)\b`)
	if m := leaks.FindString(page); m != "" {
		t.Errorf("report.html shows an internal name or a nanosecond time: %q", m)
	}
	return page
}

func TestCheckHistoryOfKnownBadStore(t *testing.T) {
	t.Parallel()
	stdout, _, code, err := run(t, "check-history", "--json", "--out", t.TempDir(), filepath.Join("testdata", "write-db-delete-cache.jsonl"))
	var cf *checkFailed
	if code != 1 || !errors.As(err, &cf) {
		t.Fatalf("exit %d (%v), want 1 from a checkFailed", code, err)
	}
	d := parseDoc(t, stdout)
	if d.OK || len(d.Stores) != 1 {
		t.Fatalf("ok %v with %d stores, want false with 1", d.OK, len(d.Stores))
	}
	s := d.Stores[0]
	if s.Linearizable != "illegal" || s.Anomalies == nil || *s.Anomalies == 0 || s.Verdict != "CAUGHT" || s.Converged != nil {
		t.Errorf("bad history: %+v", s)
	}
	kinds := map[string]bool{}
	for _, v := range s.Violations {
		kinds[v.Check] = true
	}
	if !kinds["linearizability"] || len(kinds) < 2 {
		t.Errorf("violations %v: want linearizability and the anomalies that explain it", kinds)
	}
}

func TestCheckHistoryLinearizable(t *testing.T) {
	t.Parallel()
	out := t.TempDir()
	stdout, stderr, code, err := run(t, "check-history", filepath.Join("testdata", "memstore.jsonl"), "--out", out)
	if code != 0 {
		t.Fatalf("exit %d (%v), want 0\n%s%s", code, err, stdout, stderr)
	}
	for _, want := range []string{"store", "linearizable", "memstore", "PASS", "report: "} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "report.html")); err != nil {
		t.Error(err)
	}
}

func TestCheckTable(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "new", "dir")
	stdout, stderr, code, err := run(t, "check", "--store", "db-only", "--duration", "1s", "--faults", "none", "--out", out, "--seed", "3")
	if code != 0 {
		t.Fatalf("exit %d (%v), want 0\n%s%s", code, err, stdout, stderr)
	}
	for _, want := range []string{"store", "ops", "linearizable", "stale reads", "lost writes", "converged", "DB loads/cold key", "p50", "p99", "verdict", "db-only", "PASS", "OK: every store passed every check", "report: " + out + string(filepath.Separator)} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	// Not a terminal: plain progress lines, no escape sequences.
	if !strings.Contains(stderr, "check: ") || strings.Contains(stderr, "\033[") || strings.Contains(stderr, "\r") {
		t.Errorf("progress on a non-terminal should be plain lines:\n%q", stderr)
	}
}

func TestCheckProcesses(t *testing.T) {
	t.Parallel()
	stdout, stderr, code := runBinary(t, nil, "check", "--store=memstore", "--processes", "2", "--duration", "2s", "--json", "--out", t.TempDir())
	if code != 0 {
		t.Fatalf("exit %d, want 0\nstderr:\n%s\nstdout:\n%s", code, stderr, stdout)
	}
	d := parseDoc(t, stdout)
	if s := d.Stores[0]; !s.OK || s.Ops == 0 {
		t.Errorf("memstore with 2 worker processes: %+v", s)
	}
	if _, left := d.Stores[0].LeftOut["kill-worker"]; left {
		t.Errorf("kill-worker left out although there are worker processes: %v", d.Stores[0].LeftOut)
	}
}

// On private clusters (--redis-cluster) memstore passes, with worker
// processes each on a cluster client of its own and the cluster faults
// injected, and a known-bad store is caught: exit 0 and 1.
func TestCheckCluster(t *testing.T) {
	t.Parallel()
	stdout, stderr, code := runBinary(t, nil, "check", "--redis-cluster", "--store=memstore", "--processes", "2", "--duration", "4s", "--json", "--out", t.TempDir())
	if code != 0 {
		t.Fatalf("memstore on a cluster: exit %d, want 0\nstderr:\n%s\nstdout:\n%s", code, stderr, stdout)
	}
	d := parseDoc(t, stdout)
	s := d.Stores[0]
	if !s.OK || s.Ops == 0 {
		t.Errorf("memstore on a cluster: %+v", s)
	}
	if _, left := s.LeftOut["cluster-failover"]; left {
		t.Errorf("cluster-failover left out on a private cluster: %v", s.LeftOut)
	}
	if _, left := s.LeftOut["kill-worker"]; left {
		t.Errorf("kill-worker left out although there are worker processes: %v", s.LeftOut)
	}
	_, stderr, code = runBinary(t, nil, "check", "--redis-cluster", "--store=write-db-delete-cache", "--duration", "4s", "--json", "--out", t.TempDir())
	if code != 1 {
		t.Errorf("write-db-delete-cache on a cluster: exit %d, want 1\nstderr:\n%s", code, stderr)
	}
}

func TestCheckSharedRedisLeavesOutProcessFaults(t *testing.T) {
	t.Parallel()
	rs := memtest.Redis(t)
	stdout, stderr, code, err := run(t, "check", "--store", "db-only", "--redis", rs.URL(), "--duration", "1s", "--json", "--out", t.TempDir())
	if code != 0 {
		t.Fatalf("exit %d (%v), want 0\n%s", code, err, stderr)
	}
	d := parseDoc(t, stdout)
	if _, ok := d.Stores[0].LeftOut["redis-kill"]; !ok {
		t.Errorf("redis-kill not left out with --redis: %v", d.Stores[0].LeftOut)
	}
	if !strings.Contains(strings.Join(d.Notes, "\n"), "redis-kill") {
		t.Errorf("the run's notes do not say redis-kill was left out: %q", d.Notes)
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	history, err := filepath.Abs(filepath.Join("testdata", "memstore.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-bogus"}, "a flag before any command"},
		{[]string{"chek"}, `unknown command "chek"; did you mean "check"?`},
		{[]string{"check-histroy"}, `did you mean "check-history"?`},
		{[]string{"dmeo"}, `did you mean "demo"?`},
		{[]string{"check", "-bogus"}, "flag provided but not defined"},
		{[]string{"no-such-command"}, "unknown command"},
		{[]string{"check", "extra"}, "unexpected argument"},
		{[]string{"demo", "extra"}, "unexpected argument"},
		{[]string{"check", "--store", "nope"}, "unknown store"},
		{[]string{"check", "--faults", "nope"}, "unknown fault"},
		{[]string{"check", "--skew", "pareto"}, "--skew"},
		{[]string{"check", "--duration", "-1s"}, "--duration"},
		{[]string{"check", "--redis", "http://127.0.0.1:6379"}, "--redis"},
		{[]string{"check", "--redis", "redis://127.0.0.1:1"}, "cannot reach Redis"},
		{[]string{"check", "--redis", "127.0.0.1:1,127.0.0.1:2"}, "cannot reach Redis Cluster at 127.0.0.1:1,127.0.0.1:2"},
		{[]string{"check", "--redis", "redis+cluster://127.0.0.1:1"}, "cannot reach Redis Cluster"},
		{[]string{"check", "--redis-cluster", "--redis", "redis://127.0.0.1:6379"}, "pick one"},
		{[]string{"check", "--db", "mysql://localhost/x"}, "--db"},
		{[]string{"check", "--db", "postgres://nobody@127.0.0.1:1/x?connect_timeout=2"}, "cannot reach PostgreSQL"},
		{[]string{"check", "--out", filepath.Join(file, "sub")}, "output directory"},
		{[]string{"check-history"}, "missing argument"},
		{[]string{"check-history", "/no/such/history.jsonl"}, "no such file"},
		{[]string{"check-history", history, "--out", filepath.Join(file, "sub")}, "output directory"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			stdout, stderr, code := runBinary(t, nil, tc.args...)
			if code != 2 {
				t.Errorf("exit %d, want 2\nstderr: %s", code, stderr)
			}
			if lines := strings.Count(stderr, "\n"); lines != 1 || !strings.HasPrefix(stderr, "memstore: ") {
				t.Errorf("stderr = %q, want one line starting with \"memstore: \"", stderr)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr = %q, want it to mention %q", stderr, tc.want)
			}
			if stackTrace.MatchString(stderr) {
				t.Errorf("stderr has a stack trace: %q", stderr)
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
		})
	}
}

func TestCheckHistoryEmptyFile(t *testing.T) {
	t.Parallel()
	// An empty file is not a history: a setup problem, exit 2.
	file := filepath.Join(t.TempDir(), "empty.jsonl")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := runBinary(t, nil, "check-history", file, "--out", t.TempDir())
	if code != 2 || !strings.HasPrefix(stderr, "memstore: check-history: ") {
		t.Errorf("exit %d, stderr %q; want 2 and one line", code, stderr)
	}
}

func TestNoRedisServer(t *testing.T) {
	t.Parallel()
	// A PATH without redis-server: one line that says how to install it.
	_, stderr, code := runBinary(t, []string{"PATH=" + t.TempDir()}, "check", "--out", t.TempDir())
	if code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	for _, want := range []string{"redis-server not found", "sudo apt-get install -y redis-server", "make deps"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr %q lacks %q", stderr, want)
		}
	}
	if strings.Count(stderr, "\n") != 1 {
		t.Errorf("stderr is not one line: %q", stderr)
	}
}

func TestBenchUsageError(t *testing.T) {
	t.Parallel()
	// benchkit prints its own usage on a bad flag; the status is what
	// matters: 2, and no stack trace.
	_, stderr, code := runBinary(t, nil, "bench", "--bogus")
	if code != 2 || stackTrace.MatchString(stderr) {
		t.Errorf("bench --bogus: exit %d, stderr %q; want 2 and no stack trace", code, stderr)
	}
}

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{usagef("x"), 2},
		{setupf("x"), 2},
		{fmt.Errorf("bench: %w", &benchkit.UsageError{Err: errors.New("x")}), 2},
		{&checkFailed{run: &report.Run{}}, 1},
		{context.Canceled, 130},
		{&interruptedError{msg: "partial report in x"}, 130},
		{errors.Join(errors.New("a"), errors.New("b")), 1},
	} {
		var buf bytes.Buffer
		if got := exitCode(tc.err, &buf); got != tc.want {
			t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
		if tc.err != nil && strings.Count(buf.String(), "\n") != 1 {
			t.Errorf("exitCode(%v) printed %q, want one line", tc.err, buf.String())
		}
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	// memstore alone, -h, --help and help: the usage with the commands,
	// on stdout, exit 0; nothing runs.
	for _, args := range [][]string{nil, {"-h"}, {"--help"}, {"help"}} {
		stdout, stderr, code := runBinary(t, nil, args...)
		if code != 0 || stderr != "" {
			t.Errorf("memstore %v: exit %d, stderr %q; want 0 and nothing", args, code, stderr)
		}
		if !strings.HasPrefix(stdout, "memstore verifies") || !strings.Contains(stdout, "Usage: memstore command [flags]") {
			t.Errorf("memstore %v: stdout is not the usage:\n%s", args, stdout)
		}
		for _, want := range []string{"check ", "check-history", "bench", "demo", "help"} {
			if !strings.Contains(stdout, "\n  "+want) {
				t.Errorf("memstore %v: usage lacks the command %q:\n%s", args, want, stdout)
			}
		}
		if strings.Contains(stdout, "worker") || strings.Contains(stdout, "(default)") {
			t.Errorf("memstore %v: usage lists the hidden worker or a default command:\n%s", args, stdout)
		}
	}
	stdout, _, code := runBinary(t, nil, "check", "-h")
	if code != 0 {
		t.Fatalf("check -h: exit %d", code)
	}
	for _, want := range []string{"ExpectPass", "CAUGHT", "MISSED", "--store", "-processes", "-redis"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("check -h lacks %q:\n%s", want, stdout)
		}
	}
}

// Every command's -h is its usage, on stdout, in the same style.
func TestCommandHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"check", "-h"}, {"check-history", "-h"}, {"demo", "-h"}, {"bench", "-h"}, {"bench", "--help"}, {"help", "demo"}} {
		stdout, stderr, code := runBinary(t, nil, args...)
		name := args[0]
		if name == "help" {
			name = args[1]
		}
		if code != 0 || stderr != "" {
			t.Errorf("%v: exit %d, stderr %q; want 0 and nothing", args, code, stderr)
		}
		if !strings.HasPrefix(stdout, "Usage: memstore "+name+" [flags]") || !strings.Contains(stdout, "\nFlags:\n") {
			t.Errorf("%v: want \"Usage: memstore %s [flags]\" ... \"Flags:\" on stdout, got:\n%s", args, name, stdout)
		}
	}
}

func TestDemo(t *testing.T) {
	t.Parallel()
	start := time.Now()
	stdout, stderr, _, err := run(t, "demo")
	if err != nil {
		t.Fatalf("demo: %v\n%s%s", err, stdout, stderr)
	}
	for _, want := range []string{
		"1. write-db-delete-cache:",
		`request C  GET on server 2, begun after B returned: read the cache → "light"`,
		`✗ STALE: C read "light", but B's write of "dark" had returned before C began.`,
		"2. memstore:",
		"record an intent → write the row → returns OK",
		"then, in the background: clear the intent",
		`✓ correct: C read "dark"`,
		`write-db-delete-cache  request C read "light": STALE`,
		`memstore               request C read "dark": correct`,
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, stdout)
		}
	}
	// The pitch is short: the race is forced by a hook, not waited for.
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("demo took %v, want well under 10s", took)
	}
}

// Ctrl-C stops a check cleanly: exit 130, a report of what it had marked
// interrupted, and no redis-server left behind.
func TestInterrupt(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "out")
	// Every fault: the partial run must not be caught either.
	cmd := exec.Command(binary, "check", "--store=memstore", "--duration=60s", "--out", out)
	cmd.Dir = t.TempDir()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var log []string
	deadline := time.After(60 * time.Second)
	for waiting := true; waiting; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("memstore check ended before its workload:\n%s", strings.Join(log, "\n"))
			}
			log = append(log, l)
			// Well into the workload: some operations and a fault or two.
			if strings.Contains(l, ": workload ") && strings.Contains(l, "failed in faults") {
				waiting = false
			}
		case <-deadline:
			t.Fatalf("no workload progress in 60s:\n%s", strings.Join(log, "\n"))
		}
	}
	// A redis-kill fault leaves the check without a server until it
	// restarts one: look again for a while.
	var servers []int
	for end := time.Now().Add(30 * time.Second); len(servers) == 0 && time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		servers = redisChildren(t, cmd.Process.Pid)
	}
	if len(servers) == 0 {
		t.Fatal("no redis-server child found while the check ran")
	}
	start := time.Now()
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	for l := range lines {
		log = append(log, l)
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 130 {
		t.Fatalf("after Ctrl-C: %v, want exit status 130\nstderr:\n%s", err, strings.Join(log, "\n"))
	}
	t.Logf("stopped %v after Ctrl-C", time.Since(start).Round(time.Millisecond))
	last := log[len(log)-1]
	if !strings.HasPrefix(last, "memstore: interrupted: partial report in ") {
		t.Errorf("last line %q, want the interruption and where the report is", last)
	}
	page := readReport(t, filepath.Join(out, "latest"))
	for _, want := range []string{`<div class="verdict warn">INTERRUPTED:`, "interrupted during the workload phase"} {
		if !strings.Contains(page, want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
	d := parseDocFile(t, filepath.Join(out, "latest", "result.json"))
	if d.OK || !d.Interrupted || len(d.Stores) != 1 || d.Stores[0].Ops == 0 || d.Stores[0].Verdict != report.Interrupted {
		t.Errorf("result.json: ok %v, interrupted %v, stores %+v; want the partial run, marked interrupted", d.OK, d.Interrupted, d.Stores)
	}
	if !strings.Contains(stdout.String(), "INTERRUPTED") {
		t.Errorf("the table does not say the run was interrupted:\n%s", stdout.String())
	}
	for _, pid := range servers {
		if alive(pid) {
			t.Errorf("redis-server %d outlived the interrupted check", pid)
		}
	}
}

func parseDocFile(t *testing.T, path string) checkDoc {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return parseDoc(t, string(b))
}

// redisChildren returns the redis-server processes whose parent is pid.
func redisChildren(t *testing.T, pid int) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || !strings.Contains(s[:i], "(redis-server") {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}

// alive reports whether process pid exists and is not a zombie.
func alive(pid int) bool {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && !strings.HasPrefix(strings.TrimSpace(s[i+1:]), "Z") && syscall.Kill(pid, 0) == nil
}
