package verify

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/memstore/memstore/history"
)

// proc is the engine's side of one child process that answers requests in
// JSON lines on its stdin and stdout: a worker process (WorkerMain) or an
// --exec adapter (docs/exec-protocol.md). The two differ only in their
// wire: how a request and an answer are written, and the first exchange.
//
// proc matches answers to requests by id. When the process dies (the
// kill-worker fault, a crash) the calls in flight are answered as its death
// makes them: a write unknown, a read failed; then a new process is
// started, unless the engine is stopping it. A watchdog bounds every
// request: one unanswered for longer than watchdog after it was sent is a
// stall, reported through onStall; the process is killed (which answers
// its calls as above) and restarted, so that a run never waits on a store
// that stopped answering.
type proc struct {
	name     string
	command  func() (*exec.Cmd, error)
	wire     wire
	watchdog time.Duration // 0: none
	ready    time.Duration // bound of the handshake; 0: 15s
	onStall  func(Hang)    // nil: only noted
	note     func(format string, args ...any)
	clock    func() time.Duration // since the run's start, for reports
	stderrTo io.Writer            // every stderr line, prefixed with name; nil: the tail only

	// slot, for a process that takes one request at a time (an adapter
	// without "concurrent"), is held from a request's send to its answer.
	slot chan struct{}

	mu         sync.Mutex
	cmd        *exec.Cmd
	stdin      io.WriteCloser
	alive      bool
	stopping   bool
	next       uint64
	pending    map[uint64]*pendingCall
	done       chan struct{} // closed when the current process's output has ended
	restarting chan struct{} // closed when the restart after a death is over; nil if none
	stderr     *tailBuffer
	starts     int
}

type pendingCall struct {
	req     request
	ch      chan response
	sent    time.Duration
	timer   *time.Timer
	stalled bool // the watchdog fired: the process is being killed for it
}

// wire is what a kind of child process speaks.
type wire interface {
	// handshake runs the first exchange with a new process.
	handshake(ctx context.Context, w io.Writer, r *bufio.Reader) error
	encode(id uint64, r request) ([]byte, error)
	// decode parses one answer line. An error is a broken protocol: the
	// process is killed.
	decode(line []byte) (uint64, response, error)
}

func (p *proc) isAlive() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.alive
}

// process is the running process, nil if there is none.
func (p *proc) process() *os.Process {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.alive || p.cmd == nil {
		return nil
	}
	return p.cmd.Process
}

// kill kills the running process (and its children), as the kill-worker
// fault does; the engine notices the death and restarts it.
func (p *proc) kill() error {
	pr := p.process()
	if pr == nil {
		return errors.New("not running")
	}
	return killTree(pr)
}

// start starts the process and runs the handshake.
func (p *proc) start(ctx context.Context) error {
	cmd, err := p.command()
	if err != nil {
		return err
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	stderr := &tailBuffer{max: 4096}
	cmd.Stderr = stderr
	if p.stderrTo != nil {
		cmd.Stderr = io.MultiWriter(stderr, &linePrefixer{w: p.stderrTo, prefix: "[" + p.name + "] "})
	}
	setDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("verify: start %s: %w", p.name, err)
	}
	br := bufio.NewReaderSize(stdout, 64<<10)
	bound := p.ready
	if bound <= 0 {
		bound = 15 * time.Second
	}
	hctx, cancel := context.WithTimeout(ctx, bound)
	hs := make(chan error, 1)
	go func() { hs <- p.wire.handshake(hctx, stdin, br) }()
	select {
	case err = <-hs:
	case <-hctx.Done():
		err = fmt.Errorf("no answer to the handshake within %v", bound)
		if ctx.Err() != nil {
			err = ctx.Err()
		}
	}
	cancel()
	if err != nil {
		_ = killTree(cmd.Process)
		stdin.Close()
		_ = cmd.Wait()
		return &StartError{Name: p.name, Err: err, Stderr: stderr.String()}
	}
	if c, ok := p.wire.(interface{ concurrent() bool }); ok && !c.concurrent() && p.slot == nil {
		// Set on the first start, before any request.
		p.slot = make(chan struct{}, 1)
	}
	done := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.stdin, p.alive, p.done, p.stderr = cmd, stdin, true, done, stderr
	p.starts++
	if p.pending == nil {
		p.pending = make(map[uint64]*pendingCall)
	}
	p.mu.Unlock()
	go p.read(cmd, br, done)
	return nil
}

