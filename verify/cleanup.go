package verify

import (
	"context"
	"fmt"
	"time"

	"github.com/memstore/memstore/internal/inspect"
	"github.com/memstore/memstore/internal/testenv"
)

// cleanup removes the run's Redis keys from a server the run did not start
// (the user's --redis, a test's shared server), and says what it leaves
// behind: the run's DB rows in a database the run did not create, whose
// tables only the store knows.
func (e *engine) cleanup(ctx context.Context) []string {
	var notes []string
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if !e.env.redis.Started {
		n, err := e.deleteKeys(ctx, inspect.GlobEscape(e.env.namespace)+"*")
		switch {
		case err != nil:
			notes = append(notes, fmt.Sprintf("cleanup: the run's Redis keys (%s*) could not all be removed: %v", e.env.namespace, err))
		case n > 0:
			notes = append(notes, fmt.Sprintf("cleanup: removed the run's %d Redis keys (%s*)", n, e.env.namespace))
		}
	}
	if e.cfg.DB != "" {
		notes = append(notes, fmt.Sprintf("cleanup: the run's rows (namespace %q) are left in the database: only the store knows its tables", e.env.namespace))
	}
	return notes
}

// deleteKeys deletes the keys matching pattern, on every server of a
// cluster.
func (e *engine) deleteKeys(ctx context.Context, pattern string) (int, error) {
	return testenv.DeletePattern(ctx, e.env.admin, pattern)
}
