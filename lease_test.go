package memstore_test

import (
	"testing"

	"github.com/memstore/memstore"
)

// A fill lands only under its own lease. A reader whose lease a write
// voided, arriving after another reader took a new lease, must not install
// its older row under that other lease:
//
//	a: lease, read "old" ................................ fill (refused)
//	w:                  begin (drops a's lease), commit, end
//	b:                                        lease, read "new" ...... fill
func TestFillOnlyUnderItsOwnLease(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		g := newGates(t)
		a := store(e, &memstore.Options[string]{Hook: g.hook, DisableReconciler: true})
		b := storeOn(e, e.client(), &memstore.Options[string]{Namespace: a.Namespace(), Hook: g.hook, DisableReconciler: true})
		mustSet(t, a, "k", "old")

		afill := g.pause("a", memstore.StepRedisFill, memstore.Before)
		aread := async(func() error { _, err := a.Get(as("a"), "k"); return err })
		afill.wait(t) // a holds "old" and its lease
		mustSet(t, b, "k", "new")
		bfill := g.pause("b", memstore.StepRedisFill, memstore.Before)
		bread := async(func() error { _, err := b.Get(as("b"), "k"); return err })
		bfill.wait(t) // b holds "new" and a lease of its own

		afill.open()
		if err := await(t, aread); err != nil {
			t.Fatal(err)
		}
		bfill.open()
		if err := await(t, bread); err != nil {
			t.Fatal(err)
		}
		if n := a.Stats().RejectedFills; n != 1 {
			t.Errorf("a's fills refused: %d, want 1 (its lease was voided by the write)", n)
		}
		if n := b.Stats().Fills; n != 1 {
			t.Errorf("b's fills installed: %d, want 1", n)
		}
		mustGet(t, a, "k", "new")
		mustGet(t, b, "k", "new")
	})
}