// StartError is a child process (worker or --exec adapter) that could not
// be started or failed its handshake. Stderr is the tail of what it wrote
// there.
type StartError struct {
	Name   string
	Err    error
	Stderr string
}

func (e *StartError) Error() string {
	msg := fmt.Sprintf("%s: %v", e.Name, e.Err)
	if s := bytes.TrimSpace([]byte(e.Stderr)); len(s) > 0 {
		msg += "; its stderr: " + string(s)
	} else {
		msg += "; its stderr was empty"
	}
	return msg
}

func (e *StartError) Unwrap() error { return e.Err }

// read delivers the process's answers until its output ends, then answers
// every call still pending as the death of the process mid-call makes it,
// and, unless the engine is stopping the process, starts a new one.
func (p *proc) read(cmd *exec.Cmd, br *bufio.Reader, done chan struct{}) {
	defer close(done)
	for {
		line, err := br.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			id, r, derr := p.wire.decode(line)
			if derr != nil {
				p.note("%s broke the protocol (%v): killed and restarted", p.name, derr)
				_ = killTree(cmd.Process)
				break
			}
			p.mu.Lock()
			pc, ok := p.pending[id]
			delete(p.pending, id)
			p.mu.Unlock()
			if ok {
				p.answer(pc, r)
			} else {
				p.note("%s answered id %d, which is not pending (ignored)", p.name, id)
			}
		}
		if err != nil {
			break
		}
	}
	p.mu.Lock()
	p.alive = false
	pend := p.pending
	p.pending = make(map[uint64]*pendingCall)
	stopping := p.stopping
	p.mu.Unlock()
	for _, pc := range pend {
		r := diedResponse(pc.req.Kind)
		if pc.stalled {
			r.Err = fmt.Sprintf("%s sent no answer within %v: killed", p.name, p.watchdog)
		}
		p.answer(pc, r)
	}
	if stopping {
		return
	}
	restarted := make(chan struct{})
	p.mu.Lock()
	p.restarting = restarted
	p.mu.Unlock()
	go func() {
		defer close(restarted)
		_ = cmd.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		p.mu.Lock()
		stop := p.stopping
		p.mu.Unlock()
		if stop {
			return
		}
		if err := p.start(ctx); err != nil {
			p.note("%s: restart after its death: %v", p.name, err)
		}
	}()
}

// answer hands r to the caller of pc, if it still waits, and frees the
// slot of a serial process.
func (p *proc) answer(pc *pendingCall, r response) {
	if pc.timer != nil {
		pc.timer.Stop()
	}
	pc.ch <- r // buffered: never blocks
	if p.slot != nil {
		<-p.slot
	}
}

func diedResponse(kind history.Kind) response {
	r := response{Err: "worker process died mid-operation", ErrKind: history.Unknown}
	if !kind.IsWrite() {
		r.ErrKind = history.Failed
	}
	return r
}

// timedOut is the answer to a call whose context ended first: it may still
// be applied (a write unknown), a read carries nothing (failed).
func timedOut(kind history.Kind, what string) response {
	r := response{Err: what, ErrKind: history.Unknown}
	if !kind.IsWrite() {
		r.ErrKind = history.Failed
	}
	return r
}

