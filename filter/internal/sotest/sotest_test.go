package sotest

import "testing"

func TestVersionLess(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		less bool
	}{{"", "2.2.5", true}, {"2.2.5", "", false}, {"2.9", "2.17", true}, {"2.17", "2.9", false},
		{"2.34", "2.34", false}, {"2.3", "2.3.4", true}} {
		if got := VersionLess(tc.a, tc.b); got != tc.less {
			t.Errorf("VersionLess(%q, %q) = %v", tc.a, tc.b, got)
		}
	}
}
