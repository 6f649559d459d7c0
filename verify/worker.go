package verify

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/memstore/memstore"
	"github.com/memstore/memstore/history"
	"github.com/memstore/memstore/strategies"
)

// EnvWorker is the environment variable set to "1" in worker processes, so
// a program (a test binary) can tell it should run WorkerMain.
const EnvWorker = "MEMSTORE_VERIFY_WORKER"

// WorkerMain is the entry point of a worker process. args are the
// arguments after the word "worker": the store, Redis and DB to open and the
// delays to inject. It opens one store instance and executes the operations
// the engine sends on stdin, one JSON object per line:
//
//	{"id":7,"kind":"set","key":"k1","value":"c3-17"}
//
// answering each on stdout, in the order they complete:
//
//	{"id":7}                                     ok
//	{"id":8,"value":"c3-17","found":true}        a read
//	{"id":9,"err":"...","errkind":"unknown"}      an error, classified
//
// Its first line is {"id":0,"ready":true}, once the store is open. It runs
// calls concurrently and returns when stdin ends (the engine closing it or
// dying) and the calls in flight have finished.
//
// A program that embeds the engine makes its own binary a worker with
//
//	if os.Getenv(verify.EnvWorker) == "1" { err := verify.WorkerMain(ctx, os.Args[2:], os.Stdin, os.Stdout) ... }
//
// or with a "worker" subcommand and Config.WorkerCommand.
func WorkerMain(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		storeName = fs.String("store", "", "store name (strategies.Lookup, or db-only)")
		redisURL  = fs.String("redis", "", "Redis URL")
		dbArg     = fs.String("db", "", "SQLite path or postgres:// URL")
		ns        = fs.String("ns", "", "namespace")
		ttl       = fs.Duration("ttl", 0, "cache TTL (0: the store's default)")
		maxDelay  = fs.Duration("delay", 0, "longest injected delay (0: none)")
		seed      = fs.Int64("seed", 0, "seed of the delays")
		process   = fs.Int("process", 1, "worker number")
		opTimeout = fs.Duration("optimeout", DefaultOpTimeout, "bound of each call")
	)
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("verify worker: %w", err)
	}
	f, err := lookupStore(*storeName)
	if err != nil {
		return fmt.Errorf("verify worker: %w", err)
	}
	ropts, err := redis.ParseURL(*redisURL)
	if err != nil {
		return fmt.Errorf("verify worker: -redis: %w", err)
	}
	e := &env{redisBase: ropts}
	rdb := redis.NewClient(e.redisOptions(""))
	defer rdb.Close()
	db, err := openDBArg(*dbArg)
	if err != nil {
		return fmt.Errorf("verify worker: %w", err)
	}
	defer db.Close()
	var d *delayer
	if *maxDelay > 0 {
		d = newDelayer(*maxDelay, *seed, uint64(500+*process))
	}
	var h memstore.Hook
	if d != nil {
		h = hook(d, nil)
	}
	st, err := f.New(ctx, strategies.Config{Redis: rdb, DB: db, Namespace: *ns, TTL: *ttl, Hook: h})
	if err != nil {
		return fmt.Errorf("verify worker: new %s: %w", f.Name, err)
	}
	defer st.Close()
	loc := &local{in: &instance{store: st}, outcome: DefaultOutcome}

	var mu sync.Mutex
	enc := json.NewEncoder(stdout)
	send := func(r response) {
		mu.Lock()
		defer mu.Unlock()
		_ = enc.Encode(r)
	}
	send(response{Ready: true})
	var wg sync.WaitGroup
	defer wg.Wait()
	sc := bufio.NewScanner(stdin)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		var r request
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return fmt.Errorf("verify worker: bad request %q: %w", sc.Text(), err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, *opTimeout)
			defer cancel()
			resp := loc.do(cctx, r)
			resp.ID = r.ID
			send(resp)
		}()
	}
	return sc.Err()
}

// lookupStore finds a store by name among strategies.All and DBOnly.
func lookupStore(name string) (strategies.Factory, error) {
	if name == strategies.DBOnly().Name {
		return strategies.DBOnly(), nil
	}
	return strategies.Lookup(name)
}

func openDBArg(arg string) (*sql.DB, error) {
	if strings.HasPrefix(arg, "postgres://") || strings.HasPrefix(arg, "postgresql://") {
		return sql.Open("pgx", arg)
	}
	if arg == "" {
		return nil, errors.New("no -db")
	}
	db, err := sql.Open("sqlite", sqliteDSN(arg))
	if err == nil {
		db.SetMaxOpenConns(1) // as the engine's instances (env.newInstance)
	}
	return db, err
}

// worker is the engine's side of one worker process: it sends calls and
// matches answers. When the process dies unexpectedly (the kill-worker
// fault), the calls in flight are answered as its death makes them (writes
// unknown, reads failed) and a new process is started.
type worker struct {
	e        *engine
	proc     int // 1, 2, ...
	rec      *history.Recorder
	redisURL string // the worker's Redis: the server, or a proxy before it

	mu         sync.Mutex
	cmd        *exec.Cmd
	stdin      io.WriteCloser
	alive      bool
	stopping   bool
	next       uint64
	pending    map[uint64]pendingCall
	done       chan struct{} // closed when the current process's output has ended
	restarting chan struct{} // closed when the restart after a death is over; nil if none
	stderr     *tailBuffer
}

type pendingCall struct {
	kind history.Kind
	ch   chan response
}

func (w *worker) name() string                { return fmt.Sprintf("worker %d", w.proc) }
func (w *worker) recorder() *history.Recorder { return w.rec }

func (w *worker) isAlive() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.alive
}

