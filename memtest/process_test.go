package memtest_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/memstore/memstore/memtest"
)

const helperEnv = "MEMTEST_HELPER"

// TestHelperProcess is not a test by itself: the tests below run the test
// binary again with MEMTEST_HELPER set, to see what a binary that exits, or
// dies, leaves behind. It prints the servers it started, then ("crash")
// waits to be killed or ("exit") returns, so that Main stops the clusters
// (PostgreSQL's and the shared Redis Cluster).
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		return
	}
	r := memtest.RedisWith(t, &memtest.RedisOptions{Private: true})
	memtest.Postgres(t)
	c, err := memtest.BinaryCluster()
	if err != nil {
		t.Fatal(err)
	}
	rc := memtest.Cluster(t)
	var nodes []string
	for _, n := range rc.Nodes() {
		nodes = append(nodes, fmt.Sprint(n.PID()))
	}
	fmt.Printf("servers %d %d %s %s %s\n", r.PID(), c.PID(), memtest.ClusterDir(c), strings.Join(nodes, ","), memtest.RedisClusterDir(rc))
	if mode == "crash" {
		time.Sleep(time.Minute)
	}
}

type helper struct {
	cmd             *exec.Cmd
	redisPID, pgPID int
	clusterDir      string
	nodePIDs        []int  // the shared Redis Cluster's
	redisClusterDir string // the shared Redis Cluster's
}

func startHelper(t *testing.T, mode string) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	// A private cluster, whatever the environment says.
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, memtest.EnvPostgresURL+"=")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helper{cmd: cmd}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), "servers "); ok {
			var nodes string
			if _, err := fmt.Sscan(line, &h.redisPID, &h.pgPID, &h.clusterDir, &nodes, &h.redisClusterDir); err != nil {
				t.Fatalf("helper printed %q: %v", line, err)
			}
			for _, f := range strings.Split(nodes, ",") {
				pid, err := strconv.Atoi(f)
				if err != nil {
					t.Fatalf("helper printed %q: %v", line, err)
				}
				h.nodePIDs = append(h.nodePIDs, pid)
			}
			go func() { // drain, so that the helper never blocks on a full pipe
				for sc.Scan() {
				}
			}()
			return h
		}
	}
	t.Fatalf("the helper process printed no servers line (%v)", sc.Err())
	return nil
}

// A test binary that dies (crash, -timeout panic, kill -9) takes its servers
// with it: the parent-death signal kills them. The next binary removes the
// cluster directory.
func TestServersDieWithTestBinary(t *testing.T) {
	t.Parallel()
	h := startHelper(t, "crash")
	if err := h.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	h.cmd.Wait()
	if !waitGone(h.redisPID, 5*time.Second) {
		t.Errorf("redis-server (PID %d) outlived its test binary", h.redisPID)
	}
	if !waitGone(h.pgPID, 5*time.Second) {
		t.Fatalf("postgres (PID %d) outlived its test binary", h.pgPID)
	}
	for _, pid := range h.nodePIDs {
		if !waitGone(pid, 5*time.Second) {
			t.Errorf("Redis Cluster node (PID %d) outlived its test binary", pid)
		}
	}
	if !exists(h.clusterDir) {
		t.Fatalf("cluster directory %s is gone already; cannot test its removal", h.clusterDir)
	}
	memtest.RemoveStaleClusters()
	if exists(h.clusterDir) {
		t.Errorf("stale cluster directory %s was not removed", h.clusterDir)
	}
	if !exists(h.redisClusterDir) {
		t.Fatalf("Redis Cluster directory %s is gone already; cannot test its removal", h.redisClusterDir)
	}
	memtest.RemoveStaleRedisClusters()
	if exists(h.redisClusterDir) {
		t.Errorf("stale Redis Cluster directory %s was not removed", h.redisClusterDir)
	}
}

// Main stops the cluster and removes its directory when the binary ends.
func TestMainStopsCluster(t *testing.T) {
	t.Parallel()
	h := startHelper(t, "exit")
	if err := h.cmd.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
	for name, pid := range map[string]int{"redis-server": h.redisPID, "postgres": h.pgPID} {
		if !gone(pid) {
			t.Errorf("%s (PID %d) still runs after the binary exited", name, pid)
		}
	}
	for _, pid := range h.nodePIDs {
		if !gone(pid) {
			t.Errorf("Redis Cluster node (PID %d) still runs after the binary exited", pid)
		}
	}
	for _, dir := range []string{h.clusterDir, h.redisClusterDir} {
		if exists(dir) {
			t.Errorf("cluster directory %s left after the binary exited", dir)
		}
	}
}
