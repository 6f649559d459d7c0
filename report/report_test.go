package report_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/memstore/memstore/check"
	"github.com/memstore/memstore/history"
	"github.com/memstore/memstore/report"
	"github.com/memstore/memstore/verify"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const ms = int64(time.Millisecond)

// op is a shorthand for one history operation.
type op struct {
	client     int
	kind       history.Kind
	key, value string // value written (set) or read (get; "" with found false is absent)
	found      bool
	call, ret  int64 // ms
	outcome    history.Outcome
}

func makeHistory(store string, ops []op, faults ...history.Event) *history.History {
	h := &history.History{Header: history.Header{Version: history.FormatVersion, Store: store, Seed: 7,
		Start: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}}
	for i, o := range ops {
		hop := history.Op{ID: i, Client: o.client, Key: o.key, Kind: o.kind, Call: o.call * ms, Return: o.ret * ms, Outcome: o.outcome}
		if hop.Outcome == "" {
			hop.Outcome = history.OK
		}
		switch o.kind {
		case history.Set:
			hop.Value = o.value
		case history.Get:
			hop.Out, hop.Found = o.value, o.found
		}
		h.Ops = append(h.Ops, hop)
	}
	h.Events = append(h.Events, faults...)
	return h
}

// linearizableOps is a short history every register allows.
var linearizableOps = []op{
	{0, history.Set, "k1", "a", false, 0, 2, ""},
	{1, history.Get, "k1", "a", true, 3, 4, ""},
	{2, history.Set, "k2", "b", false, 5, 40, ""},
	{0, history.Get, "k2", "b", true, 41, 42, ""},
	{1, history.Delete, "k1", "", false, 50, 55, ""},
	{2, history.Get, "k1", "", false, 120, 121, ""},
	{0, history.Set, "k2", "c", false, 130, 450, history.Unknown},
	{1, history.Get, "k2", "c", true, 460, 461, ""},
}

// staleOps holds a stale read: op 2 reads "a" after op 1 replaced it.
var staleOps = []op{
	{0, history.Set, "k1", "a", false, 0, 1, ""},
	{1, history.Set, "k1", "b", false, 2, 3, ""},
	{2, history.Get, "k1", "a", true, 5, 6, ""},
	{0, history.Get, "k1", "b", true, 110, 112, ""},
	{1, history.Set, "k2", "x", false, 120, 135, ""},
	{2, history.Get, "k2", "x", true, 140, 141, ""},
}

// result checks h as the engine would and fills in what a run adds.
func result(t testing.TB, h *history.History, expectPass bool, snap []check.KeySnapshot, loads map[string]int) *verify.Result {
	t.Helper()
	opts := &check.Options{Snapshot: snap}
	rep := check.All(h, opts)
	r := report.FromHistory(h, rep)
	r.ExpectPass = expectPass
	r.StampedeLimit = 0
	if loads != nil {
		var cold []string
		for k := range loads {
			cold = append(cold, k)
		}
		s := check.Stampede(loads, cold)
		r.Stampede = &s
	}
	if r.Caught() {
		r.Detected, r.TimeToDetection = true, 6*time.Millisecond
	}
	return r
}

// syntheticRun is a fixed run with one store of each verdict.
func syntheticRun(t testing.TB) *report.Run {
	t.Helper()
	fault := history.Event{Kind: history.Fault, Name: "redis-pause", Start: 100 * ms, End: 300 * ms}
	agree := []check.KeySnapshot{{Key: "k1"}, {Key: "k2", DBPresent: true, DBBytes: []byte("c")}}
	diverge := []check.KeySnapshot{{Key: "k1", CachePresent: true, CacheBytes: []byte("a"), DBPresent: true, DBBytes: []byte("b")}}
	return &report.Run{
		Title:   "memstore check",
		Command: "memstore check --seed 7",
		Settings: []report.Setting{
			{Name: "seed", Value: "7"},
		},
		Results: []*verify.Result{
			result(t, makeHistory("memstore", linearizableOps, fault), true, agree, map[string]int{"s0": 1, "s1": 1}),
			result(t, makeHistory("write-db-delete-cache", staleOps, fault), false, diverge, map[string]int{"s0": 12, "s1": 30}),
			result(t, makeHistory("lease-no-intent", linearizableOps), false, agree, map[string]int{"s0": 2, "s1": 1}),
			result(t, makeHistory("db-only", staleOps), true, nil, nil),
		},
		Histories: map[string]string{"memstore": "histories/memstore.jsonl"},
	}
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run go test -update if the change is intended)\ngot:\n%s\nwant:\n%s", name, got, want)
	}
}

func TestTableGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := report.WriteTable(&buf, syntheticRun(t)); err != nil {
		t.Fatal(err)
	}
	golden(t, "table.golden", buf.Bytes())
}

func TestVerdicts(t *testing.T) {
	run := syntheticRun(t)
	want := []string{report.Pass, report.Caught, report.Missed, report.Fail}
	for i, r := range run.Results {
		if got := report.Verdict(r); got != want[i] {
			t.Errorf("%s: verdict %s, want %s (%v)", r.Store, got, want[i], r.Problems())
		}
	}
	if run.OK() {
		t.Errorf("run with a MISSED and a FAIL store is OK")
	}
	run.Results = run.Results[:2]
	if !run.OK() {
		t.Errorf("run with PASS and CAUGHT is not OK: %s", run.Headline())
	}
	if (&report.Run{}).OK() {
		t.Errorf("a run with no results is OK")
	}
}

