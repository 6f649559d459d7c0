package verify

import (
	"os/exec"
	"syscall"
)

// setDeathSignal has the kernel kill the worker if the engine dies, so a
// crashed run leaves no process behind (the worker also exits when its
// stdin ends).
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
