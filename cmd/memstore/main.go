// Command memstore runs the memstore verifier. For now it has one
// subcommand, demo, which shows that the real infrastructure the verifier
// needs is in place: a private redis-server and a SQLite file, and a value
// that goes through both and comes back byte for byte.
//
// Usage:
//
//	memstore [command] [flags]
//
// Commands:
//
//	demo   start a private redis-server and a SQLite database, round-trip a value (default)
//	help   print this help
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
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := NewMain().Run(ctx, os.Args[1:])
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// exitCode maps an error from Main.Run to an exit code, printing it as one
// line: 0 for success, 2 for a usage error, 1 for anything else.
func exitCode(err error, stderr io.Writer) int {
	var uerr *usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &uerr):
		fmt.Fprintf(stderr, "memstore: %v (see 'memstore help')\n", uerr.msg)
		return 2
	default:
		fmt.Fprintf(stderr, "memstore: %v\n", err)
		return 1
	}
}

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e *usageError) Error() string { return "usage: " + e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// Main is the memstore program, with its outputs, so that tests can run it
// in-process.
type Main struct {
	Stdout io.Writer
	Stderr io.Writer

	commands map[string]command
}

type command struct {
	summary string
	run     func(ctx context.Context, m *Main, args []string) error
}

// defaultCommand runs when no command is named (or the first argument is a
// flag).
const defaultCommand = "demo"

// NewMain returns a Main writing to the process's stdout and stderr.
func NewMain() *Main {
	return &Main{
		Stdout: os.Stdout,
		Stderr: os.Stderr,
		commands: map[string]command{
			"demo": {"start a private redis-server and a SQLite database, round-trip a value", runDemo},
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
	for name := range m.commands {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		suffix := ""
		if name == defaultCommand {
			suffix = " (default)"
		}
		fmt.Fprintf(w, "  %-6s %s%s\n", name, m.commands[name].summary, suffix)
	}
	fmt.Fprintln(w, "  help   print this help")
}

// parseFlags parses a command's flags, turning flag errors into usage
// errors (one line, exit 2) and -h into the command's help on stdout.
func (m *Main) parseFlags(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(m.Stdout)
		fmt.Fprintf(m.Stdout, "Usage: memstore %s [flags]\n", fs.Name())
		fs.PrintDefaults()
		return errHelpShown
	case err != nil:
		return usagef("%s: %v", fs.Name(), err)
	case fs.NArg() > 0:
		return usagef("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
}

// errHelpShown ends a command that printed its help; Run reports success.
var errHelpShown = errors.New("help shown")
