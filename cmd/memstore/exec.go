package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/memstore/memstore/report"
	"github.com/memstore/memstore/strategies"
	"github.com/memstore/memstore/verify"
)

// defaultExecOpTimeout is --op-timeout's default with --exec: the
// adapter's own timeouts (a Redis socket timeout, a database lock wait)
// should end a call well before it.
const defaultExecOpTimeout = 5 * time.Second

// moreFlags are the flags of `memstore check` beyond the named stores: a
// store in another program (--exec), the instances, the watchdog, runs
// repeated with successive seeds, and each run in a directory of its own.
type moreFlags struct {
	exec      string
	execName  string
	instances int
	opTimeout time.Duration
	runs      int

	runDir string      // the run's directory under --out
	last   *runSummary // what the last run found, for --runs
}

func (m *moreFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&m.exec, "exec", "", "check a store in another program: run `CMD` with sh -c once per store instance and speak the exec protocol (docs/exec-protocol.md) on its stdin and stdout; its stderr goes to exec-stderr.log in the run's directory")
	fs.StringVar(&m.execName, "exec-name", "", "the --exec store's name in the report (default exec)")
	fs.IntVar(&m.instances, "instances", 0, fmt.Sprintf("store instances per store, the clients spread over them (default %d; with --exec, one adapter per client)", verify.DefaultInstances))
	fs.DurationVar(&m.opTimeout, "op-timeout", 0, fmt.Sprintf("bound of each call (default %v; %v with --exec). An --exec adapter that does not answer a request within it is recorded as unknown, killed and restarted, and the report says so: a run never hangs", verify.DefaultOpTimeout, defaultExecOpTimeout))
	fs.IntVar(&m.runs, "runs", 1, "repeat the whole check this many times with successive seeds, each run in its own directory, and print how many runs caught each store")
}

// apply puts the flags into the engine's Config; with --exec the one store
// is the adapter.
func (m *moreFlags) apply(cfg *verify.Config, stores []strategies.Factory, named []string) ([]strategies.Factory, error) {
	switch {
	case m.instances < 0:
		return nil, usagef("check: --instances must not be negative, got %d", m.instances)
	case m.opTimeout < 0:
		return nil, usagef("check: --op-timeout must be positive, got %v", m.opTimeout)
	case m.runs < 1:
		return nil, usagef("check: --runs must be at least 1, got %d", m.runs)
	}
	cfg.Instances = m.instances
	cfg.OpTimeout = m.opTimeout
	if m.exec == "" {
		if m.execName != "" {
			return nil, usagef("check: --exec-name needs --exec")
		}
		return stores, nil
	}
	if len(named) > 0 {
		return nil, usagef("check: --exec checks the adapter's store; leave out --store")
	}
	if cfg.Processes > 0 {
		return nil, usagef("check: --exec starts adapter processes; leave out --processes")
	}
	if cfg.OpTimeout == 0 {
		cfg.OpTimeout = defaultExecOpTimeout
	}
	name := m.execName
	if name == "" {
		name = "exec"
	}
	cfg.Exec = &verify.Exec{Command: m.exec, Name: name}
	return []strategies.Factory{{Name: name, ExpectPass: true}}, nil
}

// openLog sends the adapters' stderr to exec-stderr.log in the run's
// directory; the returned function closes it.
func (m *moreFlags) openLog(cfg *verify.Config) (func(), error) {
	if cfg.Exec == nil {
		return func() {}, nil
	}
	f, err := os.Create(filepath.Join(m.runDir, "exec-stderr.log"))
	if err != nil {
		return nil, setupf("output directory: %v", unwrapPath(err))
	}
	cfg.Exec.Stderr = f
	return func() { f.Close() }, nil
}

// settings are the report's lines for these flags.
func (m *moreFlags) settings(cfg verify.Config) []report.Setting {
	var out []report.Setting
	if cfg.Exec != nil {
		out = append(out,
			report.Setting{Name: "exec", Value: "sh -c " + strconv.Quote(cfg.Exec.Command) + " per instance, exec protocol " + strconv.Itoa(verify.ExecProtocol)},
			report.Setting{Name: "op timeout", Value: cfg.OpTimeout.String() + " (the adapters' watchdog)"})
	} else if cfg.OpTimeout > 0 {
		out = append(out, report.Setting{Name: "op timeout", Value: cfg.OpTimeout.String()})
	}
	if cfg.Instances > 0 {
		out = append(out, report.Setting{Name: "instances", Value: strconv.Itoa(cfg.Instances) + " per store"})
	}
	return out
}

// setupError turns the failed start of an --exec adapter into a setup
// problem: exit status 2, with the adapter's stderr in the message.
func execSetupError(err error) error {
	if err != nil && errors.Is(err, verify.ErrExecHandshake) {
		return setupf("check: %v", err)
	}
	return err
}
