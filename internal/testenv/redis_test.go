package testenv

import (
	"slices"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in      string
		cluster bool
		addrs   []string
		url     string
	}{
		{"redis://127.0.0.1:6379/2", false, []string{"127.0.0.1:6379"}, "redis://127.0.0.1:6379/2"},
		{"redis+cluster://127.0.0.1:7000,127.0.0.1:7001", true, []string{"127.0.0.1:7000", "127.0.0.1:7001"}, "redis+cluster://127.0.0.1:7000,127.0.0.1:7001"},
		{"redis+cluster://u:p@127.0.0.1:7000,127.0.0.1:7001/", true, []string{"127.0.0.1:7000", "127.0.0.1:7001"}, "redis+cluster://u:p@127.0.0.1:7000,127.0.0.1:7001"},
		{"127.0.0.1:7000, 127.0.0.1:7001", true, []string{"127.0.0.1:7000", "127.0.0.1:7001"}, "redis+cluster://127.0.0.1:7000,127.0.0.1:7001"},
		{"127.0.0.1:7000", true, []string{"127.0.0.1:7000"}, "redis+cluster://127.0.0.1:7000"},
	} {
		r, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if r.IsCluster() != tc.cluster || !slices.Equal(r.Addrs(), tc.addrs) {
			t.Errorf("Parse(%q) = cluster %v %v; want cluster %v %v", tc.in, r.IsCluster(), r.Addrs(), tc.cluster, tc.addrs)
		}
		if got := r.URL(""); got != tc.url {
			t.Errorf("Parse(%q).URL() = %q; want %q", tc.in, got, tc.url)
		}
		back, err := Parse(r.URL(""))
		if err != nil || back.IsCluster() != r.IsCluster() || !slices.Equal(back.Addrs(), r.Addrs()) {
			t.Errorf("Parse(%q).URL() does not parse back to the same Redis: %v, %v", tc.in, back, err)
		}
		if o := r.Options(""); o.IsClusterMode != tc.cluster || !o.ContextTimeoutEnabled {
			t.Errorf("Parse(%q).Options: cluster mode %v, context timeouts %v", tc.in, o.IsClusterMode, o.ContextTimeoutEnabled)
		}
	}
	for _, bad := range []string{"", "redis+cluster://", "localhost", "redis+cluster://a,b"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) succeeded", bad)
		}
	}
}
