package memtest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the driver "pgx"

	"github.com/memstore/memstore/internal/randhex"
)

// EnvPostgresURL names the environment variable that points the PostgreSQL
// fixtures at an existing server instead of a private cluster, e.g.
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable. Its user must
// be allowed to create databases.
const EnvPostgresURL = "MEMSTORE_POSTGRES_URL"

// pgPort names the socket file; the cluster listens on no TCP port, so any
// number is free.
const pgPort = 5432

const templateDB = "memtest_template"

// IdleConns is how many idle connections a PostgreSQL pool of memtest's (and
// of the tools built on it) keeps. database/sql keeps 2 by default, so
// under more concurrent statements than that every release closes a
// connection and the next statement opens another: a PostgreSQL backend
// started, and every prepared statement prepared again, per statement.
// At 16 writers that was most of a write's time.
const IdleConns = 32

// PostgresCluster is a PostgreSQL server to create throwaway databases on:
// either a private cluster started by StartPostgres, or an existing server
// opened by OpenPostgres.
type PostgresCluster struct {
	admin   *sql.DB // connected to the maintenance database "postgres" (or the URL's)
	version int     // server_version_num, e.g. 150018
	dsnFor  func(db string) string

	// Private clusters only.
	dir     string // holds data/, the socket and the log
	ownsDir bool
	proc    *process

	closeOnce sync.Once
	closeErr  error
}

// PostgresDB is one fresh database and a pool connected to it.
type PostgresDB struct {
	cluster *PostgresCluster
	db      *sql.DB
	name    string
	dsn     string
}

// DB is the pool (driver "pgx") connected to the database.
func (p *PostgresDB) DB() *sql.DB { return p.db }

// DSN is a connection URL for the database, for more pools or processes.
func (p *PostgresDB) DSN() string { return p.dsn }

// Name is the database's name.
func (p *PostgresDB) Name() string { return p.name }

// Close closes the pool and drops the database, ending any connection still
// open to it.
func (p *PostgresDB) Close() error {
	err := p.db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p.cluster.awaitDisconnect(ctx, p.name)
	drop := "DROP DATABASE IF EXISTS " + quoteIdent(p.name) + " WITH (FORCE)"
	if _, derr := p.cluster.admin.ExecContext(ctx, drop); derr != nil {
		err = errors.Join(err, fmt.Errorf("drop database %s: %w", p.name, derr))
	}
	return err
}

// Postgres returns a fresh, empty PostgreSQL database for this test, dropped
// when the test ends. It lives on the test binary's private cluster, started
// by the first call, or on the server MEMSTORE_POSTGRES_URL names. A package
// that uses it must call Main from its TestMain, which stops the cluster.
// Missing PostgreSQL binaries fail the test with ErrNotInstalled.
func Postgres(t testing.TB) *PostgresDB {
	t.Helper()
	c, err := binaryCluster()
	if err != nil {
		t.Fatalf("memtest: %v", err)
	}
	db, err := c.CreateDB(t.Context(), t.Name())
	if err != nil {
		t.Fatalf("memtest: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("memtest: %v", err)
		}
	})
	return db
}

// The test binary's cluster: one per process, because a cluster costs a
// second or more to start and a database from a template about 0.1 s. Go has no hook at the
// end of a test binary, so Main stops it; if Main is not called, the kernel
// kills the server when the binary exits and the next binary that starts a
// cluster removes the directory.
var (
	clusterMu  sync.Mutex
	cluster    *PostgresCluster
	clusterErr error
)

func binaryCluster() (*PostgresCluster, error) {
	clusterMu.Lock()
	defer clusterMu.Unlock()
	if cluster == nil && clusterErr == nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if u := os.Getenv(EnvPostgresURL); u != "" {
			cluster, clusterErr = OpenPostgres(ctx, u)
		} else {
			removeStaleClusters()
			cluster, clusterErr = StartPostgres(ctx, "")
		}
	}
	return cluster, clusterErr
}

