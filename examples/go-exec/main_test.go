package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/memstore/memstore/memtest"
	"github.com/memstore/memstore/verify"
)

// TestMain makes the test binary the adapter when the checker starts it as
// one: the checker runs the same code as the built command.
func TestMain(m *testing.M) {
	if name := os.Getenv("GO_EXEC_STORE"); name != "" {
		if err := serve(context.Background(), name, os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "go-exec:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(memtest.Main(m))
}

// check runs the checker on this adapter over the store name, as
// `memstore check --exec` does, on a private redis-server and a SQLite
// file.
func check(t *testing.T, name string, cfg verify.Config) *verify.Result {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Exec = &verify.Exec{Command: "GO_EXEC_STORE=" + name + " exec " + strconv.Quote(exe), Name: "go-exec-" + name}
	cfg.Redis = memtest.RedisWith(t, &memtest.RedisOptions{Private: true})
	cfg.DB = filepath.Join(t.TempDir(), "go-exec.db")
	r, err := verify.Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(r.Summary())
	return r
}

// Cache-aside is caught. Faults only make its race rarer (they fail the
// calls that would race), so this run has none, and is bounded by
// operations: a loaded machine makes fewer per second.
func TestNaiveStoreIsCaught(t *testing.T) {
	t.Parallel()
	r := check(t, "naive", verify.Config{Seed: 1, Faults: []string{"none"}, Ops: 3000, Duration: 10 * time.Second})
	if !r.Caught() {
		t.Errorf("cache-aside behind go-exec was not caught: %s", r.Summary())
	}
}

// The DB-only twin passes under every fault that reaches it.
func TestDBOnlyPasses(t *testing.T) {
	t.Parallel()
	r := check(t, "db-only", verify.Config{Seed: 1, Duration: 3 * time.Second})
	if !r.Passed() {
		t.Errorf("db-only behind go-exec did not pass:\n%s", strings.Join(r.Problems(), "\n"))
	}
}
