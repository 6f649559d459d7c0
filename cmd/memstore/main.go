// Command memstore runs the memstore verifier. Its main job is check: run
// the Jepsen-style checker against memstore and the classic known-bad
// cache strategies (or a user's Redis and database), print what held and
// what broke, and write a report a person reads.
//
// Usage:
//
//	memstore command [flags]
//
// Commands:
//
//	check          check the stores under faults; table, report.html, result.json
//	check-history  check a JSON-lines history recorded elsewhere
//	demo           the bug in ten seconds: a stale read in the naive store, none in memstore
//	bench          measure memstore beside raw Redis and the classic strategies
//	monitor        watch a live namespace: the share of cached entries consistent with the DB
//	help           print this help, or a command's (memstore help check)
//
// memstore alone, -h and --help print the usage. Exit status: 0 when
// every check met its expectation, 1 when one did not (or the run failed),
// 2 for a usage or setup problem (a bad flag, a missing redis-server, an
// unreachable server, an unwritable directory), 130 when interrupted
// (Ctrl-C): memstore check then writes the report of what it had.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/memstore/memstore/benchkit"
)

func main() {
	// Faults make go-redis log every failed dial; the history records them.
	redis.SetLogger(quietLogger{})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// The first Ctrl-C stops the run cleanly; from then on the
		// signal's default applies, so a second one quits at once (the
		// private servers die with this process: see memtest).
		<-ctx.Done()
		stop()
	}()
	err := NewMain().Run(ctx, os.Args[1:])
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// exitInterrupted is the status of a command stopped by Ctrl-C: 128 +
// SIGINT, as the shell reports a process the signal killed.
const exitInterrupted = 130

// exitCode maps an error from Main.Run to an exit code, printing it as one
// line: 0 for success, 2 for a usage or setup error, 130 for an
// interrupted command, 1 for anything else (a check that failed, a run
// that broke down).
func exitCode(err error, stderr io.Writer) int {
	var (
		uerr *usageError
		serr *setupError
		berr *benchkit.UsageError
		ierr *interruptedError
	)
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ierr):
		fmt.Fprintf(stderr, "memstore: %s\n", oneLine(ierr.Error()))
		return exitInterrupted
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(stderr, "memstore: interrupted")
		return exitInterrupted
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

// interruptedError is a command stopped by Ctrl-C after it saved what it
// had: exit status 130.
type interruptedError struct{ msg string }

func (e *interruptedError) Error() string { return "interrupted: " + e.msg }

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

// commandOrder is the order in which help lists the commands: the main
// job first, then the pitch.
var commandOrder = []string{"check", "check-history", "demo", "bench"}

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
			"demo":          {summary: "the bug in ten seconds: a stale read in the naive store, none in memstore", run: runDemo},
			"worker":        {summary: "a worker process of check --processes", run: runWorker, hidden: true},
			"monitor":       {summary: "watch a live namespace: the share of cached entries consistent with the DB within Δt", run: runMonitor},
		},
	}
}

// Run runs the command named by args[0] with the rest of args. No
// command, -h and --help print the usage; only `check` runs a check.
func (m *Main) Run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		m.usage(m.Stdout)
		return nil
	}
	name, args := args[0], args[1:]
	switch name {
	case "-h", "-help", "--help":
		m.usage(m.Stdout)
		return nil
	case "help":
		if len(args) == 0 {
			m.usage(m.Stdout)
			return nil
		}
		// memstore help check: the command's own help.
		name, args = args[0], []string{"-h"}
	}
	cmd, ok := m.commands[name]
	if !ok {
		if strings.HasPrefix(name, "-") {
			return usagef("%s: a flag before any command; flags follow their command, as in 'memstore check %s'", name, name)
		}
		if s := m.suggest(name); s != "" {
			return usagef("unknown command %q; did you mean %q?", name, s)
		}
		return usagef("unknown command %q", name)
	}
	if err := cmd.run(ctx, m, args); !errors.Is(err, errHelpShown) {
		return err
	}
	return nil
}

// suggest returns the command name closest to a mistyped one, "" when none
// is close: at most two edits away (a third for longer names), or a name
// it begins.
func (m *Main) suggest(typed string) string {
	best, bestD := "", 0
	for name, c := range m.commands {
		if c.hidden {
			continue
		}
		d := editDistance(typed, name)
		if strings.HasPrefix(name, typed) && len(typed) >= 3 {
			d = min(d, 1)
		}
		if limit := 2 + len(name)/8; d <= limit && (best == "" || d < bestD || d == bestD && name < best) {
			best, bestD = name, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, with a
// transposition of two neighbours counting as one edit ("chekc").
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range rb {
		d[0][j+1] = j + 1
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

func (m *Main) usage(w io.Writer) {
	fmt.Fprintln(w, "memstore verifies that a Redis + SQL store cannot misremember.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: memstore command [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	names := slices.Clone(commandOrder)
	for name, c := range m.commands {
		if !c.hidden && !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	width := len("help")
	for _, name := range names {
		width = max(width, len(name))
	}
	for _, name := range names {
		fmt.Fprintf(w, "  %-*s  %s\n", width, name, m.commands[name].summary)
	}
	fmt.Fprintf(w, "  %-*s  %s\n", width, "help", "print this help, or a command's: memstore help check")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Start with 'memstore demo' (ten seconds), then 'memstore check'. Run")
	fmt.Fprintln(w, "'memstore COMMAND -h' for a command's flags.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Exit status: 0 when every check met its expectation, 1 when one did not,")
	fmt.Fprintln(w, "2 for a usage or setup problem, 130 when interrupted (Ctrl-C).")
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
