// Package fault holds the nemeses of the verifier: the faults it injects
// into Redis, the database, the network between them and the stores, and the
// stores' own processes. Every fault has Inject and Heal, targets loopback
// only, and is bounded in time.
package fault

import "context"

// Nemesis is one kind of fault. Inject starts it, Heal ends it; Heal after
// Heal, or without Inject, does nothing. Both honour ctx.
type Nemesis interface {
	// Name is short and stable: "redis-kill", "redis-pause", "latency", ...
	Name() string
	Inject(ctx context.Context) error
	Heal(ctx context.Context) error
}
