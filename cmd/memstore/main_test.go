package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/memstore/memstore/verify"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

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
	// Without the Redis data-loss faults: memstore's known gap there
	// (verify.DataLossFaults) is kept on record in verify's testdata.
	faults := "--faults=" + strings.Join(verify.WithoutDataLoss(), ",")
	stdout, stderr, code, err := run(t, "check", "--store=memstore", "--duration=5s", "--json", "--out", out, faults)
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
		{[]string{"-bogus"}, "flag provided but not defined"},
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
		{context.Canceled, 1},
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
	stdout, _, code := runBinary(t, nil, "help")
	if code != 0 {
		t.Fatalf("help: exit %d", code)
	}
	for _, want := range []string{"check", "check-history", "bench", "demo", "(default)"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("help lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "worker") {
		t.Errorf("help lists the hidden worker command:\n%s", stdout)
	}
	stdout, _, code = runBinary(t, nil, "check", "-h")
	if code != 0 {
		t.Fatalf("check -h: exit %d", code)
	}
	for _, want := range []string{"ExpectPass", "CAUGHT", "MISSED", "--store", "-processes", "-redis"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("check -h lacks %q:\n%s", want, stdout)
		}
	}
}

func TestDemo(t *testing.T) {
	t.Parallel()
	stdout, stderr, _, err := run(t, "demo")
	if err != nil {
		t.Fatalf("demo: %v\n%s%s", err, stdout, stderr)
	}
	for _, want := range []string{"started redis-server", "wrote key", "round trip OK: bytes identical", "stopped redis-server", "removed"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
}
