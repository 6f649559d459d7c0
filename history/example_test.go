package history_test

import (
	"bytes"
	"fmt"
	"time"

	"github.com/memstore/memstore/history"
)

func Example() {
	rec := history.NewRecorder(history.Header{Store: "example", Start: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}, nil)

	p := rec.Begin(0, "user:1", history.Set, history.Input{Value: "v1"})
	// err := store.Set(ctx, "user:1", "v1")
	p.End(history.Output{}, history.OK, nil)

	p = rec.Begin(1, "user:1", history.Get, history.Input{})
	// v, err := store.Get(ctx, "user:1")
	p.End(history.Output{Value: "v1", Found: true}, history.OK, nil)

	var buf bytes.Buffer
	if err := history.Write(&buf, rec.History()); err != nil {
		panic(err)
	}
	h, err := history.Read(&buf)
	if err != nil {
		panic(err)
	}
	for _, op := range h.Ops {
		fmt.Println(op.ID, op.Kind, op.Key, op.Value, op.Out, op.Found, op.Outcome)
	}
	// Output:
	// 0 set user:1 v1  false ok
	// 1 get user:1  v1 true ok
}
