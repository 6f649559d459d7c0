package verify

import (
	"bufio"
	"bytes"
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
	"sync"

	"github.com/memstore/memstore"
	"github.com/memstore/memstore/history"
	"github.com/memstore/memstore/internal/testenv"
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
	r, err := testenv.Parse(*redisURL)
	if err != nil {
		return fmt.Errorf("verify worker: -redis: %w", err)
	}
	rdb := r.NewClient("")
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
		h = hook(d, nil, nil)
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
	if arg == "" {
		return nil, errors.New("no -db")
	}
	d := &testenv.DB{Dialect: testenv.SQLite, Arg: arg}
	if testenv.IsPostgresURL(arg) {
		d.Dialect = testenv.Postgres
	}
	return d.Open() // tuned as the engine's instances (env.newInstance)
}

// worker is the engine's side of one worker process: a proc speaking the
// worker wire, whose clients record into a history of its own (Process).
type worker struct {
	*proc
	e        *engine
	procNum  int // 1, 2, ...
	rec      *history.Recorder
	redisURL string // the worker's Redis: the server, or a proxy before it
}

func newWorker(e *engine, n int, redisURL string) *worker {
	w := &worker{e: e, procNum: n, redisURL: redisURL, rec: history.NewRecorder(
		history.Header{Store: e.cfg.Store.Name, Seed: e.cfg.Seed, Start: e.start},
		&history.RecorderOptions{Process: n, Clock: e.clock})}
	w.proc = &proc{
		name: fmt.Sprintf("worker %d", n),
		wire: workerWire{},
		// The worker bounds each call by OpTimeout itself; a call that
		// outlives that by the slack is hung in the worker's store.
		watchdog: e.cfg.OpTimeout + e.cfg.HangSlack,
		onStall:  e.onHang,
		note:     e.env.note,
		clock:    e.sinceStart,
	}
	w.proc.command = w.command
	return w
}

func (w *worker) name() string                { return w.proc.name }
func (w *worker) recorder() *history.Recorder { return w.rec }

func (w *worker) command() (*exec.Cmd, error) {
	e := w.e
	args := []string{
		"-store", e.cfg.Store.Name,
		"-redis", w.redisURL,
		"-db", e.env.db.Arg,
		"-ns", e.env.namespace,
		"-ttl", e.cfg.TTL.String(),
		"-seed", strconv.FormatInt(e.cfg.Seed, 10),
		"-process", strconv.Itoa(w.procNum),
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
	return cmd, nil
}

// workerWire is the worker protocol of WorkerMain.
type workerWire struct{}

func (workerWire) handshake(_ context.Context, _ io.Writer, r *bufio.Reader) error {
	line, err := r.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("no ready line (%v)", err)
	}
	var resp response
	if err := json.Unmarshal(line, &resp); err != nil || !resp.Ready {
		return fmt.Errorf("no ready line (got %q)", bytes.TrimSpace(line))
	}
	return nil
}

func (workerWire) encode(id uint64, r request) ([]byte, error) {
	r.ID = id
	return json.Marshal(r)
}

func (workerWire) decode(line []byte) (uint64, response, error) {
	var r response
	err := json.Unmarshal(line, &r)
	return r.ID, r, err
}
