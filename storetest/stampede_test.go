package storetest

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/memstore/memstore/memtest"
	"github.com/memstore/memstore/strategies"
)

// A stampede subtest that sees no DB load fails: the store did not report
// its loads, and a count of zero would pass any bound. With the loads
// reported it passes, and SkipStampede opts out with a reason.
func TestStampedeNeedsLoads(t *testing.T) {
	t.Parallel()
	base := strategies.WriteDBDeleteCache()
	noHook := Harness{Name: "no-hook", New: func(ctx context.Context, env Env) (Store, error) {
		return base.New(ctx, strategies.Config{Redis: env.Redis, DB: env.DB, Namespace: env.Namespace, Migrate: env.Migrate})
	}}
	skip := noHook
	skip.SkipStampede = "the store has no hook"
	for _, tc := range []struct {
		h    Harness
		want string
	}{
		{FromFactory(base), ""},
		{noHook, "reported no DB load"},
		{skip, "skipped: the harness opts out: the store has no hook"},
	} {
		t.Run(tc.h.Name+tc.h.SkipStampede, func(t *testing.T) {
			t.Parallel()
			s := &suite{h: tc.h.withDefaults(), rs: memtest.RedisWith(t, &memtest.RedisOptions{Private: true}),
				dialect: dialectSQLite, dbArg: filepath.Join(t.TempDir(), "stampede.db")}
			err := stampede(t.Context(), s, t.Logf)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("stampede: %v; want a pass", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("stampede: %v; want %q", err, tc.want)
			}
		})
	}
}
