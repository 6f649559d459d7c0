package history

import (
	"errors"
	"sync"
	"time"
)

// RecorderOptions configure a Recorder. The zero value is ready to use.
type RecorderOptions struct {
	// Process is written into every Op's Process field. Default 0.
	Process int
	// Clock returns the time in nanoseconds since the history's start. It
	// must never go backwards. Default: time.Since(Header.Start), which
	// reads Go's monotonic clock.
	Clock func() int64
}

// Recorder records a History as clients run. It is safe for concurrent use.
//
// A call is recorded in two steps, so that the interval covers the whole
// call:
//
//	p := rec.Begin(client, key, history.Get, history.Input{})
//	v, err := kv.Get(ctx, key)
//	p.End(history.Output{Value: v, Found: err == nil}, outcomeOf(err), err)
type Recorder struct {
	clock   func() int64
	process int

	mu         sync.Mutex
	h          History
	pending    map[int]bool // op indexes still running
	openEvents map[int]bool // event indexes not yet ended
	nextGroup  int
}

// NewRecorder starts a history. A zero hdr.Start is set to time.Now().
// hdr.Version is set to FormatVersion. opts may be nil.
func NewRecorder(hdr Header, opts *RecorderOptions) *Recorder {
	if opts == nil {
		opts = &RecorderOptions{}
	}
	if hdr.Start.IsZero() {
		hdr.Start = time.Now()
	}
	hdr.Version = FormatVersion
	clock := opts.Clock
	if clock == nil {
		start := hdr.Start // keeps the monotonic reading of time.Now
		clock = func() int64 { return int64(time.Since(start)) }
	}
	return &Recorder{
		clock:      clock,
		process:    opts.Process,
		h:          History{Header: hdr},
		pending:    make(map[int]bool),
		openEvents: make(map[int]bool),
	}
}

// Input is what a call was asked to do. Only the fields of its kind matter:
// Value for Set and CAS; Expect, ExpectFound and ExpectVersion for CAS;
// Final for reads of the final phase.
type Input struct {
	Value         string
	Expect        string
	ExpectFound   bool
	ExpectVersion uint64
	Final         bool
}

// Output is what a call returned: a read's Value and Found, or a CAS's
// Conflict.
type Output struct {
	Value    string
	Found    bool
	Conflict bool
}

// Pending is a call that has begun and not yet ended.
type Pending struct {
	r   *Recorder
	idx int
}

// Begin records the start of a call and returns the handle to end it with.
func (r *Recorder) Begin(client int, key string, kind Kind, in Input) *Pending {
	r.mu.Lock()
	defer r.mu.Unlock()
	idx := r.beginLocked(client, key, kind, in, 0, r.clock())
	return &Pending{r: r, idx: idx}
}

func (r *Recorder) beginLocked(client int, key string, kind Kind, in Input, group int, now int64) int {
	idx := len(r.h.Ops)
	r.h.Ops = append(r.h.Ops, Op{
		ID:            idx,
		Client:        client,
		Process:       r.process,
		Group:         group,
		Final:         in.Final,
		Key:           key,
		Kind:          kind,
		Value:         in.Value,
		Expect:        in.Expect,
		ExpectFound:   in.ExpectFound,
		ExpectVersion: in.ExpectVersion,
		Call:          now,
	})
	r.pending[idx] = true
	return idx
}

// End records the call's return. outcome says what err means for this call:
// OK (err is nil or a normal answer such as not-found or a conflict), Failed
// (definitely not applied) or Unknown (may have been applied). A second End
// on the same Pending is ignored.
func (p *Pending) End(out Output, outcome Outcome, err error) {
	p.r.mu.Lock()
	defer p.r.mu.Unlock()
	if !p.r.pending[p.idx] {
		return
	}
	p.r.endLocked(p.idx, out, outcome, err, p.r.clock())
}

func (r *Recorder) endLocked(idx int, out Output, outcome Outcome, err error, now int64) {
	if !r.pending[idx] {
		return
	}
	delete(r.pending, idx)
	op := &r.h.Ops[idx]
	op.Return = now
	op.Outcome = outcome
	if outcome == OK {
		op.Found = out.Found
		if out.Found {
			op.Out = out.Value
		}
		op.Conflict = out.Conflict
	}
	if err != nil && outcome != OK {
		op.Err = err.Error()
	}
}

// PendingMany is a GetMany call that has begun and not yet ended.
type PendingMany struct {
	r    *Recorder
	idxs []int
}

// BeginMany records the start of a GetMany call over keys: one Op per key,
// sharing a new Group id and the call time.
func (r *Recorder) BeginMany(client int, keys []string, in Input) *PendingMany {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nextGroup++
	now := r.clock()
	pm := &PendingMany{r: r, idxs: make([]int, len(keys))}
	for i, k := range keys {
		pm.idxs[i] = r.beginLocked(client, k, GetMany, Input{Final: in.Final}, r.nextGroup, now)
	}
	return pm
}

// End records the return of every key of the call at one time. outs[i] is
// the result for the i-th key passed to BeginMany; outs is ignored unless
// outcome is OK, and must then have one entry per key.
func (pm *PendingMany) End(outs []Output, outcome Outcome, err error) {
	pm.r.mu.Lock()
	defer pm.r.mu.Unlock()
	if len(pm.idxs) == 0 || !pm.r.pending[pm.idxs[0]] {
		return
	}
	if outcome == OK && len(outs) != len(pm.idxs) {
		outcome = Unknown
		err = errors.Join(err, errors.New("history: GetMany ended with a result count that differs from its key count"))
	}
	now := pm.r.clock()
	for i, idx := range pm.idxs {
		var out Output
		if outcome == OK {
			out = outs[i]
		}
		pm.r.endLocked(idx, out, outcome, err, now)
	}
}

// PendingEvent is an event (a fault window, a phase) that has begun.
type PendingEvent struct {
	r   *Recorder
	idx int
}

// BeginEvent records the start of an interval the report should mark.
func (r *Recorder) BeginEvent(kind EventKind, name, detail string) *PendingEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.clock()
	idx := len(r.h.Events)
	r.h.Events = append(r.h.Events, Event{Kind: kind, Name: name, Start: now, End: now, Detail: detail})
	r.openEvents[idx] = true
	return &PendingEvent{r: r, idx: idx}
}

// End records the end of the event. Until End is called, the event ends
// when History is taken. A second End is ignored.
func (e *PendingEvent) End() {
	e.r.mu.Lock()
	defer e.r.mu.Unlock()
	if !e.r.openEvents[e.idx] {
		return
	}
	delete(e.r.openEvents, e.idx)
	e.r.h.Events[e.idx].End = e.r.clock()
}

// History returns a copy of what has been recorded so far. Calls that have
// not ended appear as Unknown, returning now: a call that never returns may
// have been applied.
func (r *Recorder) History() *History {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.clock()
	h := &History{
		Header: r.h.Header,
		Ops:    append([]Op(nil), r.h.Ops...),
		Events: append([]Event(nil), r.h.Events...),
	}
	if r.h.Header.Meta != nil {
		h.Header.Meta = make(map[string]string, len(r.h.Header.Meta))
		for k, v := range r.h.Header.Meta {
			h.Header.Meta[k] = v
		}
	}
	for idx := range r.pending {
		op := &h.Ops[idx]
		op.Return = now
		op.Outcome = Unknown
		op.Err = "no response recorded"
	}
	for idx := range r.openEvents {
		h.Events[idx].End = now
	}
	return h
}
