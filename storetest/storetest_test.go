package storetest_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/memstore/memstore/memtest"
	"github.com/memstore/memstore/storetest"
	"github.com/memstore/memstore/strategies"
)

func TestMain(m *testing.M) {
	// Faults make go-redis log every failed dial; the suite reports them.
	redis.SetLogger(quietLogger{})
	os.Exit(memtest.Main(m))
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// memstore passes the whole suite, faults included, and rebuilds a cold key
// exactly once however many readers ask.
func TestMemstoreConforms(t *testing.T) {
	t.Parallel()
	// One DB load per cold key holds while Redis answers within the Redis
	// budget (Options.RedisBudget); past it a reader reads the DB on
	// purpose. make test runs this beside other suites on 2 cores, where
	// a round trip can take longer than the default 50ms: the store runs
	// with a budget such a machine meets, as TestStampedeOneLoad does.
	f := strategies.Memstore()
	h := storetest.FromFactory(f)
	h.New = func(ctx context.Context, env storetest.Env) (storetest.Store, error) {
		return f.New(ctx, strategies.Config{Redis: env.Redis, DB: env.DB, Namespace: env.Namespace, Hook: env.Hook, TTL: env.TTL, Migrate: env.Migrate, RedisBudget: time.Second})
	}
	h.MaxColdLoads = 1
	storetest.Run(t, h) // every fault

}

// Check finds the known-bad strategies out, and names the check that did.
func TestCheckCatchesKnownBad(t *testing.T) {
	for _, f := range []strategies.Factory{strategies.WriteDBDeleteCache(), strategies.WriteDBSetCache()} {
		t.Run(f.Name, func(t *testing.T) {
			t.Parallel()
			h := storetest.FromFactory(f)
			h.Faults = []string{"none"}
			// write-db-set-cache shows only in the read windows and final
			// reads: give a loaded machine (-race, the other suites in
			// parallel) a few windows' worth of workload.
			h.Duration = 3 * time.Second
			err := storetest.Check(t.Context(), h)
			if err == nil {
				t.Fatalf("Check(%s) = nil; want the linearizability subtest to fail", f.Name)
			}
			t.Logf("Check(%s):\n%v", f.Name, err)
			if !strings.Contains(err.Error(), "linearizability: checks fired: ") {
				t.Errorf("Check(%s) does not name the linearizability subtest and the checks that fired:\n%v", f.Name, err)
			}
		})
	}
}
