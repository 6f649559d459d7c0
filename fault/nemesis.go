package fault

import (
	"context"
	"fmt"
	"sync"
)

// toggle is a fault that stays until healed: a killed or paused server, a
// memory limit, a toxic on a proxy, a failing database.
//
// Inject marks the fault active before it acts, even when it fails: a fault
// may be half applied (two proxies of three), and Heal must undo that half.
// A Heal that fails leaves it active, so the next Heal tries again. Inject
// while active and Heal while healed do nothing, which keeps a second Inject
// from saving the injected state as the one to restore.
type toggle struct {
	name   string
	inject func(ctx context.Context) error
	heal   func(ctx context.Context) error

	mu     sync.Mutex
	active bool
}

func (t *toggle) Name() string { return t.name }

func (t *toggle) Inject(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.active {
		return nil
	}
	t.active = true
	if err := t.inject(ctx); err != nil {
		return fmt.Errorf("fault: %s: %w", t.name, err)
	}
	return nil
}

func (t *toggle) Heal(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.active {
		return nil
	}
	if err := t.heal(ctx); err != nil {
		return fmt.Errorf("fault: %s: heal: %w", t.name, err)
	}
	t.active = false
	return nil
}

// instant is a fault that is over once done: keys deleted, a process
// killed. Heal has nothing to undo; what was lost stays lost, and the store
// under test must cope with that.
type instant struct {
	name string
	do   func(ctx context.Context) error
	mu   sync.Mutex
}

func (n *instant) Name() string { return n.name }

func (n *instant) Inject(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.do(ctx); err != nil {
		return fmt.Errorf("fault: %s: %w", n.name, err)
	}
	return nil
}

func (n *instant) Heal(context.Context) error { return nil }
