package verify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime/pprof"
	"strconv"
	"time"

	"github.com/memstore/memstore/history"
	"github.com/memstore/memstore/strategies"
)

// CheckHang fires when a store call did not return in time: a Go store's
// call that outlived its context by Config.HangSlack, a worker or adapter
// that left a request unanswered past its watchdog.
const CheckHang = "hang"

// DefaultHangSlack is Config.HangSlack's default.
const DefaultHangSlack = 2 * time.Second

// Hang is a store call that did not return in time. A run never waits for
// one: an adapter or worker process is killed and restarted (its request
// recorded as unknown, a read as failed) and the run goes on; a Go store's
// goroutine cannot be stopped, so the run ends there, with what it
// recorded so far checked and a dump of every goroutine kept.
type Hang struct {
	// Where is the instance, worker or adapter ("instance 2", "adapter 3
	// (pid 4711)").
	Where string `json:"where"`
	// Call is the request in words: `get "k1"`, `set "k1" "c3-17"`, `evict
	// "k2"`, `close`.
	Call string `json:"call"`
	// At is when the call was made, since the start of the run; Waited how
	// long it went unanswered before the watchdog fired.
	At     time.Duration `json:"at_ns"`
	Waited time.Duration `json:"waited_ns"`
	// Action is what the engine did: "killed and restarted", or "run ended".
	Action string `json:"action"`
	// Stderr is the tail of an adapter's or worker's stderr.
	Stderr string `json:"stderr,omitempty"`
	// Goroutines is a dump of every goroutine of this process when an
	// in-process call hung (runtime/pprof "goroutine", debug=2): the hung
	// call's stack is among them. Saved next to the report (see
	// Result.GoroutineDump).
	Goroutines string `json:"-"`
}

func (h Hang) String() string {
	s := fmt.Sprintf("the store stopped answering: %s got %s at %v and did not answer within %v",
		h.Where, h.Call, h.At.Round(time.Millisecond), h.Waited.Round(time.Millisecond))
	switch h.Action {
	case hangKilled:
		s += "; the process was killed and restarted"
	case hangEnded:
		s += "; a goroutine cannot be stopped, so the run ended there (goroutine dump kept)"
	}
	return s
}

const (
	hangKilled = "killed and restarted"
	hangEnded  = "run ended"
)

// requestWords describes a request in a few words.
func requestWords(r request) string {
	switch r.Kind {
	case history.Set:
		return fmt.Sprintf("set %q %q", r.Key, r.Value)
	case "":
		return "a call"
	}
	return fmt.Sprintf("%s %q", r.Kind, r.Key)
}

// onHang records a hang. An in-process one (Action hangEnded) ends the
// workload: every later call on that instance may hang as well, and each
// would cost a timeout.
func (e *engine) onHang(h Hang) {
	e.hangMu.Lock()
	e.hangs = append(e.hangs, h)
	first := len(e.hangs) == 1
	e.hangMu.Unlock()
	if h.Action == hangEnded {
		e.stopWorkload()
	}
	if first {
		e.env.note("%s", h.String())
	}
}

func (e *engine) hung() bool {
	e.hangMu.Lock()
	defer e.hangMu.Unlock()
	for _, h := range e.hangs {
		if h.Action == hangEnded {
			return true
		}
	}
	return false
}

func (e *engine) getHangs() []Hang {
	e.hangMu.Lock()
	defer e.hangMu.Unlock()
	return append([]Hang(nil), e.hangs...)
}

func (e *engine) sinceStart() time.Duration { return time.Since(e.start) }

// watched is the watchdog on every call the engine makes to an in-process
// store: the call runs on a goroutine of its own, and one that has not
// returned HangSlack after its context ended is abandoned and reported as
// hung (with a goroutine dump), its result an error (a write's outcome
// unknown, a read failed).
type watched struct {
	st    strategies.Store
	where string
	slack time.Duration
	clock func() time.Duration
	hang  func(Hang)
}

// errHung is the error of an abandoned call.
type errHung struct{ after time.Duration }

func (e errHung) Error() string {
	return fmt.Sprintf("verify: the call did not return %v after its context ended: abandoned as hung", e.after)
}

func (w *watched) run(ctx context.Context, r request, f func(ctx context.Context) error) error {
	done := make(chan error, 1)
	at := w.clock()
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- fmt.Errorf("panic: %v", p)
			}
		}()
		done <- f(ctx)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	t := time.NewTimer(w.slack)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
	}
	waited := w.clock() - at
	var dump bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&dump, 2)
	w.hang(Hang{Where: w.where, Call: requestWords(r), At: at, Waited: waited, Action: hangEnded, Goroutines: dump.String()})
	return errHung{after: w.slack}
}

func (w *watched) Get(ctx context.Context, key string) (v string, err error) {
	var got string
	err = w.run(ctx, request{Kind: history.Get, Key: key}, func(ctx context.Context) error {
		var err error
		got, err = w.st.Get(ctx, key)
		return err
	})
	if errors.As(err, new(errHung)) {
		return "", err // the call's goroutine may still write got
	}
	return got, err
}

func (w *watched) Set(ctx context.Context, key, value string) error {
	return w.run(ctx, request{Kind: history.Set, Key: key, Value: value}, func(ctx context.Context) error {
		return w.st.Set(ctx, key, value)
	})
}

func (w *watched) Delete(ctx context.Context, key string) error {
	return w.run(ctx, request{Kind: history.Delete, Key: key}, func(ctx context.Context) error {
		return w.st.Delete(ctx, key)
	})
}

func (w *watched) Evict(ctx context.Context, key string) error {
	return w.run(ctx, request{Kind: kindEvict, Key: key}, func(ctx context.Context) error {
		return w.st.Evict(ctx, key)
	})
}

func (w *watched) Inspect(ctx context.Context, key string) (s strategies.Snapshot, err error) {
	var got strategies.Snapshot
	err = w.run(ctx, request{Kind: kindInspect, Key: key}, func(ctx context.Context) error {
		var err error
		got, err = w.st.Inspect(ctx, key)
		return err
	})
	if errors.As(err, new(errHung)) {
		return s, err // the call's goroutine may still write got
	}
	return got, err
}

// Close is bounded too: a store that hung may not close.
func (w *watched) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return w.run(ctx, request{Kind: "close"}, func(context.Context) error { return w.st.Close() })
}

var _ strategies.Store = (*watched)(nil)

// The request kinds beyond the history's: the engine's own calls.
const (
	kindEvict   history.Kind = "evict"
	kindInspect history.Kind = "inspect"
)

// GoroutineDump returns the goroutine dump of the first in-process hang,
// and a file name to save it under, or "" if the run had none.
func (r *Result) GoroutineDump() (name, dump string) {
	for i, h := range r.Hangs {
		if h.Goroutines != "" {
			return "goroutines-" + strconv.Itoa(i) + ".txt", h.Goroutines
		}
	}
	return "", ""
}
