package dynmod

import (
	"slices"
	"testing"
)

// The real Envoys are checked by TestABIVersionMatchesEnvoy (symbols_test.go);
// this pins the choice itself, including hosts no test binary can be.
func TestABIVersionFor(t *testing.T) {
	for _, tc := range []struct {
		name string
		host []string // the callbacks the host defines
		want string
	}{
		{"Envoy 1.39: no log_v2", []string{"envoy_dynamic_module_callback_log"}, "v0.1.0"},
		{"Envoy 1.40: log_v2", []string{"envoy_dynamic_module_callback_log", "envoy_dynamic_module_callback_log_v2"}, "v0.2.0"},
		{"a host with no callbacks at all", nil, "v0.1.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			has := func(s string) bool { return slices.Contains(tc.host, s) }
			if got := abiVersionFor(has); got != tc.want {
				t.Errorf("abiVersionFor = %q, want %q", got, tc.want)
			}
		})
	}
}

// In the test binary the fake host's callbacks are not in the dynamic
// symbol table, so dlsym finds nothing: the oldest ABI. The Go runtime's
// libc is there, which shows the lookup itself works.
func TestHostHas(t *testing.T) {
	if hostHas("envoy_dynamic_module_callback_log_v2") {
		t.Error("hostHas finds log_v2 in a test binary that does not define it")
	}
	if !hostHas("dlsym") {
		t.Error("hostHas does not find dlsym, which libc defines: the lookup is broken")
	}
}
