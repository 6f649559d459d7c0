package schedule

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/memstore/memstore/history"
)

// Call is one store call an actor makes on the scenario's key.
type Call struct {
	Kind  history.Kind // history.Get, history.Set or history.Delete
	Value string       // the value a Set writes
}

// Get reads the key.
func Get() Call { return Call{Kind: history.Get} }

// Set writes v to the key. Values must be unique within a scenario, so that
// a read names the write it came from.
func Set(v string) Call { return Call{Kind: history.Set, Value: v} }

// Delete removes the key.
func Delete() Call { return Call{Kind: history.Delete} }

func (c Call) String() string {
	switch c.Kind {
	case history.Get:
		return "Get"
	case history.Set:
		return "Set(" + strconv.Quote(c.Value) + ")"
	case history.Delete:
		return "Delete"
	}
	return string(c.Kind)
}

// Actor is one client of the store: a sequence of calls made one after the
// other, on its own goroutine.
type Actor struct {
	Name  string
	Calls []Call
	// After names actors that must have returned from all their calls
	// before this one makes its first call: a read that starts after a write
	// returned, which is what linearizability is about.
	After []string
}

// Scenario is a small workload on one key: the actors whose hook points the
// scheduler interleaves.
type Scenario struct {
	Name string
	// Key is the key every call uses. Default "k".
	Key string
	// Initial is the value the key holds in the DB before the actors start,
	// with nothing cached. Empty: the key has no value (it is deleted).
	Initial string
	Actors  []Actor
}

func (sc Scenario) key() string {
	if sc.Key == "" {
		return "k"
	}
	return sc.Key
}

// validate checks the rules the judge relies on.
func (sc Scenario) validate() error {
	if len(sc.Actors) == 0 {
		return errors.New("schedule: the scenario has no actors")
	}
	names := make(map[string]bool)
	values := make(map[string]bool)
	if sc.Initial != "" {
		values[sc.Initial] = true
	}
	for _, a := range sc.Actors {
		switch {
		case a.Name == "":
			return errors.New("schedule: an actor has no name")
		case a.Name == observer:
			return fmt.Errorf("schedule: %q is the judge's name for its own reads", observer)
		case names[a.Name]:
			return fmt.Errorf("schedule: two actors named %q", a.Name)
		case len(a.Calls) == 0:
			return fmt.Errorf("schedule: actor %q makes no calls", a.Name)
		}
		names[a.Name] = true
		for _, c := range a.Calls {
			switch c.Kind {
			case history.Get, history.Delete:
			case history.Set:
				if c.Value == "" || values[c.Value] {
					return fmt.Errorf("schedule: actor %q: Set(%q): written values must be non-empty and unique (the initial value counts)", a.Name, c.Value)
				}
				values[c.Value] = true
			default:
				return fmt.Errorf("schedule: actor %q: unsupported call %q", a.Name, c.Kind)
			}
		}
	}
	for _, a := range sc.Actors {
		for _, dep := range a.After {
			if !names[dep] || dep == a.Name {
				return fmt.Errorf("schedule: actor %q starts after %q, which is not another actor", a.Name, dep)
			}
		}
	}
	// The actors must be able to start in some order.
	done := make(map[string]bool)
	for progress := true; progress; {
		progress = false
		for _, a := range sc.Actors {
			ready := !done[a.Name]
			for _, d := range a.After {
				ready = ready && done[d]
			}
			if ready {
				done[a.Name], progress = true, true
			}
		}
	}
	if len(done) < len(sc.Actors) {
		return errors.New("schedule: the actors' After lists form a cycle")
	}
	return nil
}

// ReaderWriter is the smallest race: a Get and a Set of a key that holds
// "v0" and is not cached. Every classic cache-aside bug shows up in it: the
// reader's fill of the old row lands after the writer's invalidation.
func ReaderWriter() Scenario {
	return Scenario{
		Name:    "reader+writer",
		Initial: "v0",
		Actors: []Actor{
			{Name: "reader", Calls: []Call{Get()}},
			{Name: "writer", Calls: []Call{Set("w1")}},
		},
	}
}

// ReaderDeleter races a Get with a Delete: a stale fill must not resurrect a
// deleted key, and "not found" must be cached (if at all) only when it is
// the truth.
func ReaderDeleter() Scenario {
	return Scenario{
		Name:    "reader+deleter",
		Initial: "v0",
		Actors: []Actor{
			{Name: "reader", Calls: []Call{Get()}},
			{Name: "deleter", Calls: []Call{Delete()}},
		},
	}
}

// TwoWriters races two Sets with no reader: only the order in which their
// cache updates land can break the store (write-through's bug).
func TwoWriters() Scenario {
	return Scenario{
		Name:    "two writers",
		Initial: "v0",
		Actors: []Actor{
			{Name: "writer1", Calls: []Call{Set("w1")}},
			{Name: "writer2", Calls: []Call{Set("w2")}},
		},
	}
}

// ReaderTwoWriters races a Get with two Sets: too many interleavings to
// enumerate, so it is sampled.
func ReaderTwoWriters() Scenario {
	return Scenario{
		Name:    "reader+2 writers",
		Initial: "v0",
		Actors: []Actor{
			{Name: "reader", Calls: []Call{Get()}},
			{Name: "writer1", Calls: []Call{Set("w1")}},
			{Name: "writer2", Calls: []Call{Set("w2")}},
		},
	}
}

// LateReader races a Get and a Set, and adds a second Get that starts only
// after the Set returned: it must see "w1" whatever the first reader is
// doing. On a shared instance this is the in-process flight a "strong" cache
// gets wrong (the late reader joins a load that read the old row).
func LateReader() Scenario {
	return Scenario{
		Name:    "reader+writer+late reader",
		Initial: "v0",
		Actors: []Actor{
			{Name: "reader", Calls: []Call{Get()}},
			{Name: "writer", Calls: []Call{Set("w1")}},
			{Name: "late", Calls: []Call{Get()}, After: []string{"writer"}},
		},
	}
}