// Main runs the tests, then stops the PostgreSQL cluster and the shared Redis
// Cluster they used, if any, and returns the exit code for os.Exit. Call it
// from TestMain in every package that uses Postgres or Cluster:
//
//	func TestMain(m *testing.M) { os.Exit(memtest.Main(m)) }
func Main(m *testing.M) int {
	code := m.Run()
	if err := stopSharedCluster(); err != nil {
		fmt.Fprintf(os.Stderr, "memtest: stop the shared Redis Cluster: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	clusterMu.Lock()
	c := cluster
	cluster, clusterErr = nil, errors.New("memtest.Postgres called after memtest.Main stopped the cluster")
	clusterMu.Unlock()
	if c != nil {
		if err := c.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "memtest: stop PostgreSQL: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// StartPostgres creates a throwaway PostgreSQL cluster in dir (an empty or
// new directory; "" means a new temporary directory, removed by Close) and
// starts it, listening on a unix socket in dir only, with durability off
// (fsync, synchronous_commit, full_page_writes) since its data is thrown
// away. Run as root, the server runs as the "postgres" system user, which
// then needs access to dir. The caller must call Close; if the calling
// program dies first, the kernel kills the server.
func StartPostgres(ctx context.Context, dir string) (*PostgresCluster, error) {
	bin, err := findPostgresBin()
	if err != nil {
		return nil, err
	}
	cred, err := postgresCredential()
	if err != nil {
		return nil, err
	}
	c := &PostgresCluster{dir: dir}
	if c.dir == "" {
		// The PID in the name lets removeStaleClusters find the leftovers
		// of a binary that died.
		if c.dir, err = os.MkdirTemp("", fmt.Sprintf("memtest-pg-%d-", os.Getpid())); err != nil {
			return nil, err
		}
		c.ownsDir = true
	} else if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return nil, err
	}
	if c.dir, err = filepath.Abs(c.dir); err != nil {
		return nil, err
	}
	if err := c.start(ctx, bin, cred); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (c *PostgresCluster) start(ctx context.Context, bin string, cred *syscall.Credential) error {
	if cred != nil {
		if err := os.Chown(c.dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return err
		}
	}
	data := filepath.Join(c.dir, "data")
	if err := initData(ctx, bin, data, cred); err != nil {
		return err
	}

	logPath := filepath.Join(c.dir, "postgres.log")
	log, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer log.Close() // the server has its own descriptor
	server := exec.Command(filepath.Join(bin, "postgres"),
		"-D", data,
		"-k", c.dir,
		"-p", strconv.Itoa(pgPort),
		"-c", "listen_addresses=", // unix socket only, in our directory
		// The data is thrown away: no durability, and as little WAL as
		// possible (CREATE DATABASE writes the whole template to it).
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "wal_level=minimal",
		"-c", "max_wal_senders=0",
		"-c", "wal_init_zero=off",
		// Parallel tests, each with a pool of its own.
		"-c", "max_connections=200",
	)
	server.Dir = c.dir
	server.Stdout, server.Stderr = log, log
	server.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if c.proc, err = startProcess(server); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	if err := waitPostgresReady(ctx, data, c.proc); err != nil {
		return fmt.Errorf("postgres in %s: %w\n%s", c.dir, err, tail(logPath, 2048))
	}

	c.dsnFor = func(db string) string {
		q := url.Values{"host": {c.dir}, "port": {strconv.Itoa(pgPort)}, "sslmode": {"disable"}}
		u := url.URL{Scheme: "postgres", User: url.User("postgres"), Path: "/" + db, RawQuery: q.Encode()}
		return u.String()
	}
	if err := c.openAdmin(ctx, c.dsnFor("postgres")); err != nil {
		return err
	}
	// An empty template that nobody may connect to: CREATE DATABASE fails
	// while the template has connections, and template1 is a common target.
	for _, stmt := range []string{
		"CREATE DATABASE " + templateDB + " TEMPLATE template0",
		"ALTER DATABASE " + templateDB + " WITH IS_TEMPLATE true ALLOW_CONNECTIONS false",
	} {
		if _, err := c.admin.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("create template database: %w", err)
		}
	}
	return nil
}

// waitPostgresReady polls postmaster.pid, whose status line the postmaster
// sets to "ready" once it accepts connections; this is what pg_ctl -w waits
// for, checked every millisecond instead of every 100 ms.
func waitPostgresReady(ctx context.Context, data string, proc *process) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	pidFile := filepath.Join(data, "postmaster.pid")
	for {
		if proc.hasExited() {
			return fmt.Errorf("exited during startup: %v", proc.err)
		}
		if b, err := os.ReadFile(pidFile); err == nil {
			lines := strings.Split(string(b), "\n")
			if len(lines) >= 8 && strings.TrimSpace(lines[7]) == "ready" {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w", context.Cause(ctx))
		case <-time.After(time.Millisecond):
		}
	}
}

// OpenPostgres uses the existing server at dsn (a postgres:// URL or a
// key=value string) to create throwaway databases on; its user must be
// allowed to create databases. Close closes the connection, and leaves the
// server running.
func OpenPostgres(ctx context.Context, dsn string) (*PostgresCluster, error) {
	c := &PostgresCluster{}
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", EnvPostgresURL, err)
		}
		c.dsnFor = func(db string) string {
			v := *u
			v.Path, v.RawPath = "/"+db, ""
			return v.String()
		}
	} else {
		c.dsnFor = func(db string) string { return dsn + " dbname=" + db }
	}
	if err := c.openAdmin(ctx, dsn); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *PostgresCluster) openAdmin(ctx context.Context, dsn string) error {
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		return err
	}
	admin.SetMaxOpenConns(8)
	if err := admin.QueryRowContext(ctx, "SELECT current_setting('server_version_num')::int").Scan(&c.version); err != nil {
		admin.Close()
		return fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	c.admin = admin
	return nil
}

// PID is the postmaster's process ID, 0 for a server opened by URL.
func (c *PostgresCluster) PID() int {
	if c.proc == nil {
		return 0
	}
	return c.proc.pid()
}

var unsafeName = regexp.MustCompile(`[^a-z0-9]+`)

// CreateDB creates a fresh, empty database and returns it with a pool
// connected to it. Its name starts with "t_" and hint (a test name, say),
// cleaned, and ends with random characters. PostgresDB.Close drops it.
func (c *PostgresCluster) CreateDB(ctx context.Context, hint string) (*PostgresDB, error) {
	hint = strings.Trim(unsafeName.ReplaceAllString(strings.ToLower(hint), "_"), "_")
	if len(hint) > 40 {
		hint = hint[:40]
	}
	name := "t_" + hint + "_" + randhex.String(4)
	stmt := "CREATE DATABASE " + quoteIdent(name)
	switch {
	case c.proc == nil:
		// A server of someone else's: template1 may have connections or
		// objects; template0 has neither.
		stmt += " TEMPLATE template0"
	case c.version >= 150000:
		// WAL_LOG (the default since 15) copies a small template block by
		// block without the two checkpoints of FILE_COPY.
		stmt += " TEMPLATE " + templateDB + " STRATEGY WAL_LOG"
	default:
		stmt += " TEMPLATE " + templateDB
	}
	if _, err := c.admin.ExecContext(ctx, stmt); err != nil {
		return nil, fmt.Errorf("create database: %w", err)
	}
	p := &PostgresDB{cluster: c, name: name, dsn: c.dsnFor(name)}
	var err error
	if p.db, err = sql.Open("pgx", p.dsn); err == nil {
		p.db.SetMaxIdleConns(IdleConns)
		err = p.db.PingContext(ctx)
	}
	if err != nil {
		if p.db != nil {
			p.Close()
		}
		return nil, fmt.Errorf("connect to database %s: %w", name, err)
	}
	return p, nil
}

// Close closes the admin connection. A private cluster is then shut down
// (fast shutdown: SIGINT, which ends open sessions) and its directory
// removed if StartPostgres created it.
func (c *PostgresCluster) Close() error {
	c.closeOnce.Do(func() {
		if c.admin != nil {
			c.admin.Close()
		}
		if c.proc != nil {
			_ = c.proc.signal(syscall.SIGINT)
			select {
			case <-c.proc.exited:
			case <-time.After(30 * time.Second):
				c.proc.kill()
				c.closeErr = errors.New("postgres did not stop within 30s of SIGINT; killed")
			}
		}
		if c.ownsDir {
			if err := os.RemoveAll(c.dir); err != nil {
				c.closeErr = errors.Join(c.closeErr, err)
			}
		}
	})
	return c.closeErr
}

// awaitDisconnect waits briefly for the backends of a closed pool to exit.
// DROP DATABASE ends the sessions still open, but then waits for them in
// steps of 100 ms, while a closed session is gone within a millisecond or two.
func (c *PostgresCluster) awaitDisconnect(ctx context.Context, db string) {
	deadline := time.Now().Add(200 * time.Millisecond)
	for wait := time.Millisecond; time.Now().Before(deadline); wait = min(2*wait, 20*time.Millisecond) {
		var n int
		err := c.admin.QueryRowContext(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", db).Scan(&n)
		if err != nil || n == 0 {
			return
		}
		time.Sleep(wait)
	}
}

func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// findPostgresBin finds the directory holding initdb and postgres: in PATH,
// else the newest /usr/lib/postgresql/*/bin (Debian keeps them there, out of
// PATH).
func findPostgresBin() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
	}
	var dirs []string
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	for _, m := range matches {
		dir := filepath.Dir(m)
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			dirs = append(dirs, dir)
		}
	}
	if len(dirs) == 0 {
		return "", fmt.Errorf("PostgreSQL (initdb, postgres) not found in PATH or /usr/lib/postgresql/*/bin: %w", ErrNotInstalled)
	}
	version := func(dir string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(dir)), 64)
		return v
	}
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	return dirs[0], nil
}

// postgresCredential is nil unless we are root, which PostgreSQL refuses to
// run as: then it is the "postgres" system user's. The processes are started
// with it directly rather than through runuser or su, which would stand
// between us and the server's signals and parent-death signal.
func postgresCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, PostgreSQL needs the \"postgres\" system user (%v): %w", err, ErrNotInstalled)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("user postgres: bad uid %q or gid %q", u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// removeStaleClusters removes the directories of clusters whose test binary
// died without calling Main, once their server has gone too.
func removeStaleClusters() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "memtest-pg-*-*"))
	for _, dir := range dirs {
		f := strings.SplitN(filepath.Base(dir), "-", 4)
		if len(f) != 4 {
			continue
		}
		owner, err := strconv.Atoi(f[2])
		if err != nil || owner == os.Getpid() || alive(owner) {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid")); err == nil {
			if pid, err := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0]); err == nil && alive(pid) {
				continue
			}
		}
		_ = os.RemoveAll(dir)
	}
}

// alive reports whether a process with this PID runs. A zombie (killed, not
// yet reaped, which takes a while for a child whose parent died) does not.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true // no /proc: trust kill
	}
	// "pid (comm) state ...": comm may hold anything, so look after the last ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) == 0 || f[0] != "Z"
}