func TestRequirePass(t *testing.T) {
	run := syntheticRun(t)
	run.Results = run.Results[:2] // memstore PASS, write-db-delete-cache CAUGHT
	run.RequirePass = true
	if run.OK() {
		t.Errorf("RequirePass run with a caught store is OK")
	}
	if h := run.Headline(); !strings.Contains(h, "1 of 2 stores broke their promises: write-db-delete-cache is unsafe (CAUGHT, as expected of a known-bad store)") {
		t.Errorf("headline %q does not name the store that broke a promise", h)
	}
	if run.StoreOK(run.Results[1]) {
		t.Errorf("a caught store is OK in a run that requires a pass: its badge would be green under a red banner")
	}
	run.Results = run.Results[:1]
	if !run.OK() {
		t.Errorf("RequirePass run of a passing store is not OK: %s", run.Headline())
	}
}

func TestFromHistoryExpectation(t *testing.T) {
	for store, want := range map[string]bool{"memstore": true, "db-only": true, "write-db-set-cache": false, "someone-elses": true} {
		h := makeHistory(store, linearizableOps)
		if got := report.FromHistory(h, check.All(h, nil)).ExpectPass; got != want {
			t.Errorf("FromHistory of a %s history: ExpectPass %v, want %v", store, got, want)
		}
	}
}

func TestJSON(t *testing.T) {
	var buf bytes.Buffer
	if err := report.WriteJSON(&buf, syntheticRun(t)); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OK     bool `json:"ok"`
		Stores []struct {
			Name         string   `json:"name"`
			Expected     string   `json:"expected"`
			Verdict      string   `json:"verdict"`
			Linearizable string   `json:"linearizable"`
			Anomalies    int      `json:"anomalies"`
			Converged    *bool    `json:"converged"`
			Ops          int      `json:"ops"`
			Loads        *float64 `json:"db_loads_per_cold_key"`
			Violations   []struct {
				Check       string `json:"check"`
				Key         string `json:"key"`
				Ops         []int  `json:"ops"`
				Explanation string `json:"explanation"`
			} `json:"violations"`
		} `json:"stores"`
	}
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	if doc.OK || len(doc.Stores) != 4 {
		t.Fatalf("ok %v with %d stores, want false with 4", doc.OK, len(doc.Stores))
	}
	good, bad, noConv := doc.Stores[0], doc.Stores[1], doc.Stores[3]
	if good.Name != "memstore" || good.Expected != "pass" || good.Linearizable != "ok" || good.Anomalies != 0 ||
		good.Converged == nil || !*good.Converged || good.Ops != len(linearizableOps) || good.Loads == nil || *good.Loads != 1 || len(good.Violations) != 0 {
		t.Errorf("memstore: %+v", good)
	}
	if bad.Expected != "fail" || bad.Verdict != report.Caught || bad.Linearizable != "illegal" || bad.Anomalies == 0 ||
		bad.Converged == nil || *bad.Converged {
		t.Errorf("write-db-delete-cache: %+v", bad)
	}
	kinds := map[string]bool{}
	for _, v := range bad.Violations {
		kinds[v.Check] = true
		if v.Explanation == "" {
			t.Errorf("violation %+v has no explanation", v)
		}
	}
	for _, k := range []string{"linearizability", "stale_read", "convergence"} {
		if !kinds[k] {
			t.Errorf("write-db-delete-cache violations lack %s: %+v", k, bad.Violations)
		}
	}
	if noConv.Converged != nil || noConv.Loads != nil {
		t.Errorf("db-only: converged %v, loads %v; want null, null (not checked)", noConv.Converged, noConv.Loads)
	}
}

func TestHTMLSelfContained(t *testing.T) {
	var buf bytes.Buffer
	if err := report.WriteHTML(&buf, syntheticRun(t), nil); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	for _, want := range []string{
		"FAIL: 2 of 4 stores did not meet their expectation",
		`id="store-write-db-delete-cache"`,
		"stale read",
		"<iframe",               // porcupine's timeline, inline
		"srcdoc=\"&lt;!doctype", // ... as its own document
		"<svg",                  // the plots
		"redis-pause",           // the fault window
		"histories/memstore.jsonl",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	// Nothing is fetched: no external script, style, image or font. (SVG
	// namespaces are names, not fetches.)
	external := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//|@import|url\(\s*["']?(https?:)?//`)
	if m := external.FindString(page); m != "" {
		t.Errorf("report loads something from the network: %q", m)
	}
	if strings.Count(page, "<html") != 1 {
		// porcupine's documents are escaped inside srcdoc, so only the
		// report's own <html> is markup.
		t.Errorf("report has %d <html> elements, want 1", strings.Count(page, "<html"))
	}
}

func TestDuration(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0"},
		{7, "7ns"},
		{412 * time.Microsecond, "412µs"},
		{999_600 * time.Nanosecond, "1ms"},
		{1234 * time.Microsecond, "1.23ms"},
		{15 * time.Millisecond, "15ms"},
		{15_240 * time.Microsecond, "15.2ms"},
		{152_400 * time.Microsecond, "152ms"},
		{1250 * time.Millisecond, "1.25s"},
		{1_100_898_421, "1.1s"}, // the 1.100898421s
		{12_345 * time.Millisecond, "12.3s"},
		{125 * time.Second, "2m05s"},
	} {
		if got := report.Duration(tc.d); got != tc.want {
			t.Errorf("Duration(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}
