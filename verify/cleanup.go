package verify

import (
	"context"
	"fmt"
	"time"
)

// cleanup removes the run's Redis keys from a server the run did not start
// (the user's --redis, a test's shared server), and says what it leaves
// behind: the run's DB rows in a database the run did not create, whose
// tables only the store knows.
func (e *engine) cleanup(ctx context.Context) []string {
	var notes []string
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if !e.env.ownRedis {
		n, err := e.deleteKeys(ctx, globEscape(e.env.namespace)+"*")
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

// deleteKeys deletes the keys matching pattern, a SCAN page at a time.
func (e *engine) deleteKeys(ctx context.Context, pattern string) (int, error) {
	var cursor uint64
	n := 0
	for {
		keys, next, err := e.env.admin.Scan(ctx, cursor, pattern, 1000).Result()
		if err != nil {
			return n, err
		}
		if len(keys) > 0 {
			if err := e.env.admin.Del(ctx, keys...).Err(); err != nil {
				return n, err
			}
			n += len(keys)
		}
		if cursor = next; cursor == 0 {
			return n, nil
		}
	}
}
