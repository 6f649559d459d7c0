//go:build !linux

package verify

import (
	"os"
	"os/exec"
)

// setDeathSignal does nothing here: the child exits when its stdin ends.
func setDeathSignal(*exec.Cmd) {}

// killTree kills p (not its children: no process groups here).
func killTree(p *os.Process) error { return p.Kill() }
