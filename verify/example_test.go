package verify_test

import (
	"context"
	"fmt"
	"time"

	"github.com/memstore/memstore/strategies"
	"github.com/memstore/memstore/verify"
)

// Run a store through the checker: with no Redis and no DB configured, the
// engine starts a private redis-server and a SQLite file of its own.
// The classic cache-aside store (write the DB, then delete the cache
// entry) is caught; the DB-only control passes.
func Example() {
	ctx := context.Background()
	for _, store := range []strategies.Factory{strategies.WriteDBDeleteCache(), strategies.DBOnly()} {
		r, err := verify.Run(ctx, verify.Config{
			Store:    store,
			Seed:     1,
			Ops:      2000,            // stop after 2000 operations...
			Duration: 8 * time.Second, // ...or 8 seconds
			Faults:   []string{"none"},
		})
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%s: expected to pass %v, caught %v, linearizability %s\n",
			r.Store, r.ExpectPass, r.Caught(), r.Report.Linearizability.Verdict)
	}
	// Output:
	// write-db-delete-cache: expected to pass false, caught true, linearizability illegal
	// db-only: expected to pass true, caught false, linearizability ok
}