// process is the running process, nil if there is none.
func (w *worker) process() *os.Process {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.alive || w.cmd == nil {
		return nil
	}
	return w.cmd.Process
}

func (w *worker) command() (*exec.Cmd, error) {
	e := w.e
	args := []string{
		"-store", e.cfg.Store.Name,
		"-redis", w.redisURL,
		"-db", e.env.dbArg,
		"-ns", e.env.namespace,
		"-ttl", e.cfg.TTL.String(),
		"-seed", strconv.FormatInt(e.cfg.Seed, 10),
		"-process", strconv.Itoa(w.proc),
		"-optimeout", e.cfg.OpTimeout.String(),
	}
	if !e.cfg.NoDelay {
		args = append(args, "-delay", e.cfg.MaxDelay.String())
	}
	var cmd *exec.Cmd
	if len(e.cfg.WorkerCommand) > 0 {
		c := e.cfg.WorkerCommand
		cmd = exec.Command(c[0], append(append([]string(nil), c[1:]...), args...)...)
	} else {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		cmd = exec.Command(exe, append([]string{"worker"}, args...)...)
	}
	cmd.Env = append(os.Environ(), EnvWorker+"=1")
	setDeathSignal(cmd)
	return cmd, nil
}

// start starts the process and waits for its ready line.
func (w *worker) start(ctx context.Context) error {
	cmd, err := w.command()
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
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("verify: start worker: %w", err)
	}
	dec := json.NewDecoder(bufio.NewReader(stdout))
	ready := make(chan error, 1)
	go func() {
		var r response
		if err := dec.Decode(&r); err != nil || !r.Ready {
			ready <- fmt.Errorf("no ready line (%v)", err)
			return
		}
		ready <- nil
	}()
	select {
	case err = <-ready:
	case <-time.After(15 * time.Second):
		err = errors.New("no ready line within 15s")
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return fmt.Errorf("verify: %s: %v; stderr: %s", w.name(), err, stderr.String())
	}
	done := make(chan struct{})
	w.mu.Lock()
	w.cmd, w.stdin, w.alive, w.done, w.stderr = cmd, stdin, true, done, stderr
	if w.pending == nil {
		w.pending = make(map[uint64]pendingCall)
	}
	w.mu.Unlock()
	go w.read(cmd, dec, done)
	return nil
}

// read delivers the process's answers until its output ends; then every
// call still pending is answered as the death of the process mid-call makes
// it: a write unknown, a read failed. Unless the engine is stopping the
// worker, a new process is started.
func (w *worker) read(cmd *exec.Cmd, dec *json.Decoder, done chan struct{}) {
	defer close(done)
	for {
		var r response
		if err := dec.Decode(&r); err != nil {
			break
		}
		w.mu.Lock()
		pc, ok := w.pending[r.ID]
		delete(w.pending, r.ID)
		w.mu.Unlock()
		if ok {
			pc.ch <- r
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.alive = false
	for id, pc := range w.pending {
		pc.ch <- diedResponse(pc.kind)
		delete(w.pending, id)
	}
	if w.stopping {
		return
	}
	restarted := make(chan struct{})
	w.restarting = restarted
	go func() {
		defer close(restarted)
		_ = cmd.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := w.start(ctx); err != nil {
			w.e.env.note("%s: restart after its death: %v", w.name(), err)
		}
	}()
}

func diedResponse(kind history.Kind) response {
	r := response{Err: "worker process died mid-operation", ErrKind: history.Unknown}
	if kind.IsRead() {
		r.ErrKind = history.Failed
	}
	return r
}

func (w *worker) do(ctx context.Context, r request) response {
	w.mu.Lock()
	if !w.alive {
		w.mu.Unlock()
		// Nothing was sent: certainly not applied.
		return response{Err: "worker process is down", ErrKind: history.Failed}
	}
	w.next++
	r.ID = w.next
	ch := make(chan response, 1)
	w.pending[r.ID] = pendingCall{kind: r.Kind, ch: ch}
	line, _ := json.Marshal(r)
	_, err := w.stdin.Write(append(line, '\n'))
	w.mu.Unlock()
	if err != nil {
		w.mu.Lock()
		_, still := w.pending[r.ID]
		delete(w.pending, r.ID)
		w.mu.Unlock()
		if still {
			return diedResponse(r.Kind)
		}
		return <-ch
	}
	// The worker bounds the call by the same timeout; allow for the trip.
	select {
	case resp := <-ch:
		return resp
	case <-ctx.Done():
	}
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case resp := <-ch:
		return resp
	case <-t.C:
	}
	w.mu.Lock()
	_, still := w.pending[r.ID]
	delete(w.pending, r.ID)
	w.mu.Unlock()
	if !still {
		return <-ch
	}
	resp := response{Err: "no answer from " + w.name(), ErrKind: history.Unknown}
	if r.Kind.IsRead() {
		resp.ErrKind = history.Failed
	}
	return resp
}

// waitRestarted waits until a restart after a death, if one is under way,
// is over.
func (w *worker) waitRestarted(ctx context.Context) {
	w.mu.Lock()
	ch := w.restarting
	w.mu.Unlock()
	if ch == nil {
		return
	}
	select {
	case <-ch:
	case <-ctx.Done():
	}
}

// stop closes the process's stdin and waits for it to finish its calls and
// exit; after 5s it kills it. A worker stopped is not restarted.
func (w *worker) stop() {
	w.mu.Lock()
	w.stopping = true
	ch := w.restarting
	w.mu.Unlock()
	if ch != nil {
		<-ch
	}
	w.mu.Lock()
	cmd, stdin, done := w.cmd, w.stdin, w.done
	w.cmd = nil
	w.mu.Unlock()
	if cmd == nil {
		return
	}
	stdin.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
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