// do sends r and waits for its answer, or for ctx to end. A request whose
// context ends stays pending: its answer, when it comes, is dropped; the
// watchdog still bounds it.
func (p *proc) do(ctx context.Context, r request) response {
	if p.slot != nil {
		select {
		case p.slot <- struct{}{}:
		case <-ctx.Done():
			// Nothing was sent: certainly not applied.
			return response{Err: p.name + " is busy with an earlier request", ErrKind: history.Failed}
		}
	}
	p.mu.Lock()
	if !p.alive {
		p.mu.Unlock()
		if p.slot != nil {
			<-p.slot
		}
		return response{Err: p.name + " is down", ErrKind: history.Failed}
	}
	p.next++
	id := p.next
	line, err := p.wire.encode(id, r)
	if err != nil {
		p.mu.Unlock()
		if p.slot != nil {
			<-p.slot
		}
		return response{Err: err.Error(), ErrKind: history.Failed}
	}
	pc := &pendingCall{req: r, ch: make(chan response, 1), sent: p.now()}
	p.pending[id] = pc
	if p.watchdog > 0 {
		pc.timer = time.AfterFunc(p.watchdog, func() { p.stall(id) })
	}
	_, err = p.stdin.Write(append(line, '\n'))
	p.mu.Unlock()
	if err != nil {
		// The process is dying: read answers the call.
		return <-pc.ch
	}
	select {
	case resp := <-pc.ch:
		return resp
	case <-ctx.Done():
	}
	if p.watchdog == 0 {
		// No watchdog (a worker of an old engine): allow for the trip,
		// then give up on the call.
		t := time.NewTimer(time.Second)
		defer t.Stop()
		select {
		case resp := <-pc.ch:
			return resp
		case <-t.C:
		}
	}
	return timedOut(r.Kind, "no answer from "+p.name+" within the call's timeout")
}

func (p *proc) now() time.Duration {
	if p.clock == nil {
		return 0
	}
	return p.clock()
}

// stall is the watchdog: request id is still unanswered. The process is
// killed; its death answers the request.
func (p *proc) stall(id uint64) {
	p.mu.Lock()
	pc, ok := p.pending[id]
	if !ok || !p.alive {
		p.mu.Unlock()
		return
	}
	pc.stalled = true
	cmd := p.cmd
	stderr := ""
	if p.stderr != nil {
		stderr = p.stderr.String()
	}
	p.mu.Unlock()
	h := Hang{
		Where:  p.name,
		Call:   requestWords(pc.req),
		At:     pc.sent,
		Waited: p.watchdog,
		Action: hangKilled,
		Stderr: stderr,
	}
	if cmd != nil && cmd.Process != nil {
		h.Where = fmt.Sprintf("%s (pid %d)", p.name, cmd.Process.Pid)
		_ = killTree(cmd.Process)
	}
	if p.onStall != nil {
		p.onStall(h)
	} else {
		p.note("%s", h.String())
	}
}

// waitRestarted waits until a restart after a death, if one is under way,
// is over.
func (p *proc) waitRestarted(ctx context.Context) {
	p.mu.Lock()
	ch := p.restarting
	p.mu.Unlock()
	if ch == nil {
		return
	}
	select {
	case <-ch:
	case <-ctx.Done():
	}
}

// stop closes the process's stdin and waits for it to finish its calls and
// exit; after 5s it kills it. A process stopped is not restarted.
func (p *proc) stop() {
	p.mu.Lock()
	p.stopping = true
	ch := p.restarting
	p.mu.Unlock()
	if ch != nil {
		<-ch
	}
	p.mu.Lock()
	cmd, stdin, done := p.cmd, p.stdin, p.done
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	stdin.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = killTree(cmd.Process)
		<-done
	}
	_ = cmd.Wait()
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append([]byte(nil), t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// linePrefixer writes whole lines to w, each prefixed. Writers shared by
// many processes see one line at a time.
type linePrefixer struct {
	w      io.Writer
	prefix string
	buf    []byte
}

var logMu sync.Mutex // one line at a time into a shared log

func (l *linePrefixer) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		logMu.Lock()
		_, _ = fmt.Fprintf(l.w, "%s%s\n", l.prefix, l.buf[:i])
		logMu.Unlock()
		l.buf = l.buf[i+1:]
	}
	if len(l.buf) > 64<<10 {
		l.buf = l.buf[len(l.buf)-64<<10:]
	}
	return len(p), nil
}
