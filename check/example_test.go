package check_test

import (
	"fmt"

	"github.com/memstore/memstore/check"
	"github.com/memstore/memstore/history"
)

func ExampleAll() {
	op := func(client int, kind history.Kind, value string, found bool, call, ret int64) history.Op {
		o := history.Op{Client: client, Key: "user:1", Kind: kind, Call: call, Return: ret, Outcome: history.OK}
		if kind == history.Set {
			o.Value = value
		} else {
			o.Out, o.Found = value, found
		}
		return o
	}
	h := &history.History{Ops: []history.Op{
		op(0, history.Set, "v1", true, 0, 10),
		op(0, history.Set, "v2", true, 20, 30),
		op(1, history.Get, "v2", true, 40, 50),
		op(2, history.Get, "v1", true, 60, 70), // stale: v2 had replaced v1
	}}
	for i := range h.Ops {
		h.Ops[i].ID = i
	}

	r := check.All(h, nil)
	fmt.Println("verdict:", r.Verdict)
	for _, a := range r.Anomalies {
		fmt.Println(a.Kind, a.Ops)
	}
	// Output:
	// verdict: illegal
	// stale_read [0 1 3]
}
