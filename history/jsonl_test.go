package history_test

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/memstore/memstore/history"
)

func TestReadExample(t *testing.T) {
	t.Parallel()
	f, err := os.Open("testdata/example.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, err := history.Read(f)
	if err != nil {
		t.Fatalf("Read(example.jsonl): %v", err)
	}
	if got, want := h.Header.Store, "example"; got != want {
		t.Errorf("store = %q, want %q", got, want)
	}
	if got, want := h.Header.Start, time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC); !got.Equal(want) {
		t.Errorf("start = %v, want %v", got, want)
	}
	if got, want := len(h.Ops), 10; got != want {
		t.Fatalf("%d ops, want %d", got, want)
	}
	if got, want := len(h.Events), 2; got != want {
		t.Fatalf("%d events, want %d", got, want)
	}
	cas := h.Ops[2]
	want := history.Op{ID: 2, Client: 2, Key: "user:1", Kind: history.CAS, Value: "b", Expect: "a", ExpectFound: true,
		ExpectVersion: 1, Call: 7000, Return: 9000, Outcome: history.OK}
	if diff := cmp.Diff(want, cas); diff != "" {
		t.Errorf("op 2 mismatch (-want +got):\n%s", diff)
	}
	if got := h.Ops[4]; got.Group != 1 || got.Process != 1 || !got.Found || got.Out != "b" {
		t.Errorf("op 4 = %+v, want a getmany of group 1 in process 1 that found \"b\"", got)
	}
	if got := h.Ops[9]; !got.Final || got.Found {
		t.Errorf("op 9 = %+v, want a final read that found nothing", got)
	}
	if got := h.Events[0]; got.Kind != history.Fault || got.Name != "redis-pause" || got.End != 20000 {
		t.Errorf("event 0 = %+v, want the redis-pause fault", got)
	}
}

