package history

import (
	"fmt"
	"time"
)

// FormatVersion is the version of the JSON lines format that Write produces
// and Read accepts. See FORMAT.md.
const FormatVersion = 1

// Kind names the store call an Op records.
type Kind string

// The kinds of operation. Get, Refresh and GetMany are reads; Set, Delete and
// CAS are writes.
const (
	Get     Kind = "get"
	Set     Kind = "set"
	Delete  Kind = "delete"
	Refresh Kind = "refresh" // forced reload from the DB; checked as a read
	CAS     Kind = "cas"     // compare-and-set; see Op.Expect
	GetMany Kind = "getmany" // one Op per key, sharing Group, Call and Return
)

// IsRead reports whether k is a read (get, refresh or getmany).
func (k Kind) IsRead() bool { return k == Get || k == Refresh || k == GetMany }

// IsWrite reports whether k is a write (set, delete or cas).
func (k Kind) IsWrite() bool { return k == Set || k == Delete || k == CAS }

func (k Kind) valid() bool { return k.IsRead() || k.IsWrite() }

// Outcome says what is known about whether an operation took effect.
type Outcome string

const (
	// OK: the call returned normally. For a read, its output is what it saw;
	// for a write, it took effect between Call and Return. A CAS that
	// reported a version conflict is OK with Conflict set: it returned
	// normally and did not write.
	OK Outcome = "ok"
	// Failed: the call returned an error that proves it had no effect (for
	// example memstore.ErrUnavailable before anything was sent). A failed
	// read carries no information.
	Failed Outcome = "failed"
	// Unknown: the call returned an error (or never returned) after the
	// request may have been applied. An unknown write may take effect at any
	// time after Call, or never. An unknown read carries no information.
	Unknown Outcome = "unknown"
)

func (o Outcome) valid() bool { return o == OK || o == Failed || o == Unknown }

// Op is one operation on one key.
//
// Values: the workload writes values that are unique within a history (no
// two writes, on any keys, write the same value), so a read names the write it
// came from. A read of a missing key has Found false; the empty string is an
// ordinary value, never "not found".
type Op struct {
	// ID is the operation's index in History.Ops.
	ID int `json:"id"`
	// Client is the logical client (worker goroutine) that issued the call.
	// A client issues one call at a time.
	Client int `json:"client"`
	// Process is the worker process that ran the client, 0 for the engine's
	// own process. Clients are identified by (Process, Client).
	Process int `json:"process,omitempty"`
	// Group ties together the per-key Ops of one GetMany call: they share
	// Group (nonzero), Client, Call, Return and Outcome. Zero otherwise.
	Group int `json:"group,omitempty"`
	// Final marks the reads of the final phase, after heal and quiet period.
	Final bool `json:"final,omitempty"`

	Key  string `json:"key"`
	Kind Kind   `json:"kind"`

	// Value is the value written by a Set or CAS.
	Value string `json:"value,omitempty"`
	// Expect is what a CAS compared against. The store's CompareAndSet takes
	// a row version; the workload records the value that version held (it
	// learnt both from the same read), so the checker can compare values:
	// Expect with ExpectFound true, or ExpectFound false when the expected
	// version was of an absent row (never written, or deleted).
	Expect      string `json:"expect,omitempty"`
	ExpectFound bool   `json:"expect_found,omitempty"`
	// ExpectVersion is the row version the CAS passed, for people reading
	// the history; the checker does not use it.
	ExpectVersion uint64 `json:"expect_version,omitempty"`

	// Out and Found are a read's result: Found false means "not found" and
	// Out is then empty. Ignored unless the outcome is OK.
	Out   string `json:"out,omitempty"`
	Found bool   `json:"found,omitempty"`
	// Conflict is set on an OK CAS that reported a version conflict and
	// wrote nothing.
	Conflict bool `json:"conflict,omitempty"`

	// Call and Return are monotonic times in nanoseconds since the history's
	// start. An operation is concurrent with every operation whose interval
	// [Call, Return] intersects its own (closed intervals). A call that
	// never returned (its process was killed) is Unknown, with Return the
	// time the engine gave up on it.
	Call    int64   `json:"call"`
	Return  int64   `json:"return"`
	Outcome Outcome `json:"outcome"`
	// Err is the error text of a Failed or Unknown call.
	Err string `json:"error,omitempty"`
}

// EventKind classifies an Event.
type EventKind string

