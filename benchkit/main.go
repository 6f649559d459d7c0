package benchkit

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// UsageError is a command line the command cannot run: a bad flag or
// value. A CLI maps it to exit status 2.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return "usage: " + e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Main runs `memstore bench` with args (the arguments after "bench"): it
// measures StandardRows and prints the table, or with --json the JSON array
// of results, on stdout; progress goes to stderr. -h prints the usage and
// returns nil.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return (&Command{Name: "memstore bench"}).Run(ctx, args, stdout, stderr)
}

// Command is Main with room for more rows: the nested bench module adds
// the peer libraries' rows to the same run with Extra.
type Command struct {
	// Name is the command's name in the usage text.
	Name string
	// Extra, if set, returns rows measured after StandardRows, in the same
	// run (same servers, same options).
	Extra func(ctx context.Context, env *Env) ([]Row, error)
}

// Run parses args, runs the rows and writes the report.
func (c *Command) Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	name := c.Name
	if name == "" {
		name = "bench"
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	// A bad flag is the caller's one-line error (UsageError); -h prints
	// the help on stdout, as every memstore command does.
	fs.SetOutput(io.Discard)
	var (
		duration = fs.Duration("duration", time.Second, "how long each row runs at each goroutine count")
		gor      = fs.String("goroutines", "1,16", "comma-separated goroutine counts")
		count    = fs.Int("count", 1, "run everything this many times, interleaved, and report the median")
		asJSON   = fs.Bool("json", false, "print a JSON array of rows instead of the table")
		out      = fs.String("out", "", "also write bench.json and bench.svg into this directory")
		db       = fs.String("db", "", `database: a SQLite file, a postgres:// URL, or "postgres" for a private cluster (default: SQLite in a temp dir)`)
		rurl     = fs.String("redis", "", "Redis to use (default: a private redis-server): redis://host:port/db, or a cluster as redis+cluster://host:port,host:port or a seed list host:port,host:port")
		cluster  = fs.Bool("redis-cluster", false, "run on a private Redis Cluster (3 masters, 3 replicas) instead of a private redis-server")
		run      = fs.String("run", "", "only rows whose name matches this regexp (and their raw baselines)")
		value    = fs.Int("value-size", 128, "bytes per stored value")
		callers  = fs.Int("callers", 200, "goroutines per cold key in the stampede rows")
		cold     = fs.Int("cold-keys", 20, "cold keys (rounds) per stampede row")
		miss     = fs.Int("miss-keys", 50000, "never-cached keys the get-miss row may read per measurement")
		quiet    = fs.Bool("q", false, "no progress lines on stderr")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stdout, "Usage: %s [flags]\n\n"+
				"Measures memstore beside raw go-redis commands and the classic cache strategies,\n"+
				"in one process against one private redis-server (or Redis Cluster) and one database.\n\nFlags:\n", name)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return nil
		}
		return &UsageError{err}
	}
	if fs.NArg() > 0 {
		return &UsageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	gs, err := parseInts(*gor)
	if err != nil {
		return &UsageError{fmt.Errorf("--goroutines: %w", err)}
	}
	if *duration <= 0 {
		return &UsageError{errors.New("--duration must be positive")}
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"count", *count}, {"value-size", *value}, {"callers", *callers}, {"cold-keys", *cold}, {"miss-keys", *miss}} {
		if f.v <= 0 {
			return &UsageError{fmt.Errorf("--%s must be positive", f.name)}
		}
	}
	var filter *regexp.Regexp
	if *run != "" {
		if filter, err = regexp.Compile(*run); err != nil {
			return &UsageError{fmt.Errorf("--run: %w", err)}
		}
	}

	if *cluster && *rurl != "" {
		return &UsageError{errors.New("--redis-cluster and --redis: pick one")}
	}
	env, err := NewEnv(ctx, &EnvOptions{Redis: *rurl, Cluster: *cluster, DB: *db, ValueSize: *value, Callers: *callers, ColdKeys: *cold, MissKeys: *miss})
	if err != nil {
		return err
	}
	defer env.Close()
	rows := StandardRows(env)
	if c.Extra != nil {
		extra, err := c.Extra(ctx, env)
		if err != nil {
			return err
		}
		rows = append(rows, extra...)
	}
	if filter != nil {
		rows = Select(rows, filter)
		if len(rows) == 0 {
			return &UsageError{fmt.Errorf("--run %q matches no row", *run)}
		}
	}
	opts := Options{Duration: *duration, Goroutines: gs, Count: *count}
	if !*quiet {
		opts.Progress = stderr
		fmt.Fprintf(stderr, "%s: %d rows, %v each at goroutines %v; %s\n", name, len(rows), *duration, gs, env)
	}
	results := Run(ctx, rows, opts)
	if err := ctx.Err(); err != nil {
		return err
	}
	if *out != "" {
		if err := writeFiles(*out, results); err != nil {
			return err
		}
	}
	if *asJSON {
		return WriteJSON(stdout, results)
	}
	return WriteTable(stdout, results)
}

// Select returns the rows whose name matches re, and the baselines they
// compare with, in their original order.
func Select(rows []Row, re *regexp.Regexp) []Row {
	keep := map[string]bool{}
	for _, r := range rows {
		if re.MatchString(r.Name) {
			keep[r.Name] = true
			if r.Baseline != "" {
				keep[r.Baseline] = true
			}
		}
	}
	var out []Row
	for _, r := range rows {
		if keep[r.Name] {
			out = append(out, r)
		}
	}
	return out
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func writeFiles(dir string, results []Result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, write := range map[string]func(io.Writer, []Result) error{"bench.json": WriteJSON, "bench.svg": WriteSVG} {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		err = write(f, results)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}
