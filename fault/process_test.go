package fault_test

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"

	"github.com/memstore/memstore/fault"
)

func TestKillWorker(t *testing.T) {
	t.Parallel()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-waited
	})

	n := fault.KillWorker(func() *os.Process { return cmd.Process })
	inject(t, n)
	err := <-waited
	waited <- err // for the cleanup
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("worker ended with %v, want killed", err)
	}
	if ws := exit.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("worker ended with %v, want SIGKILL", exit)
	}
	heal(t, n)

	if err := fault.KillWorker(func() *os.Process { return nil }).Inject(t.Context()); err == nil {
		t.Error("Inject with no worker to kill succeeded")
	}
}
