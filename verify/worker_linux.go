package verify

import (
	"os"
	"os/exec"
	"syscall"
)

// setDeathSignal has the kernel kill the child if the engine dies, so a
// crashed run leaves no process behind (workers and adapters also exit when
// their stdin ends), and puts it in a process group of its own, so that
// killTree reaches what `sh -c` started.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}

// killTree kills p and every process of its group with SIGKILL.
func killTree(p *os.Process) error {
	_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
	return p.Kill()
}
