//go:build !linux

package verify

import "os/exec"

// setDeathSignal does nothing here: the worker exits when its stdin ends.
func setDeathSignal(*exec.Cmd) {}
