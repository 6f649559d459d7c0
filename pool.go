package memstore

import "time"

// A *sql.DB that keeps fewer idle connections than it has concurrent
// statements closes a connection at every release and opens another for
// the next statement (database/sql keeps 2 by default). On PostgreSQL each
// of those is a new backend, and the store's statements, prepared once per
// connection, are prepared again on it: at 16 writers that made Sets 3 to
// 4 times slower. Nothing fails, so the reconciler's loop watches the
// pool's count of such closes and says so through Options.Logger (not
// with DisableReconciler, which stops that loop).

const (
	// churnRate is the rate of idle-list closes, per second, that the
	// store warns about: far more than a pool that fits its load closes.
	churnRate = 50
	// churnLogEvery rate-limits the warning.
	churnLogEvery = 10 * time.Minute
)

// poolWatch is the reconciler loop's view of the pool between two ticks.
type poolWatch struct {
	closed int64     // sql.DBStats.MaxIdleClosed at the last tick
	at     time.Time // the last tick; zero before the first
	logged time.Time // the last warning
}

// watchPool warns if the pool closed idle connections at churnRate or
// faster since the last tick.
func (s *Store[T]) watchPool(w *poolWatch, now time.Time) {
	closed := s.db.IdleClosed()
	if secs := now.Sub(w.at).Seconds(); !w.at.IsZero() && secs > 0 {
		rate := float64(closed-w.closed) / secs
		if rate >= churnRate && now.Sub(w.logged) >= churnLogEvery { // a zero logged is long ago
			s.opts.Logger.Warn("memstore: the database pool closes idle connections as fast as it opens them; "+
				"call db.SetMaxIdleConns with the number of concurrent callers",
				"closed_per_second", int(rate), "max_idle_closed", closed)
			w.logged = now
		}
	}
	w.closed, w.at = closed, now
}
