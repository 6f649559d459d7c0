package main

import (
	"context"

	"github.com/memstore/memstore/benchkit"
	"github.com/memstore/memstore/verify"
)

// runWorker is a worker process of `check --processes` (hidden from help):
// it runs one store instance and executes the calls the engine sends on
// stdin, answering on stdout (see verify.WorkerMain).
func runWorker(ctx context.Context, m *Main, args []string) error {
	return verify.WorkerMain(ctx, args, m.Stdin, m.Stdout)
}

// runBench is `memstore bench`: benchkit parses its own flags; its usage
// errors exit with status 2.
func runBench(ctx context.Context, m *Main, args []string) error {
	return benchkit.Main(ctx, args, m.Stdout, m.Stderr)
}
