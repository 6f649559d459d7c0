package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/memstore/memstore/memtest"
)

// demoValue is awkward on purpose: a NUL byte, invalid UTF-8, and an integer
// above 2^53 that a float-based encoding would round. It must come back
// byte for byte from both tiers.
var demoValue = []byte("héllo \x00\xff\xfe 9007199254740993")

const demoKey = "demo:user:42"

// runDemo starts a private redis-server and a SQLite file in a temporary
// directory, writes a value to SQLite, copies its bytes to Redis, reads both
// back and compares them, saying what it did and how long each step took.
func runDemo(ctx context.Context, m *Main, args []string) (err error) {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	keep := fs.Bool("keep", false, "keep the temporary directory instead of removing it")
	if err := m.parseFlags(fs, args); err != nil {
		return err
	}
	say := func(start time.Time, format string, args ...any) {
		fmt.Fprintf(m.Stdout, "%s in %s\n", fmt.Sprintf(format, args...), since(start))
	}

	start := time.Now()
	dir, err := os.MkdirTemp("", "memstore-demo-")
	if err != nil {
		return err
	}
	say(start, "created %s", dir)
	defer func() {
		start := time.Now()
		if *keep {
			fmt.Fprintf(m.Stdout, "kept %s\n", dir)
			return
		}
		if rerr := os.RemoveAll(dir); rerr != nil && err == nil {
			err = rerr
		}
		say(start, "removed %s", dir)
	}()

	start = time.Now()
	redisDir := filepath.Join(dir, "redis")
	if err := os.Mkdir(redisDir, 0o755); err != nil {
		return err
	}
	srv, err := memtest.StartRedis(ctx, redisDir, nil)
	if err != nil {
		return err
	}
	say(start, "started redis-server %s on %s (pid %d)", redisVersion(ctx, srv), srv.Addr(), srv.PID())
	defer func() {
		start := time.Now()
		if cerr := srv.Close(); cerr != nil && err == nil {
			err = cerr
		}
		say(start, "stopped redis-server")
	}()

	start = time.Now()
	dbPath := filepath.Join(dir, "demo.db")
	db, err := memtest.OpenSQLite(dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB NOT NULL)"); err != nil {
		return err
	}
	say(start, "opened SQLite %s (WAL) and created table kv", dbPath)

	start = time.Now()
	if _, err := db.ExecContext(ctx, "INSERT INTO kv (key, value) VALUES (?, ?)", demoKey, demoValue); err != nil {
		return err
	}
	say(start, "wrote key %q to SQLite: %d bytes %q", demoKey, len(demoValue), demoValue)

	start = time.Now()
	var fromDB []byte
	if err := db.QueryRowContext(ctx, "SELECT value FROM kv WHERE key = ?", demoKey).Scan(&fromDB); err != nil {
		return err
	}
	say(start, "read it back from SQLite: %d bytes", len(fromDB))

	start = time.Now()
	rdb := srv.Client()
	if err := rdb.Set(ctx, demoKey, fromDB, 0).Err(); err != nil {
		return err
	}
	say(start, "put those bytes in Redis (SET %s)", demoKey)

	start = time.Now()
	fromRedis, err := rdb.Get(ctx, demoKey).Bytes()
	if err != nil {
		return err
	}
	say(start, "read it back from Redis: %d bytes", len(fromRedis))

	if !bytes.Equal(fromDB, demoValue) || !bytes.Equal(fromRedis, demoValue) {
		return fmt.Errorf("round trip FAILED: wrote %q, SQLite returned %q, Redis returned %q", demoValue, fromDB, fromRedis)
	}
	fmt.Fprintf(m.Stdout, "round trip OK: bytes identical (%d bytes through SQLite and Redis)\n", len(demoValue))
	return nil
}

// redisVersion asks the server for its version; "" if it will not say.
func redisVersion(ctx context.Context, srv *memtest.RedisServer) string {
	info, err := srv.Client().Info(ctx, "server").Result()
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
			return v
		}
	}
	return ""
}

// since formats the time since start to a readable precision.
func since(start time.Time) time.Duration {
	d := time.Since(start)
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(100 * time.Microsecond)
	default:
		return d.Round(time.Microsecond)
	}
}
