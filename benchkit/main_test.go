package benchkit_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/memstore/memstore/benchkit"
)

// TestMainRuns runs every standard row briefly against a private Redis and
// SQLite: each must measure without errors. The numbers mean nothing here.
func TestMainRuns(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	args := []string{"--duration", "30ms", "--goroutines", "2", "--count", "2", "--callers", "12", "--cold-keys", "2", "--miss-keys", "300", "--json", "--out", dir, "-q"}
	if err := benchkit.Main(t.Context(), args, &out, &errb); err != nil {
		t.Fatalf("Main: %v\n%s", err, errb.String())
	}
	var rs []benchkit.Result
	if err := json.Unmarshal(out.Bytes(), &rs); err != nil {
		t.Fatalf("output is not a JSON array of results: %v\n%s", err, out.String())
	}
	names := map[string]bool{}
	for _, r := range rs {
		names[r.Name] = true
		if r.Err != "" || r.Ops == 0 {
			t.Errorf("%s g=%d: %d ops, error %q", r.Name, r.Goroutines, r.Ops, r.Err)
		}
		if r.Rounds > 0 && r.DBLoadsPerKey < 1 {
			t.Errorf("%s: %.2f DB loads per cold key: the keys were not cold", r.Name, r.DBLoadsPerKey)
		}
	}
	for _, n := range []string{"raw/get", "raw/set", "raw/mget", "memstore/get-hit", "memstore/get-miss", "memstore/set",
		"memstore/delete", "memstore/getmany-100", "memstore/stampede", "write-db-delete-cache/set", "lease-no-intent/stampede"} {
		if !names[n] {
			t.Errorf("no row %s", n)
		}
	}
	for _, f := range []string{"bench.json", "bench.svg"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
}