const (
	// Fault: a nemesis was active from Start to End (Redis killed, paused,
	// partitioned, DB failing, ...).
	Fault EventKind = "fault"
	// Phase: a phase of the run (warm-up, workload, heal, quiet, final).
	Phase EventKind = "phase"
	// Step: one I/O step of a store call, seen through the store's hooks
	// (memstore.Step names, "db.load", "redis.fill", ...), from before the
	// step to after it. Detail is "client C key K" (the call is the op of
	// process 0 by that client on that key whose interval holds the step).
	Step EventKind = "step"
)

// Event is an interval of the run that reports mark, such as a fault window.
// Other kinds than the constants above are allowed; reports show them as
// they are.
type Event struct {
	Kind   EventKind `json:"kind"`
	Name   string    `json:"name"`
	Start  int64     `json:"start"` // ns since the history's start
	End    int64     `json:"end"`   // ns since the history's start, >= Start
	Detail string    `json:"detail,omitempty"`
}

// Header describes a recorded run.
type Header struct {
	// Version is the format version (FormatVersion). Write always writes
	// FormatVersion; Read rejects other versions.
	Version int `json:"memstore_history"`
	// Store names the store under test ("memstore", "cache-aside", ...).
	Store string `json:"store,omitempty"`
	// Seed is the workload's random seed, so a run can be repeated.
	Seed int64 `json:"seed"`
	// Start is the wall-clock time that Call and Return times count from.
	Start time.Time `json:"start"`
	// Meta holds free-form facts about the run (versions, options, faults).
	Meta map[string]string `json:"meta,omitempty"`
}

// History is a recorded run: what every client called, what it got back and
// when, and the fault windows. It is plain data.
type History struct {
	Header Header
	Ops    []Op
	Events []Event
}

// Validate reports the first way in which h breaks the rules the checker
// relies on: IDs equal to indexes, known kinds and outcomes,
// 0 <= Call <= Return, a key on every op, written values unique per key, and
// GetMany groups that agree on client, times and outcome.
func (h *History) Validate() error {
	v := newValidator()
	for i := range h.Ops {
		if err := v.op(i, &h.Ops[i]); err != nil {
			return err
		}
	}
	for i := range h.Events {
		if err := validateEvent(i, &h.Events[i]); err != nil {
			return err
		}
	}
	return nil
}

// validator checks ops one at a time, so that Read can name the line.
type validator struct {
	written map[[2]string]int // (key, value) -> writer ID
	groups  map[int]Op        // group -> its first op
}

func newValidator() *validator {
	return &validator{written: make(map[[2]string]int), groups: make(map[int]Op)}
}

func (v *validator) op(i int, op *Op) error {
	switch {
	case op.ID != i:
		return fmt.Errorf("op at index %d has id %d: ids must equal their index (0, 1, 2, ...)", i, op.ID)
	case op.Key == "":
		return fmt.Errorf("op %d: empty key", i)
	case !op.Kind.valid():
		return fmt.Errorf("op %d: unknown kind %q", i, op.Kind)
	case !op.Outcome.valid():
		return fmt.Errorf("op %d: unknown outcome %q", i, op.Outcome)
	case op.Call < 0 || op.Return < op.Call:
		return fmt.Errorf("op %d: call %d, return %d: want 0 <= call <= return", i, op.Call, op.Return)
	case !op.Found && op.Out != "":
		return fmt.Errorf("op %d: out %q with found false", i, op.Out)
	case op.Conflict && op.Kind != CAS:
		return fmt.Errorf("op %d: conflict set on a %s", i, op.Kind)
	case op.Group != 0 && op.Kind != GetMany:
		return fmt.Errorf("op %d: group %d on a %s", i, op.Group, op.Kind)
	}
	if op.Kind == Set || op.Kind == CAS {
		k := [2]string{op.Key, op.Value}
		if j, dup := v.written[k]; dup {
			return fmt.Errorf("ops %d and %d both write %q to key %q: written values must be unique", j, i, op.Value, op.Key)
		}
		v.written[k] = i
	}
	if op.Group != 0 {
		if f, ok := v.groups[op.Group]; ok {
			if f.Client != op.Client || f.Process != op.Process || f.Call != op.Call || f.Return != op.Return || f.Outcome != op.Outcome {
				return fmt.Errorf("ops %d and %d of group %d differ in client, times or outcome", f.ID, i, op.Group)
			}
		} else {
			v.groups[op.Group] = *op
		}
	}
	return nil
}

func validateEvent(i int, ev *Event) error {
	if ev.Kind == "" {
		return fmt.Errorf("event %d: empty kind", i)
	}
	if ev.End < ev.Start {
		return fmt.Errorf("event %d (%s): end %d before start %d", i, ev.Name, ev.End, ev.Start)
	}
	return nil
}
