package verify

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/memstore/memstore"
	"github.com/memstore/memstore/history"
	"github.com/memstore/memstore/strategies"
)

// ExecProtocol is the version of the exec protocol this engine speaks
// (docs/exec-protocol.md). The version changes only when a change would
// break an adapter written against the current one.
const ExecProtocol = 1

// The environment variables an adapter is started with.
const (
	EnvExecRedisURL  = "MEMSTORE_REDIS_URL" // redis://host:port/db: the address the store must use
	EnvExecDBURL     = "MEMSTORE_DB_URL"    // a SQLite file path (no scheme) or a postgres:// URL
	EnvExecNamespace = "MEMSTORE_NAMESPACE" // prefix of every key and row the run owns
	EnvExecInstance  = "MEMSTORE_INSTANCE"  // the instance's index: 0, 1, ...
)

// The features an adapter may announce in its handshake.
const (
	FeatureEvict      = "evict"      // drops one key's cache entry on request
	FeatureInspect    = "inspect"    // shows both tiers of a key
	FeatureTTL        = "ttl"        // takes ttl_ms on set
	FeatureConcurrent = "concurrent" // answers overlapping requests, in any order
)

// Exec is a store that lives in another program: the engine starts
// `sh -c Command` once per store instance and drives it over the exec
// protocol, version 1: JSON lines on the adapter's stdin and stdout,
// pinned in docs/exec-protocol.md. Such a store is expected to pass, and
// every check and every fault that can be applied from outside the process
// applies to it.
type Exec struct {
	// Command is the adapter, run with sh -c. Required.
	Command string
	// Name names the store in reports. Default "exec".
	Name string
	// Dir is the adapters' working directory. Default: this process's.
	Dir string
	// Stderr receives every line the adapters write on stderr, prefixed
	// with the adapter's name ("[adapter 2] ..."). Nil: only each
	// adapter's last lines are kept, for error messages.
	Stderr io.Writer
}

// ErrExecHandshake is wrapped by the error Run returns when an adapter
// could not be started or failed its handshake: a setup problem, not a
// finding. The error names the adapter and shows its stderr.
var ErrExecHandshake = errors.New("verify: the --exec adapter failed its handshake")

// execWire is the exec protocol, version 1.
type execWire struct {
	ttl time.Duration // Config.TTL, sent as ttl_ms when the adapter has "ttl"

	mu       sync.Mutex
	features map[string]bool
}

type execRequest struct {
	ID       uint64  `json:"id"`
	Op       string  `json:"op"`
	Protocol int     `json:"protocol,omitempty"`
	Key      *string `json:"key,omitempty"`
	Value    *string `json:"value,omitempty"`
	TTLms    *int64  `json:"ttl_ms,omitempty"`
}

type execReply struct {
	ID       *uint64  `json:"id"`
	OK       *bool    `json:"ok"`
	Protocol int      `json:"protocol"`
	Features []string `json:"features"`

	Found *bool  `json:"found"`
	Value string `json:"value"`

	Cached     bool   `json:"cached"`
	CacheFound bool   `json:"cache_found"`
	CacheValue string `json:"cache_value"`
	DBFound    bool   `json:"db_found"`
	DBValue    string `json:"db_value"`

	Error   string `json:"error"`
	Outcome string `json:"outcome"`
}

func (w *execWire) has(f string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.features[f]
}

