package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/memstore/memstore/report"
	"github.com/memstore/memstore/verify"
)

// progress shows a check while it runs, on stderr. On a terminal it keeps
// one live line per store in flight, redrawn in place (store, phase,
// operations, the failures faults caused and the other errors, the fault
// injected now); elsewhere (a file, a pipe, CI) it logs plain lines, one
// per store in flight about every second. Either way, a finished store
// leaves one line: its verdict. A store keeps its number ([2/6]: the
// second of six, in the order of the run) from its first line to its
// last.
type progress struct {
	w     io.Writer
	tty   bool
	total int
	index map[string]int // store -> its number, from 1
	every time.Duration

	mu       sync.Mutex
	running  []string // in start order
	state    map[string]verify.Progress
	started  map[string]time.Time
	finished int
	verdicts map[string]int
	drawn    int // live lines on screen (tty)
	quit     chan struct{}
	wg       sync.WaitGroup
}

func newProgress(w io.Writer, stores []string) *progress {
	p := &progress{
		w:        w,
		tty:      isTerminal(w),
		total:    len(stores),
		index:    make(map[string]int, len(stores)),
		every:    time.Second,
		state:    make(map[string]verify.Progress),
		started:  make(map[string]time.Time),
		verdicts: make(map[string]int),
		quit:     make(chan struct{}),
	}
	for i, s := range stores {
		p.index[s] = i + 1
	}
	if p.tty {
		p.every = 200 * time.Millisecond
	}
	p.wg.Go(p.loop)
	return p
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func (p *progress) loop() {
	t := time.NewTicker(p.every)
	defer t.Stop()
	for {
		select {
		case <-p.quit:
			return
		case <-t.C:
			p.mu.Lock()
			p.draw()
			p.mu.Unlock()
		}
	}
}

// update is the engine's Progress callback; it must return quickly.
func (p *progress) update(s verify.Progress) {
	p.mu.Lock()
	p.state[s.Store] = s
	p.mu.Unlock()
}

func (p *progress) begin(store string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.running = append(p.running, store)
	p.started[store] = time.Now()
	p.state[store] = verify.Progress{Store: store, Phase: "setup"}
}

// done retires a store's live line and prints its verdict.
func (p *progress) done(store string, r *verify.Result, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, s := range p.running {
		if s == store {
			p.running = append(p.running[:i], p.running[i+1:]...)
			break
		}
	}
	p.finished++
	p.clear()
	took := report.Duration(time.Since(p.started[store]))
	n := p.index[store]
	switch {
	case r != nil:
		v := report.Verdict(r)
		p.verdicts[v]++
		fmt.Fprintf(p.w, "check: [%d/%d] %-21s %-6s %s (%d ops, %s)\n", n, p.total, store, v, report.Explain(r), r.Ops, took)
	case err != nil:
		fmt.Fprintf(p.w, "check: [%d/%d] %s: could not run: %v\n", n, p.total, store, err)
	}
	p.draw()
}

// say prints one line between the live ones.
func (p *progress) say(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clear()
	fmt.Fprintf(p.w, format+"\n", args...)
	p.draw()
}

// stop ends the display, leaving the screen clean.
func (p *progress) stop() {
	close(p.quit)
	p.wg.Wait()
	p.mu.Lock()
	p.clear()
	p.mu.Unlock()
}

// line describes one store in flight.
func (p *progress) line(store string) string {
	s := p.state[store]
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s %v, %d ops", store, s.Phase, s.Elapsed.Round(100*time.Millisecond), s.Ops)
	if s.FaultErrors > 0 {
		fmt.Fprintf(&b, ", %d failed in faults", s.FaultErrors)
	}
	if other := s.Errors - s.FaultErrors; other > 0 || s.Errors > 0 {
		fmt.Fprintf(&b, ", %d other errors", other)
	}
	if s.Fault != "" {
		fmt.Fprintf(&b, ", fault %s", s.Fault)
	}
	return b.String()
}

// soFar sums up the stores finished so far: "2 CAUGHT, 1 PASS".
func (p *progress) soFar() string {
	var parts []string
	for _, v := range []string{report.Pass, report.Caught, report.Fail, report.Missed, report.Interrupted} {
		if n := p.verdicts[v]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, v))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return " (so far " + strings.Join(parts, ", ") + ")"
}

// draw shows the stores in flight. The caller holds p.mu.
func (p *progress) draw() {
	if len(p.running) == 0 {
		return
	}
	if !p.tty {
		for _, s := range p.running {
			fmt.Fprintf(p.w, "check: [%d/%d] %s\n", p.index[s], p.total, p.line(s))
		}
		return
	}
	p.clear()
	for i, s := range p.running {
		l := fmt.Sprintf("[%d/%d] %s", p.index[s], p.total, p.line(s))
		if i == 0 {
			l += p.soFar()
		}
		fmt.Fprintf(p.w, "\r\033[K%s\n", truncate(l, 100))
	}
	p.drawn = len(p.running)
}

// clear erases the live lines (tty). The caller holds p.mu.
func (p *progress) clear() {
	if !p.tty || p.drawn == 0 {
		return
	}
	fmt.Fprintf(p.w, "\033[%dA\r\033[J", p.drawn)
	p.drawn = 0
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
