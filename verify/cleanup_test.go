package verify_test

import (
	"strings"
	"testing"
	"time"

	"github.com/memstore/memstore/memtest"
	"github.com/memstore/memstore/strategies"
	"github.com/memstore/memstore/verify"
)

// A run on a Redis it did not start removes its keys when it ends, and
// says so; it says that it leaves its rows in a database it was given.
func TestCleanupOnTheUsersRedis(t *testing.T) {
	t.Parallel()
	rs := memtest.RedisWith(t, &memtest.RedisOptions{Private: true})
	r := run(t, verify.Config{Store: strategies.WriteDBDeleteCache(), Redis: rs, Seed: 1, Duration: 500 * time.Millisecond,
		Faults: []string{"none"}, Quiet: 100 * time.Millisecond})
	keys, err := rs.Client().Keys(t.Context(), r.Namespace+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) > 0 {
		t.Errorf("the run left %d keys in Redis: %v", len(keys), keys)
	}
	notes := strings.Join(r.Notes, "\n")
	for _, want := range []string{"removed the run's", "Redis keys", "are left in the database"} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes do not say %q:\n%s", want, notes)
		}
	}
}