func (w *execWire) handshake(ctx context.Context, out io.Writer, in *bufio.Reader) error {
	line, _ := json.Marshal(execRequest{ID: 0, Op: "init", Protocol: ExecProtocol})
	// An adapter that exits at once may close its stdin before the
	// request is written: what it printed still says why.
	_, werr := out.Write(append(line, '\n'))
	reply, err := in.ReadBytes('\n')
	if err != nil && len(bytes.TrimSpace(reply)) == 0 {
		if werr != nil {
			err = werr
		}
		return fmt.Errorf("no answer to %s (the adapter exited or closed its stdout: %v)", line, err)
	}
	var r execReply
	if err := json.Unmarshal(reply, &r); err != nil {
		return fmt.Errorf("the answer to init is not a JSON object: %q", bytes.TrimSpace(reply))
	}
	switch {
	case r.ID == nil || *r.ID != 0:
		return fmt.Errorf("the answer to init must have \"id\":0, got %q", bytes.TrimSpace(reply))
	case r.OK == nil || !*r.OK:
		return fmt.Errorf("init refused: %q", bytes.TrimSpace(reply))
	case r.Protocol != ExecProtocol:
		return fmt.Errorf("the adapter speaks protocol %d; this checker speaks %d", r.Protocol, ExecProtocol)
	}
	fs := make(map[string]bool)
	for _, f := range r.Features {
		fs[f] = true
	}
	w.mu.Lock()
	w.features = fs
	w.mu.Unlock()
	return nil
}

// concurrent reports whether requests may overlap.
func (w *execWire) concurrent() bool { return w.has(FeatureConcurrent) }

func (w *execWire) encode(id uint64, r request) ([]byte, error) {
	q := execRequest{ID: id, Op: string(r.Kind), Key: &r.Key}
	switch r.Kind {
	case history.Get, history.Delete, kindEvict, kindInspect:
	case history.Set:
		q.Value = &r.Value
		if w.has(FeatureTTL) {
			ms := w.ttl.Milliseconds()
			if w.ttl > 0 && ms == 0 {
				ms = 1
			}
			q.TTLms = &ms
		}
	default:
		return nil, fmt.Errorf("verify: the exec protocol has no %q", r.Kind)
	}
	return json.Marshal(q)
}

func (w *execWire) decode(line []byte) (uint64, response, error) {
	var r execReply
	if err := json.Unmarshal(line, &r); err != nil {
		return 0, response{}, fmt.Errorf("a line that is not a JSON object: %q", bytes.TrimSpace(line))
	}
	if r.ID == nil {
		return 0, response{}, fmt.Errorf("an answer without an id: %q", bytes.TrimSpace(line))
	}
	if r.OK == nil {
		return 0, response{}, fmt.Errorf("an answer without \"ok\": %q", bytes.TrimSpace(line))
	}
	resp := response{ID: *r.ID}
	if !*r.OK {
		resp.Err = r.Error
		if resp.Err == "" {
			resp.Err = "the adapter answered ok:false without an error text"
		}
		switch r.Outcome {
		case "failed":
			resp.ErrKind = history.Failed
		case "unknown", "":
			resp.ErrKind = history.Unknown
		default:
			return 0, response{}, fmt.Errorf("outcome %q (want \"failed\" or \"unknown\"): %q", r.Outcome, bytes.TrimSpace(line))
		}
		return resp.ID, resp, nil
	}
	resp.Value = r.Value
	if r.Found != nil {
		resp.Found = *r.Found
	} else {
		resp.foundMissing = true
	}
	resp.snap = &strategies.Snapshot{
		Cached: r.Cached, CacheFound: r.CacheFound, CacheValue: r.CacheValue,
		DBFound: r.DBFound, DBValue: r.DBValue, CacheDetail: "as the adapter showed it",
	}
	return resp.ID, resp, nil
}

// execStore is one adapter process, as the engine drives a store.
type execStore struct {
	p *proc
	w *execWire
}

// outcomeError is an error whose outcome the store stated (an adapter's
// "outcome"), which the engine takes over its Outcome function.
type outcomeError struct {
	outcome history.Outcome
	msg     string
}

func (e *outcomeError) Error() string            { return e.msg }
func (e *outcomeError) Outcome() history.Outcome { return e.outcome }

func respErr(r response) error {
	if r.ErrKind == "" {
		return nil
	}
	return &outcomeError{outcome: r.ErrKind, msg: r.Err}
}

