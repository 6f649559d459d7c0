package sqlstore

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/memstore/memstore/memtest"
)

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
