package dynmod_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/filter/internal/sotest"
	"github.com/mcpgw/mcpgw/internal/testenv"
)

// requiredHooks are the exports Envoy 1.39.1 requires of an HTTP filter
// module (filter_config.cc: every lookup followed by RETURN_IF_NOT_OK_REF).
var requiredHooks = []string{
	"envoy_dynamic_module_on_program_init",
	"envoy_dynamic_module_on_http_filter_config_new",
	"envoy_dynamic_module_on_http_filter_config_destroy",
	"envoy_dynamic_module_on_http_filter_new",
	"envoy_dynamic_module_on_http_filter_request_headers",
	"envoy_dynamic_module_on_http_filter_request_body",
	"envoy_dynamic_module_on_http_filter_request_trailers",
	"envoy_dynamic_module_on_http_filter_response_headers",
	"envoy_dynamic_module_on_http_filter_response_body",
	"envoy_dynamic_module_on_http_filter_response_trailers",
	"envoy_dynamic_module_on_http_filter_stream_complete",
	"envoy_dynamic_module_on_http_filter_destroy",
	"envoy_dynamic_module_on_http_filter_http_callout_done",
	"envoy_dynamic_module_on_http_filter_http_stream_headers",
	"envoy_dynamic_module_on_http_filter_http_stream_data",
	"envoy_dynamic_module_on_http_filter_http_stream_trailers",
	"envoy_dynamic_module_on_http_filter_http_stream_complete",
	"envoy_dynamic_module_on_http_filter_http_stream_reset",
	"envoy_dynamic_module_on_http_filter_scheduled",
	"envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark",
	"envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark",
}

// TestSharedObjectSymbols builds the module and checks its dynamic symbol
// table: every required hook exported, and every Envoy callback it imports
// provided by Envoy 1.39.1 (a missing one would kill Envoy on first call).
// Set MCPGW_ENVOY to an envoy binary to check against it instead of the
// 1.39.1 sources in the Go module cache.
func TestSharedObjectSymbols(t *testing.T) {
	testenv.SkipIfShort(t, "builds the shared object")
	so := filepath.Join(t.TempDir(), "libmcpgw-dynmod.so")
	build := exec.Command("go", "build", "-buildmode=c-shared", "-o", so,
		"github.com/mcpgw/mcpgw/filter/cmd/libmcpgw-dynmod")
	build.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	defined, undefined := dynamicSymbols(t, so)
	for _, h := range requiredHooks {
		if !defined[h] {
			t.Errorf("required hook %s is not exported", h)
		}
	}
	for sym := range defined {
		if strings.HasPrefix(sym, "envoy_dynamic_module_callback_") || strings.HasPrefix(sym, "fh") {
			t.Errorf("the module defines %s: the test host was linked in", sym)
		}
	}
	var imported []string
	for sym := range undefined {
		if strings.HasPrefix(sym, "envoy_dynamic_module_") {
			imported = append(imported, sym)
		}
	}
	if len(imported) == 0 {
		t.Fatal("the module imports no Envoy callback: symbol table not understood")
	}
	known, source := envoyCallbacks(t)
	for _, sym := range imported {
		if !known[sym] {
			t.Errorf("the module imports %s, which %s does not provide", sym, source)
		}
	}
	t.Logf("%d hooks exported; %d callbacks imported, all in %s", len(requiredHooks), len(imported), source)
}

// dynamicSymbols returns file's exported functions and imports.
func dynamicSymbols(t *testing.T, file string) (defined, undefined map[string]bool) {
	t.Helper()
	s, err := sotest.Read(file)
	if err != nil {
		t.Fatalf("read the dynamic symbols of %s: %v", file, err)
	}
	return s.Defined, s.Undefined
}

// commonABICallbacks are defined in source/extensions/dynamic_modules/
// abi_impl.cc, which the Go module does not contain; the 1.39.1 tests call
// them, which is checked instead.
var commonABICallbacks = []string{"envoy_dynamic_module_callback_log", "envoy_dynamic_module_callback_log_enabled"}

var definitionRE = regexp.MustCompile(`(?m)^(?:[A-Za-z_][\w \t*]*[ \t*])?(envoy_dynamic_module_callback_\w+)\(`)

// envoyCallbacks returns the callbacks Envoy 1.39.1 provides, from the
// binary in MCPGW_ENVOY or else from the sources in the Go module cache.
func envoyCallbacks(t *testing.T) (map[string]bool, string) {
	t.Helper()
	if bin := os.Getenv("MCPGW_ENVOY"); bin != "" {
		defined, _ := dynamicSymbols(t, bin)
		return defined, bin
	}
	modcache, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(strings.TrimSpace(string(modcache)), "github.com/envoyproxy/envoy@v1.39.1")
	abi := filepath.Join(root, "source/extensions/filters/http/dynamic_modules/abi_impl.cc")
	src, err := os.ReadFile(abi)
	if err != nil {
		testenv.Require(t, fmt.Errorf("neither MCPGW_ENVOY nor the Envoy 1.39.1 sources: %w", err))
	}
	known := map[string]bool{}
	for _, m := range definitionRE.FindAllSubmatch(src, -1) {
		known[string(m[1])] = true
	}
	tests, err := os.ReadFile(filepath.Join(root, "test/extensions/dynamic_modules/http/abi_impl_test.cc"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range commonABICallbacks {
		if bytes.Contains(tests, []byte(c+"(")) {
			known[c] = true
		}
	}
	return known, "Envoy 1.39.1's abi_impl.cc"
}
