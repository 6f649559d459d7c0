package fault

import (
	"context"
	"errors"
	"os"
)

// KillWorker kills a worker process with SIGKILL on Inject, in the middle of
// whatever it was doing: between a store's DB commit and its cache repair,
// say, which no in-process fault reaches. pick chooses the victim (the
// engine owns the workers); a nil process is an error. Heal does nothing:
// the engine notices the death, records the worker's pending operations as
// unknown and starts a new worker. KillWorker does not wait for the process,
// which would take its exit status from its owner.
func KillWorker(pick func() *os.Process) Nemesis {
	return &instant{name: "kill-worker", do: func(context.Context) error {
		p := pick()
		if p == nil {
			return errors.New("no worker to kill")
		}
		return p.Kill()
	}}
}
