package check

import (
	"testing"

	"github.com/memstore/memstore/history"
)

// Builders for hand-written histories. Times are plain numbers; every op is
// OK unless wrapped in unknown or failed.

func hist(ops ...history.Op) *history.History {
	h := &history.History{Header: history.Header{Version: history.FormatVersion, Store: "test"}}
	for i, op := range ops {
		op.ID = i
		if op.Outcome == "" {
			op.Outcome = history.OK
		}
		h.Ops = append(h.Ops, op)
	}
	return h
}

func set(client int, key, v string, call, ret int64) history.Op {
	return history.Op{Client: client, Key: key, Kind: history.Set, Value: v, Call: call, Return: ret}
}

func del(client int, key string, call, ret int64) history.Op {
	return history.Op{Client: client, Key: key, Kind: history.Delete, Call: call, Return: ret}
}

func get(client int, key, v string, call, ret int64) history.Op {
	return history.Op{Client: client, Key: key, Kind: history.Get, Out: v, Found: true, Call: call, Return: ret}
}

func getAbsent(client int, key string, call, ret int64) history.Op {
	return history.Op{Client: client, Key: key, Kind: history.Get, Call: call, Return: ret}
}

// cas expects the value expect ("" with found false: expects absent).
func cas(client int, key, expect string, expectFound bool, v string, call, ret int64) history.Op {
	return history.Op{Client: client, Key: key, Kind: history.CAS, Expect: expect, ExpectFound: expectFound, Value: v, Call: call, Return: ret}
}

func conflict(op history.Op) history.Op { op.Conflict = true; return op }

func unknown(op history.Op) history.Op {
	op.Outcome, op.Err = history.Unknown, "timeout"
	return op
}

func failed(op history.Op) history.Op {
	op.Outcome, op.Err = history.Failed, "unavailable"
	return op
}

func final(op history.Op) history.Op { op.Final = true; return op }

// mustValid fails the test if h is not a valid history.
func mustValid(tb testing.TB, h *history.History) *history.History {
	tb.Helper()
	if err := h.Validate(); err != nil {
		tb.Fatalf("test history is invalid: %v", err)
	}
	return h
}

// keyVerdict checks one key of h and returns its result.
func keyVerdict(tb testing.TB, h *history.History, key string, o *Options) KeyResult {
	tb.Helper()
	res := Linearizability(mustValid(tb, h), o)
	for _, kr := range res.Keys {
		if kr.Key == key {
			return kr
		}
	}
	tb.Fatalf("no result for key %q", key)
	return KeyResult{}
}
