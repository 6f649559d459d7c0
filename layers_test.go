package memstore_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The layering rules of ARCHITECTURE.md, checked on the real import graph
// (go list -deps, test files left out): a rule broken by an import fails
// here, not in a review.
func TestLayers(t *testing.T) {
	const mod = "github.com/memstore/memstore"
	verifier := []string{"/history", "/check", "/fault", "/verify", "/storetest", "/strategies", "/memtest", "/schedule", "/report", "/benchkit", "/cmd/", "/internal/inspect"}
	io := []string{"net", "os/exec", "database/sql", "github.com/redis/go-redis/v9"}
	rules := []struct {
		pkg    string
		forbid []string // import paths; a leading "/" is under the module
		why    string
	}{
		{"", verifier, "the store imports nothing of the verifier, the tools or their seams"},
		{"/codec", []string{"/"}, "codec is a leaf: the store and any tool may use it"},
		{"/internal/rediscache", []string{"/"}, "the Redis side knows only Redis"},
		{"/internal/sqlstore", []string{"/"}, "the database side knows only database/sql"},
		{"/history", []string{"/"}, "histories are plain data"},
		{"/check", append([]string{"", "/fault", "/verify", "/memtest", "/strategies", "/internal/"}, io...), "checkers are pure functions of a history"},
	}
	for _, r := range rules {
		t.Run(mod+r.pkg, func(t *testing.T) {
			out, err := exec.Command(goTool(t), "list", "-deps", "-f", "{{.ImportPath}}", mod+r.pkg).CombinedOutput()
			if err != nil {
				t.Fatalf("go list: %v\n%s", err, out)
			}
			deps := strings.Fields(string(out))
			if len(deps) == 0 || deps[len(deps)-1] != mod+r.pkg {
				t.Fatalf("go list -deps %s listed %d packages, not ending with the package itself", mod+r.pkg, len(deps))
			}
			for _, d := range deps[:len(deps)-1] {
				for _, f := range r.forbid {
					if matches(mod, d, f) {
						t.Errorf("%s depends on %s: %s", mod+r.pkg, d, r.why)
					}
				}
			}
		})
	}
}

// matches reports whether import path d is what pattern f forbids: "" the
// module's root package, "/" any other package of the module, "/x" the
// module's package x and those under it ("/x/" only those under it), and
// any other pattern that package and those under it.
func matches(mod, d, f string) bool {
	switch {
	case f == "":
		return d == mod
	case f == "/":
		return strings.HasPrefix(d, mod+"/")
	case strings.HasPrefix(f, "/"):
		f = mod + f
	}
	if strings.HasSuffix(f, "/") {
		return strings.HasPrefix(d, f)
	}
	return d == f || strings.HasPrefix(d, f+"/")
}

// goTool is the go command that runs this test (go test puts its GOROOT's
// bin first on PATH), else the one on PATH.
func goTool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list the import graph: %v", err)
	}
	return p
}
