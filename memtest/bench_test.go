package memtest_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/memstore/memstore/memtest"
)

// The benchmarks report, besides wall time, the CPU time the work took
// (cpu-ms/op: this process and the servers together). On a busy machine
// the wall time measures the machine; the CPU time is what a test pays on
// an idle one, where the work is CPU-bound and serial.

// BenchmarkRedisFixture is the cost a test pays for its own redis-server:
// start, first command, stop. (memtest.Redis adds only t.TempDir.)
func BenchmarkRedisFixture(b *testing.B) {
	ctx := context.Background()
	cpu0 := selfAndChildrenCPU()
	for b.Loop() {
		s, err := memtest.StartRedis(ctx, "", nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Client().Set(ctx, "k", "v", 0).Err(); err != nil {
			b.Fatal(err)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, selfAndChildrenCPU()-cpu0)
}

// BenchmarkClusterFixture is the cost a test pays for a Redis Cluster of its
// own (three masters, three replicas): start, healthy, a write in every
// shard, stop. Redis keeps a new master's cluster state at fail for two
// seconds (CLUSTER_WRITABLE_DELAY, fixed at compile time), so no fixture can
// beat that; the rest is ours.
func BenchmarkClusterFixture(b *testing.B) {
	ctx := context.Background()
	cpu0 := selfAndChildrenCPU()
	for b.Loop() {
		c, err := memtest.StartCluster(ctx, "", &memtest.ClusterOptions{Private: true})
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Client().Set(ctx, "k", "v", 0).Err(); err != nil {
			b.Fatal(err)
		}
		if err := c.Close(); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, selfAndChildrenCPU()-cpu0)
}

// BenchmarkPostgresFixture is the cost a test pays for its own database on
// the binary's cluster (started once, outside the timing): create from the
// template, connect, one statement, drop.
func BenchmarkPostgresFixture(b *testing.B) {
	c, err := memtest.BinaryCluster()
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	cpu0 := selfAndChildrenCPU() + treeCPU(c.PID())
	for b.Loop() {
		db, err := c.CreateDB(ctx, b.Name())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := db.DB().ExecContext(ctx, "CREATE TABLE t (i int)"); err != nil {
			b.Fatal(err)
		}
		if err := db.Close(); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, selfAndChildrenCPU()+treeCPU(c.PID())-cpu0)
}

// BenchmarkPostgresCluster is the cost a test binary pays once for its
// cluster: data directory (copied from the initdb cache after the first
// run), server start, template database, shutdown.
func BenchmarkPostgresCluster(b *testing.B) {
	ctx := context.Background()
	cpu0 := selfAndChildrenCPU()
	for b.Loop() {
		c, err := memtest.StartPostgres(ctx, "")
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Close(); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, selfAndChildrenCPU()-cpu0)
}

func reportCPU(b *testing.B, d time.Duration) {
	b.ReportMetric(float64(d.Microseconds())/1000/float64(b.N), "cpu-ms/op")
}

// selfAndChildrenCPU is the CPU time of this process and of its children
// that have been reaped.
func selfAndChildrenCPU() time.Duration {
	var self, children syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children)
	tv := func(t syscall.Timeval) time.Duration { return time.Duration(t.Nano()) }
	return tv(self.Utime) + tv(self.Stime) + tv(children.Utime) + tv(children.Stime)
}

// treeCPU is the CPU time of a running process, of its reaped children and
// of its live ones (a postmaster: the backends it reaped, and the
// checkpointer, WAL writer and others still running).
func treeCPU(pid int) time.Duration {
	total := procCPU(pid, true)
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + strconv.Itoa(pid) + "/children")
	for _, f := range strings.Fields(string(b)) {
		if child, err := strconv.Atoi(f); err == nil {
			total += procCPU(child, false)
		}
	}
	return total
}

func procCPU(pid int, withChildren bool) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	// After the command: state(0) ... utime(11) stime(12) cutime(13) cstime(14), in clock ticks.
	fields := []int{11, 12}
	if withChildren {
		fields = append(fields, 13, 14)
	}
	var ticks int64
	for _, i := range fields {
		if i < len(f) {
			n, _ := strconv.ParseInt(f[i], 10, 64)
			ticks += n
		}
	}
	return time.Duration(ticks) * (time.Second / 100) // USER_HZ is 100 on Linux
}
