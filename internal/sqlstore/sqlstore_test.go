package sqlstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/memstore/memstore/memtest"
)

func TestMain(m *testing.M) { os.Exit(memtest.Main(m)) }

// lockedSQLite returns a store's DB on a fresh SQLite file, a generation
// to write under, and a function that takes the file's write lock from a
// second pool (another process, as far as SQLite can tell) until the
// returned release is called.
func lockedSQLite(t *testing.T) (*DB, int64, func() (release func())) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "lock.db")
	open := func() *DB {
		db, err := memtest.OpenSQLite(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		d, err := New(db, SQLite, "ns")
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	d, other := open(), open()
	ctx := context.Background()
	if err := d.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	gen, err := d.Fence(ctx, 0, "inc")
	if err != nil {
		t.Fatal(err)
	}
	lock := func() func() {
		tx, err := other.db.BeginTx(ctx, nil) // _txlock=immediate: the write lock
		if err != nil {
			t.Fatal(err)
		}
		return func() { _ = tx.Rollback() }
	}
	return d, gen, lock
}

func TestReadsBusyTimeout(t *testing.T) {
	d, _, _ := lockedSQLite(t)
	if d.busyWait != 5*time.Second {
		t.Fatalf("busyWait = %v, want the DSN's busy_timeout of 5s", d.busyWait)
	}
}

// A write whose commit deadline is nearer than busy_timeout runs under
// that deadline: blocked by another process's lock, it gives up at the
// deadline, not after busy_timeout, and writes nothing.
func TestCommitDeadlineNearerThanBusyTimeout(t *testing.T) {
	d, gen, lock := lockedSQLite(t)
	release := lock()
	start := time.Now()
	_, err := d.Apply(context.Background(), []Write{{Key: "k", Value: []byte("v"), Token: "t", Gen: gen}}, start.Add(300*time.Millisecond))
	took := time.Since(start)
	release()
	if err == nil {
		t.Fatal("Apply committed while another connection held the write lock")
	}
	if took >= d.busyWait/2 {
		t.Fatalf("Apply gave up after %v: it waited out busy_timeout (%v), not its 300ms commit deadline", took, d.busyWait)
	}
	row, err := d.Load(context.Background(), "k")
	if err != nil || row.Found {
		t.Fatalf("after the aborted write: row %+v, err %v; want no row", row, err)
	}
}

// A write whose commit deadline is further than busy_timeout waits for the
// lock like any statement, and commits.
func TestCommitWaitsForALockWithinBusyTimeout(t *testing.T) {
	d, gen, lock := lockedSQLite(t)
	release := lock()
	time.AfterFunc(200*time.Millisecond, release)
	if _, err := d.Apply(context.Background(), []Write{{Key: "k", Value: []byte("v"), Token: "t", Gen: gen}}, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	row, err := d.Load(context.Background(), "k")
	if err != nil || !row.Found || string(row.Value) != "v" {
		t.Fatalf("row %+v, err %v; want v", row, err)
	}
}

func TestCommitCtx(t *testing.T) {
	d := &DB{db: memtest.SQLite(t), busyWait: 5 * time.Second}
	if ctx, cancel := d.commitCtx(time.Now().Add(time.Minute)); ctx.Done() != nil {
		t.Error("a commit deadline a minute away got a context that can end: the driver starts a watcher per statement")
	} else {
		cancel()
	}
	for _, c := range []struct {
		busy    time.Duration
		in      time.Duration
		maxOpen int
	}{{5 * time.Second, time.Second, 0}, {-1, time.Minute, 0}, {5 * time.Second, time.Minute, 1}} {
		d.busyWait = c.busy
		d.db.SetMaxOpenConns(c.maxOpen)
		ctx, cancel := d.commitCtx(time.Now().Add(c.in))
		if _, ok := ctx.Deadline(); !ok {
			t.Errorf("busy_timeout %v, deadline in %v, MaxOpenConns %d: no deadline", c.busy, c.in, c.maxOpen)
		}
		cancel()
	}
}

// A group commit of several requests on a pool of one connection, before
// any statement was prepared: the transaction holds the only connection,
// so its statements must not wait for the pool to prepare them. Before
// the fix the group waited for its commit deadline and wrote nothing.
func TestGroupOnAPoolOfOne(t *testing.T) {
	db := memtest.SQLite(t)
	db.SetMaxOpenConns(1)
	d, err := New(db, SQLite, "ns")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := d.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	gen, err := d.Fence(ctx, 0, "inc")
	if err != nil {
		t.Fatal(err)
	}
	commitBy := time.Now().Add(time.Minute)
	var reqs []*request
	for _, k := range []string{"a", "b"} {
		r := &request{writes: []Write{{Key: k, Value: []byte(k), Token: "t" + k, Gen: gen}}, commitBy: commitBy, done: make(chan struct{})}
		reqs = append(reqs, r)
		d.queue = append(d.queue, r)
	}
	ran := make(chan struct{})
	go func() { d.runGroup(); close(ran) }()
	select {
	case <-ran:
	case <-time.After(20 * time.Second):
		t.Fatal("the group commit is still waiting after 20s: a statement waited for a second connection")
	}
	for i, r := range reqs {
		if r.err != nil {
			t.Fatalf("request %d: %v", i, r.err)
		}
	}
	for _, k := range []string{"a", "b"} {
		row, err := d.Load(ctx, k)
		if err != nil || !row.Found || string(row.Value) != k {
			t.Fatalf("%s: row %+v, err %v", k, row, err)
		}
	}
}

// postgresDB returns a store's DB on a fresh PostgreSQL database, and the
// generation of stripe 0 after it was fenced twice, so the first
// generation is a stale one.
func postgresDB(t *testing.T) (*DB, int64) {
	t.Helper()
	d, err := New(memtest.Postgres(t).DB(), Postgres, "ns")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := d.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	gen := int64(0)
	for _, inc := range []string{"inc1", "inc2"} {
		if gen, err = d.Fence(ctx, 0, inc); err != nil {
			t.Fatal(err)
		}
	}
	if gen < 2 {
		t.Fatalf("two fences left generation %d", gen)
	}
	return d, gen
}

// queued puts a request of one write in d's group-commit queue.
func queued(d *DB, w Write) *request {
	r := &request{writes: []Write{w}, commitBy: time.Now().Add(time.Minute), done: make(chan struct{})}
	d.queue = append(d.queue, r)
	return r
}

// xmins counts the transactions that last wrote keys.
func xmins(t *testing.T, d *DB, keys ...string) int {
	t.Helper()
	var n int
	err := d.db.QueryRow(`SELECT count(DISTINCT xmin::text) FROM memstore_entries WHERE ns = 'ns' AND key = ANY($1)`, keys).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// On PostgreSQL, a group of plain writes is one statement: one
// transaction writes them all. Each row is fenced on its own, and a key
// written twice in one group is written twice, in queue order.
func TestPostgresGroupIsOneStatement(t *testing.T) {
	d, gen := postgresDB(t)
	ctx := context.Background()
	a := queued(d, Write{Key: "a", Value: []byte("a"), Token: "ta", Gen: gen})
	b1 := queued(d, Write{Key: "b", Value: []byte("b1"), Token: "tb1", Gen: gen})
	stale := queued(d, Write{Key: "s", Value: []byte("s"), Token: "ts", Gen: gen - 1})
	b2 := queued(d, Write{Key: "b", Value: []byte("b2"), Token: "tb2", Gen: gen})
	del := queued(d, Write{Key: "c", Delete: true, Token: "tc", Gen: gen})
	unfenced := queued(d, Write{Key: "u", Value: []byte("u"), Token: "tu", Unfenced: true})
	d.runGroup()
	for name, r := range map[string]*request{"a": a, "b1": b1, "b2": b2, "delete c": del, "unfenced u": unfenced} {
		if r.err != nil {
			t.Errorf("%s: %v", name, r.err)
		}
	}
	if !errors.Is(stale.err, ErrFenced) {
		t.Errorf("write under a stale generation: err %v, want ErrFenced", stale.err)
	}
	want := map[string]Row{
		"a": {Found: true, Value: []byte("a"), Version: 1},
		"b": {Found: true, Value: []byte("b2"), Version: 2},
		"c": {Found: true, Value: []byte{}, Version: 1, Tombstone: true},
		"u": {Found: true, Value: []byte("u"), Version: 1},
		"s": {},
	}
	for k, w := range want {
		got, err := d.Load(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if got.Found != w.Found || string(got.Value) != string(w.Value) || got.Version != w.Version || got.Tombstone != w.Tombstone {
			t.Errorf("row %s: %+v, want %+v", k, got, w)
		}
	}
	if n := xmins(t, d, "a", "c", "u"); n != 1 {
		t.Errorf("the group's rows a, c, u were written by %d transactions, want 1 statement", n)
	}
}

// A row the database refuses (a key with a NUL byte, which PostgreSQL's
// text cannot hold) fails its own write, not its group's.
func TestPostgresGroupIsolatesARefusedRow(t *testing.T) {
	d, gen := postgresDB(t)
	ctx := context.Background()
	a := queued(d, Write{Key: "a", Value: []byte("a"), Token: "ta", Gen: gen})
	bad := queued(d, Write{Key: "b\x00", Value: []byte("b"), Token: "tb", Gen: gen})
	c := queued(d, Write{Key: "c", Value: []byte("c"), Token: "tc", Gen: gen})
	d.runGroup()
	if a.err != nil || c.err != nil {
		t.Fatalf("the good writes of a group with a refused row failed: a %v, c %v", a.err, c.err)
	}
	if bad.err == nil || errors.Is(bad.err, ErrCommitUnknown) {
		t.Fatalf("the refused row: err %v, want the database's refusal", bad.err)
	}
	for _, k := range []string{"a", "c"} {
		if row, err := d.Load(ctx, k); err != nil || !row.Found {
			t.Fatalf("%s: row %+v, err %v", k, row, err)
		}
	}
}

// Concurrent Applies of plain writes on PostgreSQL queue for one group
// commit: three writers waiting behind a leader share its next statement.
func TestPostgresAppliesShareAStatement(t *testing.T) {
	d, gen := postgresDB(t)
	d.writeMu <- struct{}{} // a leader is busy: the writers queue
	keys := []string{"a", "b", "c"}
	errs := make(chan error, len(keys))
	for _, k := range keys {
		go func() {
			_, err := d.Apply(context.Background(), []Write{{Key: k, Value: []byte(k), Token: "t" + k, Gen: gen}}, time.Now().Add(time.Minute))
			errs <- err
		}()
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		d.qmu.Lock()
		n := len(d.queue)
		d.qmu.Unlock()
		if n == len(keys) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d writers queued behind the busy leader", n, len(keys))
		}
	}
	<-d.writeMu
	for range keys {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := xmins(t, d, keys...); n != 1 {
		t.Errorf("three queued writers were written by %d transactions, want one statement", n)
	}
}
