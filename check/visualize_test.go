package check

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestVisualize(t *testing.T) {
	t.Parallel()
	h := mustValid(t, reportHistory())
	tests := []struct {
		key   string
		words []string
	}{
		{"k", []string{"redis-pause", "op 3 cannot be linearized", `get → \"a\"`, "op 3, client 2"}},
		{"j", []string{"redis-pause", `set \"x\"`}},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			if err := Visualize(&buf, h, tt.key, nil); err != nil {
				t.Fatal(err)
			}
			html := buf.String()
			if !strings.HasPrefix(strings.TrimSpace(html), "<!DOCTYPE html>") && !strings.Contains(html, "<html") {
				t.Fatalf("not HTML: %.200s", html)
			}
			for _, w := range tt.words {
				if !strings.Contains(html, w) {
					t.Errorf("visualization lacks %q", w)
				}
			}
		})
	}
}

func TestVisualizeHotKeyWindow(t *testing.T) {
	t.Parallel()
	h := hotKey(3, 1000)
	staleRead(t, h)
	var buf bytes.Buffer
	if err := Visualize(&buf, mustValid(t, h), "k0", &Options{MaxConfigs: 5000, VisualizeTimeout: time.Second}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "cannot be linearized") {
		t.Error("no failure annotation")
	}
}

func TestVisualizeUnknownKey(t *testing.T) {
	t.Parallel()
	if err := Visualize(&bytes.Buffer{}, reportHistory(), "nope", nil); err == nil {
		t.Error("no error for a key without operations")
	}
}

// TestVisualizeWordsAndRows checks what a person reads in the timeline:
// every box names its value (also a write nobody read, whose value the
// search merges away), rows carry the history's client IDs rather than
// porcupine's 0, 1, 2, and the operation no order explains is the one the
// script outlines and scrolls to.
func TestVisualizeWordsAndRows(t *testing.T) {
	t.Parallel()
	h := hist(
		set(3, "k", "c3-0", 0, 1000),
		set(7, "k", "c7-unread", 1100, 1200), // nobody reads it
		set(10, "k", "c10-1", 2000, 3000),
		get(7, "k", "c10-1", 4000, 5000),
		get(3, "k", "c3-0", 6000, 7000), // stale: op 4
	)
	h.Ops[1].Process = 2
	var buf bytes.Buffer
	if err := Visualize(&buf, mustValid(t, h), "k", nil); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	for _, want := range []string{
		`set \"c7-unread\"`, // the unread write's box keeps its value
		`set \"c10-1\"`,
		`get → \"c3-0\"`,
		`const memstoreTimeline = {"rows":["3","7","10","2/7"],"failed":`,
		`"failed_op":4}`,
		"op 4 cannot be linearized",
		"op 1, client 2/7, ok, 0.0000s–0.0000s",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("timeline lacks %q", want)
		}
	}
	if strings.Contains(page, `set \"\"`) {
		t.Errorf("timeline has a box without its value: set \"\"")
	}
	if i, j := strings.Index(page, "render(data)"), strings.Index(page, "memstoreTimeline"); i < 0 || j < i {
		t.Errorf("the annotating script must come after porcupine's render(data)")
	}
}