func (s *execStore) Get(ctx context.Context, key string) (string, error) {
	r := s.p.do(ctx, request{Kind: history.Get, Key: key})
	if err := respErr(r); err != nil {
		return "", err
	}
	if r.foundMissing {
		return "", &outcomeError{outcome: history.Failed, msg: "protocol: a get answer without \"found\""}
	}
	if !r.Found {
		return "", memstore.ErrNotFound
	}
	return r.Value, nil
}

func (s *execStore) Set(ctx context.Context, key, value string) error {
	return respErr(s.p.do(ctx, request{Kind: history.Set, Key: key, Value: value}))
}

func (s *execStore) Delete(ctx context.Context, key string) error {
	return respErr(s.p.do(ctx, request{Kind: history.Delete, Key: key}))
}

func (s *execStore) Evict(ctx context.Context, key string) error {
	if !s.w.has(FeatureEvict) {
		return errors.ErrUnsupported
	}
	return respErr(s.p.do(ctx, request{Kind: kindEvict, Key: key}))
}

func (s *execStore) Inspect(ctx context.Context, key string) (strategies.Snapshot, error) {
	if !s.w.has(FeatureInspect) {
		return strategies.Snapshot{}, errors.ErrUnsupported
	}
	r := s.p.do(ctx, request{Kind: kindInspect, Key: key})
	if err := respErr(r); err != nil {
		return strategies.Snapshot{}, err
	}
	return *r.snap, nil
}

func (s *execStore) Close() error {
	s.p.stop()
	return nil
}

var _ strategies.Store = (*execStore)(nil)

// newExecInstance starts adapter id, reaching Redis at redisURL.
func (e *env) newExecInstance(ctx context.Context, id int, redisURL string, o instanceOptions) (*instance, error) {
	x := e.cfg.Exec
	w := &execWire{ttl: e.cfg.TTL}
	environ := append(os.Environ(),
		EnvExecRedisURL+"="+redisURL,
		EnvExecDBURL+"="+e.db.Arg,
		EnvExecNamespace+"="+e.namespace,
		EnvExecInstance+"="+strconv.Itoa(id),
	)
	p := &proc{
		name: "adapter " + strconv.Itoa(id),
		command: func() (*exec.Cmd, error) {
			cmd := exec.Command("sh", "-c", x.Command)
			cmd.Env = environ
			cmd.Dir = x.Dir
			return cmd, nil
		},
		wire:     w,
		watchdog: e.cfg.OpTimeout,
		ready:    max(10*time.Second, e.cfg.OpTimeout),
		onStall:  o.onHang,
		note:     e.note,
		clock:    o.clock,
		stderrTo: x.Stderr,
	}
	if err := p.start(ctx); err != nil {
		return nil, err
	}
	st := &execStore{p: p, w: w}
	in := &instance{id: id, store: st, proc: p}
	e.onClose(func() error {
		p.stop()
		if o.onClose != nil {
			o.onClose()
		}
		return nil
	})
	return in, nil
}

// execLeftOut says why a fault cannot reach an --exec adapter, or "".
func execLeftOut(name string) string {
	if isDBFault(name) {
		return "an --exec adapter opens its own database connections, which the checker's failing driver cannot reach"
	}
	return ""
}

// killAdapter is the kill-worker fault of an --exec run: SIGKILL a random
// live adapter, and what `sh -c` started, mid-request.
func (e *engine) killAdapter() error {
	rng := e.killRng
	var alive []*proc
	for _, in := range e.instances {
		if in.proc != nil && in.proc.isAlive() {
			alive = append(alive, in.proc)
		}
	}
	if len(alive) == 0 {
		return errors.New("no adapter to kill")
	}
	e.killMu.Lock()
	i := rng.IntN(len(alive))
	e.killMu.Unlock()
	return alive[i].kill()
}

// execFeatures lists what the first adapter announced, for the report.
func (e *engine) execFeatures() []string {
	for _, in := range e.instances {
		if s, ok := in.store.(*execStore); ok {
			s.w.mu.Lock()
			var fs []string
			for f := range s.w.features {
				fs = append(fs, f)
			}
			s.w.mu.Unlock()
			slices.Sort(fs)
			return fs
		}
	}
	return nil
}
