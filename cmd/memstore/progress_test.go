package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/memstore/memstore/check"
	"github.com/memstore/memstore/history"
	"github.com/memstore/memstore/verify"
)

// A store keeps its number from its first live line to its verdict,
// whatever finishes first, and the live line tells the failures faults
// caused from the other errors.
func TestProgressNumbersAndErrors(t *testing.T) {
	var buf bytes.Buffer
	p := newProgress(&buf, []string{"memstore", "write-db-delete-cache", "db-only"})
	p.begin("memstore")
	p.begin("write-db-delete-cache")
	p.update(verify.Progress{Store: "write-db-delete-cache", Phase: "workload", Ops: 1000, Errors: 40, FaultErrors: 37, Fault: "redis-pause"})
	p.mu.Lock()
	p.draw()
	p.mu.Unlock()
	// The first store started finishes last, the second first.
	p.done("write-db-delete-cache", passed("write-db-delete-cache"), nil)
	p.done("memstore", passed("memstore"), nil)
	p.stop()
	out := buf.String()
	for _, want := range []string{
		"check: [2/3] write-db-delete-cache: workload 0s, 1000 ops, 37 failed in faults, 3 other errors, fault redis-pause",
		"check: [2/3] write-db-delete-cache ",
		"check: [1/3] memstore ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("progress lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "[1/3] write-db-delete-cache") || strings.Contains(out, "[2/3] memstore") {
		t.Errorf("a store changed its number:\n%s", out)
	}
}

// passed is a result with one OK operation and nothing found.
func passed(store string) *verify.Result {
	h := &history.History{Header: history.Header{Version: history.FormatVersion, Store: store},
		Ops: []history.Op{{ID: 0, Key: "k", Kind: history.Get, Outcome: history.OK, Call: 1, Return: 2}}}
	return &verify.Result{Store: store, ExpectPass: true, History: h, Report: check.All(h, nil), Ops: 1}
}
