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
