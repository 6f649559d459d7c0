// Command memstore runs the memstore verifier. Its main job is check: run
// the Jepsen-style checker against memstore and the classic known-bad
// cache strategies (or a user's Redis and database), print what held and
// what broke, and write a report a person reads.
//
// Usage:
//
//	memstore [command] [flags]
//
// Commands:
//
//	check          check the stores under faults; table, report.html, result.json (default)
//	check-history  check a JSON-lines history recorded elsewhere
//	bench          measure memstore beside raw Redis and the classic strategies
//	demo           start a private redis-server and a SQLite database, round-trip a value
//	help           print this help
//
// Exit status: 0 when every check met its expectation, 1 when one did not
// (or the run failed), 2 for a usage or setup problem (a bad flag, a
// missing redis-server, an unreachable server, an unwritable directory).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/memstore/memstore/benchkit"
)

func main() {
	// Faults make go-redis log every failed dial; the history records them.
	redis.SetLogger(quietLogger{})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := NewMain().Run(ctx, os.Args[1:])
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// exitCode maps an error from Main.Run to an exit code, printing it as one
// line: 0 for success, 2 for a usage or setup error, 1 for anything else
// (a check that failed, a run that broke down).
func exitCode(err error, stderr io.Writer) int {
	var (
		uerr *usageError
		serr *setupError
		berr *benchkit.UsageError
	)
	switch {
	case err == nil:
		return 0
	case errors.As(err, &uerr):
		fmt.Fprintf(stderr, "memstore: %s (see 'memstore help')\n", oneLine(uerr.msg))
		return 2
	case errors.As(err, &serr):
		fmt.Fprintf(stderr, "memstore: %s\n", oneLine(serr.msg))
		return 2
	case errors.As(err, &berr):
		fmt.Fprintf(stderr, "memstore: bench: %s (see 'memstore bench -h')\n", oneLine(berr.Err.Error()))
		return 2
	default:
		fmt.Fprintf(stderr, "memstore: %s\n", oneLine(err.Error()))
		return 1
	}
}

// oneLine joins the lines of a message (errors.Join and some drivers
// separate with newlines and tabs), so that every error is one line on
// stderr.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e *usageError) Error() string { return "usage: " + e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// setupError is an environment the command cannot run in: a server that is
// missing or unreachable, a directory it cannot write. Exit status 2, like
// a usage error, with the fix in the message.
type setupError struct{ msg string }

func (e *setupError) Error() string { return e.msg }

func setupf(format string, args ...any) error {
	return &setupError{msg: fmt.Sprintf(format, args...)}
}

// Main is the memstore program, with its inputs and outputs, so that tests
// can run it in-process.
type Main struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// WorkerCommand starts a worker process of `check --processes`; the
	// engine appends the worker's arguments. Nil: this executable with the
	// argument "worker".
	WorkerCommand []string

	commands map[string]command
}

type command struct {
	summary string
	run     func(ctx context.Context, m *Main, args []string) error
	hidden  bool // not listed by help
}

// defaultCommand runs when no command is named (or the first argument is a
// flag).
const defaultCommand = "check"

// NewMain returns a Main reading the process's stdin and writing to its
// stdout and stderr.
func NewMain() *Main {
	return &Main{
		Stdin:  os.Stdin,
		Stdout: os.Stdout,
		Stderr: os.Stderr,
		commands: map[string]command{
			"check":         {summary: "check the stores under faults; print a table, write report.html and result.json", run: runCheck},
			"check-history": {summary: "check a JSON-lines history recorded elsewhere (memstore check-history FILE)", run: runCheckHistory},
			"bench":         {summary: "measure memstore beside raw Redis and the classic strategies", run: runBench},
			"demo":          {summary: "start a private redis-server and a SQLite database, round-trip a value", run: runDemo},
			"worker":        {summary: "a worker process of check --processes", run: runWorker, hidden: true},
		},
	}
}

// Run runs the command named by args[0] (the default one when args is empty
// or starts with a flag) with the rest of args.
func (m *Main) Run(ctx context.Context, args []string) error {
	name := defaultCommand
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	switch name {
	case "help", "-h", "-help", "--help":
		m.usage(m.Stdout)
		return nil
	}
	cmd, ok := m.commands[name]
	if !ok {
		return usagef("unknown command %q", name)
	}
	if err := cmd.run(ctx, m, args); !errors.Is(err, errHelpShown) {
		return err
	}
	return nil
}

func (m *Main) usage(w io.Writer) {
	fmt.Fprintln(w, "memstore verifies that a Redis + SQL store cannot misremember.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: memstore [command] [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	names := make([]string, 0, len(m.commands))
	width := len("help")
	for name, c := range m.commands {
		if !c.hidden {
			names = append(names, name)
			width = max(width, len(name))
		}
	}
	sort.Strings(names)
	for _, name := range names {
		suffix := ""
		if name == defaultCommand {
			suffix = " (default)"
		}
		fmt.Fprintf(w, "  %-*s  %s%s\n", width, name, m.commands[name].summary, suffix)
	}
	fmt.Fprintf(w, "  %-*s  %s\n", width, "help", "print this help")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'memstore COMMAND -h' for a command's flags. Exit status: 0 when every")
	fmt.Fprintln(w, "check met its expectation, 1 when one did not, 2 for a usage or setup problem.")
}

// parseFlags parses the flags of a command that takes no arguments,
// turning flag errors into usage errors (one line, exit 2) and -h into the
// command's help on stdout.
func (m *Main) parseFlags(fs *flag.FlagSet, args []string) error {
	_, err := m.parseArgs(fs, args, fmt.Sprintf("Usage: memstore %s [flags]\n", fs.Name()), 0)
	return err
}

// parseArgs parses a command's flags and exactly n positional arguments,
// which may come before, between or after the flags, and returns the
// arguments. -h prints help, then the flags' defaults, on stdout.
func (m *Main) parseArgs(fs *flag.FlagSet, args []string, help string, n int) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		err := fs.Parse(args)
		switch {
		case errors.Is(err, flag.ErrHelp):
			fs.SetOutput(m.Stdout)
			fmt.Fprint(m.Stdout, help)
			fs.PrintDefaults()
			return nil, errHelpShown
		case err != nil:
			return nil, usagef("%s: %v", fs.Name(), err)
		}
		if fs.NArg() == 0 {
			break
		}
		if len(pos) == n {
			return nil, usagef("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) < n {
		return nil, usagef("%s: missing argument (see 'memstore %s -h')", fs.Name(), fs.Name())
	}
	return pos, nil
}

// errHelpShown ends a command that printed its help; Run reports success.
var errHelpShown = errors.New("help shown")
