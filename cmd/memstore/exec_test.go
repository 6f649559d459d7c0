package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// An adapter that fails its handshake is a setup problem: exit status 2,
// one line on stderr that shows what the adapter said on its stderr.
func TestExecHandshakeExitsTwo(t *testing.T) {
	t.Parallel()
	_, stderr, code := runBinary(t, nil, "check", "--exec", "echo 'cannot import redis' >&2; echo 'not json'", "--duration", "1s", "--out", t.TempDir())
	if code != 2 {
		t.Fatalf("exit %d, want 2\nstderr: %s", code, stderr)
	}
	for _, want := range []string{"handshake", "cannot import redis", "not json"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr %q does not mention %q", stderr, want)
		}
	}
	last := stderr[strings.LastIndex(strings.TrimSuffix(stderr, "\n"), "\n")+1:]
	if !strings.HasPrefix(last, "memstore: ") || stackTrace.MatchString(stderr) {
		t.Errorf("stderr does not end in one line without a stack trace: %q", stderr)
	}
}

func TestExecUsageErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"check", "--exec", "true", "--store", "memstore"}, "leave out --store"},
		{[]string{"check", "--exec", "true", "--processes", "2"}, "leave out --processes"},
		{[]string{"check", "--exec-name", "x"}, "--exec-name needs --exec"},
		{[]string{"check", "--runs", "0"}, "--runs"},
		{[]string{"check", "--op-timeout", "-1s"}, "--op-timeout"},
	} {
		_, stderr, code := runBinary(t, nil, tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
}

// --runs repeats the check with successive seeds, each run in a directory
// of its own (none overwritten), latest pointing at the last, and counts
// what each run found.
func TestRuns(t *testing.T) {
	t.Parallel()
	out := t.TempDir()
	stdout, stderr, code, err := run(t, "check", "--store", "db-only", "--runs", "2", "--seed", "7", "--duration", "500ms", "--faults", "none", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d (%v)\n%s%s", code, err, stdout, stderr)
	}
	for _, want := range []string{"run 1 of 2, seed 7", "run 2 of 2, seed 8", "db-only", "caught in 0 of 2 runs, passed in 2"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() {
			dirs = append(dirs, e.Name())
		}
	}
	if len(dirs) != 2 {
		t.Errorf("run directories %v, want 2", dirs)
	}
	latest, err := os.Readlink(filepath.Join(out, "latest"))
	if err != nil || len(dirs) == 2 && latest != dirs[1] {
		t.Errorf("latest -> %q (%v), want %q", latest, err, dirs)
	}
	if _, err := os.Stat(filepath.Join(out, "latest", "result.json")); err != nil {
		t.Error(err)
	}
}
