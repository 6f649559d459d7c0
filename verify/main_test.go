package verify_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/memstore/memstore/memtest"
	"github.com/memstore/memstore/verify"
)

// TestMain makes the test binary a worker process when the engine starts it
// as one, and stops the PostgreSQL cluster when the tests end.
func TestMain(m *testing.M) {
	if os.Getenv(verify.EnvWorker) == "1" {
		args := os.Args[1:]
		if len(args) > 0 && args[0] == "worker" {
			args = args[1:]
		}
		if err := verify.WorkerMain(context.Background(), args, os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(memtest.Main(m))
}