func sampleHistory() *history.History {
	return &history.History{
		Header: history.Header{
			Version: history.FormatVersion,
			Store:   "memstore",
			Seed:    -3,
			Start:   time.Date(2024, 5, 6, 7, 8, 9, 10, time.UTC),
			Meta:    map[string]string{"db": "sqlite", "quote": `a "b" <c>`},
		},
		Ops: []history.Op{
			{ID: 0, Client: 1, Key: "k", Kind: history.Set, Value: "", Call: 0, Return: 10, Outcome: history.OK},
			{ID: 1, Client: 2, Process: 3, Key: "k", Kind: history.Get, Out: "", Found: true, Call: 5, Return: 15, Outcome: history.OK},
			{ID: 2, Client: 2, Process: 3, Key: "k", Kind: history.Get, Call: 16, Return: 20, Outcome: history.Failed, Err: "boom"},
			{ID: 3, Client: 1, Key: "k", Kind: history.CAS, Value: "é\n\"x\"", Expect: "", ExpectFound: true, ExpectVersion: 9,
				Call: 30, Return: 40, Outcome: history.OK, Conflict: true},
			{ID: 4, Client: 4, Group: 7, Final: true, Key: "k", Kind: history.GetMany, Call: 50, Return: 60, Outcome: history.Unknown, Err: "timeout"},
			{ID: 5, Client: 4, Group: 7, Final: true, Key: "j", Kind: history.GetMany, Call: 50, Return: 60, Outcome: history.Unknown, Err: "timeout"},
			{ID: 6, Client: 1, Key: "j", Kind: history.Delete, Call: 61, Return: 61, Outcome: history.OK},
			{ID: 7, Client: 1, Key: "j", Kind: history.Refresh, Call: 62, Return: 70, Outcome: history.OK},
		},
		Events: []history.Event{
			{Kind: history.Fault, Name: "latency", Start: 3, End: 44, Detail: "50ms"},
			{Kind: "custom", Name: "x", Start: 60, End: 60},
		},
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	want := sampleHistory()
	var buf bytes.Buffer
	if err := history.Write(&buf, want); err != nil {
		t.Fatal(err)
	}
	got, err := history.Read(&buf)
	if err != nil {
		t.Fatalf("Read(Write(h)): %v\n%s", err, buf.String())
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("round trip mismatch (-want +got):\n%s", diff)
	}
}

func TestWriteSetsVersion(t *testing.T) {
	t.Parallel()
	h := sampleHistory()
	h.Header.Version = 0
	var buf bytes.Buffer
	if err := history.Write(&buf, h); err != nil {
		t.Fatal(err)
	}
	if first, _, _ := strings.Cut(buf.String(), "\n"); !strings.HasPrefix(first, `{"memstore_history":1,`) {
		t.Errorf("header line = %s, want it to start with the version", first)
	}
}

func TestReadErrors(t *testing.T) {
	t.Parallel()
	const hdr = `{"memstore_history":1}` + "\n"
	const set0 = `{"type":"op","id":0,"client":0,"key":"k","kind":"set","value":"a","call":1,"return":2,"outcome":"ok"}` + "\n"
	tests := []struct {
		name     string
		in       string
		wantLine int    // 0: no line number expected
		wantText string // part of the message
	}{
		{"empty", "", 0, "empty input"},
		{"no header", set0, 1, "not a memstore history"},
		{"future version", `{"memstore_history":2}`, 1, "version 2"},
		{"header unknown field", `{"memstore_history":1,"stor":"x"}`, 1, `unknown field "stor"`},
		{"bad json", hdr + set0 + "{nope\n", 3, "invalid character"},
		{"missing type", hdr + `{"id":0}`, 2, `missing "type"`},
		{"unknown type", hdr + `{"type":"opp"}`, 2, `unknown line type "opp"`},
		{"unknown op field", hdr + `{"type":"op","id":0,"key":"k","kind":"get","outcome":"ok","retrun":3}`, 2, `unknown field "retrun"`},
		{"id gap", hdr + set0 + strings.Replace(set0, `"id":0`, `"id":2`, 1), 3, "ids must equal their index"},
		{"unknown kind", hdr + strings.Replace(set0, `"set"`, `"put"`, 1), 2, `unknown kind "put"`},
		{"unknown outcome", hdr + strings.Replace(set0, `"ok"`, `"maybe"`, 1), 2, `unknown outcome "maybe"`},
		{"return before call", hdr + strings.Replace(set0, `"return":2`, `"return":0`, 1), 2, "want 0 <= call <= return"},
		{"duplicate value", hdr + set0 + strings.Replace(set0, `"id":0`, `"id":1`, 1), 3, "written values must be unique"},
		{"out without found", hdr + `{"type":"op","id":0,"key":"k","kind":"get","out":"x","call":1,"return":2,"outcome":"ok"}`, 2, "found false"},
		{"two values", hdr + set0[:len(set0)-1] + " {}\n", 2, "after top-level value"},
		{"event end before start", hdr + `{"type":"event","kind":"fault","start":5,"end":4}`, 2, "before start"},
		{"event without kind", hdr + `{"type":"event","start":5,"end":6}`, 2, "empty kind"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := history.Read(strings.NewReader(tt.in))
			if err == nil {
				t.Fatalf("Read succeeded, want an error containing %q", tt.wantText)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not contain %q", err, tt.wantText)
			}
			var re *history.ReadError
			switch {
			case tt.wantLine == 0 && errors.As(err, &re):
				t.Errorf("error %q names line %d, want no line", err, re.Line)
			case tt.wantLine != 0 && !errors.As(err, &re):
				t.Errorf("error %q is not a *ReadError", err)
			case tt.wantLine != 0 && re.Line != tt.wantLine:
				t.Errorf("error names line %d, want %d", re.Line, tt.wantLine)
			}
		})
	}
}

func TestReadVersionError(t *testing.T) {
	t.Parallel()
	_, err := history.Read(strings.NewReader(`{"memstore_history":7}`))
	if !errors.Is(err, history.ErrVersion) {
		t.Errorf("Read(version 7) error = %v, want one wrapping ErrVersion", err)
	}
}

func FuzzRead(f *testing.F) {
	if b, err := os.ReadFile("testdata/example.jsonl"); err == nil {
		f.Add(b)
	}
	var buf bytes.Buffer
	if err := history.Write(&buf, sampleHistory()); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte(`{"memstore_history":1}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		h, err := history.Read(bytes.NewReader(in))
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := history.Write(&out, h); err != nil {
			t.Fatalf("Write of a history that Read accepted: %v", err)
		}
		h2, err := history.Read(&out)
		if err != nil {
			t.Fatalf("Read(Write(Read(in))): %v", err)
		}
		if diff := cmp.Diff(h, h2, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("second round trip differs (-first +second):\n%s", diff)
		}
	})
}
