package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/memstore/memstore/memtest"
)

// With MEMSTORE_TEST_MAIN=1 the test binary is the memstore command, so that
// the tests can check what main itself does: exit codes and stderr.
func TestMain(m *testing.M) {
	if os.Getenv("MEMSTORE_TEST_MAIN") == "1" {
		main()
		return
	}
	os.Exit(memtest.Main(m))
}

func runMain(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "MEMSTORE_TEST_MAIN=1")
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

func TestDemo(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	m := NewMain()
	m.Stdout, m.Stderr = &stdout, &stderr
	if err := m.Run(t.Context(), []string{"demo"}); err != nil {
		t.Fatalf("demo: %v\n%s", err, stdout.String())
	}
	out := stdout.String()
	for _, want := range []string{"started redis-server", "wrote key", "round trip OK: bytes identical", "stopped redis-server", "removed"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestDemoIsDefault(t *testing.T) {
	t.Parallel()
	stdout, stderr, code := runMain(t)
	if code != 0 {
		t.Fatalf("memstore: exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "round trip OK") {
		t.Errorf("memstore with no arguments did not run the demo:\n%s", stdout)
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"-bogus"}, {"demo", "-bogus"}, {"no-such-command"}, {"demo", "extra"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			stdout, stderr, code := runMain(t, args...)
			if code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			if lines := strings.Count(stderr, "\n"); lines != 1 || !strings.HasPrefix(stderr, "memstore: ") {
				t.Errorf("stderr = %q, want one line starting with \"memstore: \"", stderr)
			}
			if strings.Contains(stderr, "goroutine") {
				t.Errorf("stderr has a stack trace: %q", stderr)
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	stdout, _, code := runMain(t, "help")
	if code != 0 || !strings.Contains(stdout, "demo") {
		t.Errorf("help: exit %d, stdout %q; want 0 and the list of commands", code, stdout)
	}
}
