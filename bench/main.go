// Command bench runs `memstore bench` with the peer libraries beside it:
// the same rows, the same run, the same private redis-server and database,
// plus <peer>/get-hit, <peer>/set and <peer>/stampede for each library a
// user would pick instead of memstore.
//
// It is a module of its own so the peers never enter memstore's import
// graph:
//
//	cd bench && go run . --json
//	make bench BENCH_ARGS="--duration 2s --out /tmp/bench"
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"

	"github.com/memstore/memstore/benchkit"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	cmd := &benchkit.Command{Name: "bench", Extra: peerRows}
	if err := cmd.Run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		if errors.As(err, new(*benchkit.UsageError)) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// peerRows returns the rows of every peer.
func peerRows(ctx context.Context, env *benchkit.Env) ([]benchkit.Row, error) {
	var rows []benchkit.Row
	for _, p := range []func(context.Context, *benchkit.Env) (benchkit.Subject, error){
		goRedisCache, rocksCache, rocksCacheStrong,
	} {
		s, err := p(ctx, env)
		if err != nil {
			return nil, err
		}
		rows = append(rows, benchkit.SubjectRows(env, s)...)
	}
	return rows, nil
}
