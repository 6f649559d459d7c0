package verify_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/memstore/memstore/memtest"
	"github.com/memstore/memstore/verify"
)

// TestMain makes the test binary a worker process when the engine starts it
// as one, and stops the PostgreSQL cluster when the tests end.
func TestMain(m *testing.M) {
	if name := os.Getenv(envTestAdapter); name != "" {
		if err := testAdapterMain(name); err != nil {
			fmt.Fprintln(os.Stderr, "test adapter:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
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
	// Faults make go-redis log every failed dial; the history has them.
	redis.SetLogger(quietLogger{})
	os.Exit(memtest.Main(m))
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}
