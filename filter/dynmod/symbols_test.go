package dynmod_test

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/filter/internal/sotest"
	"github.com/mcpgw/mcpgw/internal/testenv"
	"github.com/mcpgw/mcpgw/tests/harness"
)

// These tests check the real .so against an Envoy: the binary in
// MCPGW_ENVOY (`make test` runs them on every Envoy version BUILD.md lists),
// or else the Envoy 1.39.1 sources in the Go module cache.

// requiredHooks are the exports Envoy requires of an HTTP filter module:
// 1.39.1's filter_config.cc rejects the config when one is missing (every
// lookup followed by RETURN_IF_NOT_OK_REF), and 1.40.0 looks up the same
// names and accepts the module.
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

// optionalHooks are the other hooks Envoy looks up, which the module leaves
// out: optional in 1.39.1's filter_config.cc (config-level scheduling and
// callouts, local replies), or looked up only for a per-route config, which
// the module rejects. A hook an Envoy looks up that is in neither list is
// new: read that Envoy's filter_config.cc before adding it to one.
var optionalHooks = []string{
	"envoy_dynamic_module_on_http_filter_config_scheduled",
	"envoy_dynamic_module_on_http_filter_config_http_callout_done",
	"envoy_dynamic_module_on_http_filter_config_http_stream_headers",
	"envoy_dynamic_module_on_http_filter_config_http_stream_data",
	"envoy_dynamic_module_on_http_filter_config_http_stream_trailers",
	"envoy_dynamic_module_on_http_filter_config_http_stream_complete",
	"envoy_dynamic_module_on_http_filter_config_http_stream_reset",
	"envoy_dynamic_module_on_http_filter_local_reply",
	"envoy_dynamic_module_on_http_filter_per_route_config_new",
	"envoy_dynamic_module_on_http_filter_per_route_config_destroy",
}

// TestSharedObjectSymbols checks the module's dynamic symbol table against
// an Envoy: every hook it looks up exported or known to be optional, and
// every callback the module imports provided (a missing one fails the load
// since Envoy 1.40, which loads modules RTLD_NOW; 1.39 loads them lazily and
// would crash on the first call).
func TestSharedObjectSymbols(t *testing.T) {
	testenv.SkipIfShort(t, "builds the shared object")
	defined, undefined := dynamicSymbols(t, filepath.Join(harness.Module(t), harness.ModuleFile))
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
	envoy := envoyABI(t)
	for _, sym := range imported {
		if !envoy.callbacks[sym] {
			t.Errorf("the module imports %s, which %s does not provide", sym, envoy.source)
		}
	}
	checkHookLookups(t, envoy, defined)
	t.Logf("%d hooks exported; %d callbacks imported, all in %s", len(requiredHooks), len(imported), envoy.source)
}

// checkHookLookups compares the hooks envoy looks up with the module's.
func checkHookLookups(t *testing.T, envoy abiSource, defined map[string]bool) {
	t.Helper()
	for _, h := range requiredHooks {
		if !envoy.hooks[h] {
			t.Errorf("%s: Envoy does not look up %s: read its filter_config.cc (requiredHooks is stale)", envoy.source, h)
		}
	}
	for h := range envoy.hooks {
		if !defined[h] && !slices.Contains(optionalHooks, h) {
			t.Errorf("%s: Envoy looks up %s, which the module neither exports nor knows as optional: "+
				"read its filter_config.cc", envoy.source, h)
		}
	}
}

// abiSource is what an Envoy offers a module: the callbacks it defines and
// the hooks it looks up.
type abiSource struct {
	source    string
	callbacks map[string]bool
	hooks     map[string]bool
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

// hookNameRE matches the HTTP filter hook names Envoy looks up (and
// on_program_init), NUL-terminated in a binary or quoted in C++ source.
var hookNameRE = regexp.MustCompile(`envoy_dynamic_module_on_(?:http_filter_[a-z_]+|program_init)\b`)

// envoyABI returns what the Envoy in MCPGW_ENVOY offers, or else what the
// 1.39.1 sources in the Go module cache say.
func envoyABI(t *testing.T) abiSource {
	t.Helper()
	if bin := os.Getenv("MCPGW_ENVOY"); bin != "" {
		defined, _ := dynamicSymbols(t, bin)
		return abiSource{source: bin, callbacks: defined, hooks: binaryHookLookups(t, bin)}
	}
	return sourceABI(t)
}

// binaryHookLookups returns the hook names in bin's read-only data: the
// names Envoy passes to dlsym (it also has a few log messages that start
// with a hook name, which the word boundary cuts to the name).
func binaryHookLookups(t *testing.T, bin string) map[string]bool {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sec := f.Section(".rodata")
	if sec == nil {
		t.Fatalf("%s has no .rodata section", bin)
	}
	data, err := sec.Data()
	if err != nil {
		t.Fatal(err)
	}
	hooks := map[string]bool{}
	for _, s := range bytes.Split(data, []byte{0}) {
		if m := hookNameRE.Find(s); m != nil && bytes.HasPrefix(s, m) {
			hooks[string(m)] = true
		}
	}
	if len(hooks) == 0 {
		t.Fatalf("no hook names in %s's .rodata: binary not understood", bin)
	}
	return hooks
}

// commonABICallbacks are defined in source/extensions/dynamic_modules/
// abi_impl.cc, which the Go module does not contain; the 1.39.1 tests call
// them, which is checked instead.
var commonABICallbacks = []string{"envoy_dynamic_module_callback_log", "envoy_dynamic_module_callback_log_enabled"}

var definitionRE = regexp.MustCompile(`(?m)^(?:[A-Za-z_][\w \t*]*[ \t*])?(envoy_dynamic_module_callback_\w+)\(`)

// sourceABI reads the Envoy 1.39.1 sources in the Go module cache.
func sourceABI(t *testing.T) abiSource {
	t.Helper()
	modcache, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(strings.TrimSpace(string(modcache)), "github.com/envoyproxy/envoy@v1.39.1")
	filter := filepath.Join(root, "source/extensions/filters/http/dynamic_modules")
	abi, err := os.ReadFile(filepath.Join(filter, "abi_impl.cc"))
	if err != nil {
		testenv.Require(t, fmt.Errorf("neither MCPGW_ENVOY nor the Envoy 1.39.1 sources: %w", err))
	}
	s := abiSource{source: "Envoy 1.39.1's sources", callbacks: map[string]bool{}, hooks: map[string]bool{
		"envoy_dynamic_module_on_program_init": true, // looked up by the common loader, dynamic_modules.cc
	}}
	for _, m := range definitionRE.FindAllSubmatch(abi, -1) {
		s.callbacks[string(m[1])] = true
	}
	tests, err := os.ReadFile(filepath.Join(root, "test/extensions/dynamic_modules/http/abi_impl_test.cc"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range commonABICallbacks {
		if bytes.Contains(tests, []byte(c+"(")) {
			s.callbacks[c] = true
		}
	}
	cfg, err := os.ReadFile(filepath.Join(filter, "filter_config.cc"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range hookNameRE.FindAll(cfg, -1) {
		s.hooks[string(m)] = true
	}
	return s
}

// TestABIVersionMatchesEnvoy loads the module into the real Envoy
// (--mode validate loads it and creates the filter config) and checks that
// Envoy logs the ABI version as matched, not as deprecated: the module
// reports the version of the Envoy that loaded it (abiversion.go).
func TestABIVersionMatchesEnvoy(t *testing.T) {
	testenv.SkipIfShort(t, "builds the shared object")
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := harness.FindEnvoy(root)
	testenv.Require(t, err)
	bootstrap := validateBootstrap(t)
	cmd := exec.Command(bin, "--mode", "validate", "-c", bootstrap, "-l", "info", "--use-dynamic-base-id")
	cmd.Env = append(os.Environ(), "ENVOY_DYNAMIC_MODULES_SEARCH_PATH="+harness.Module(t))
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("' OK")) {
		t.Fatalf("envoy --mode validate: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Dynamic module ABI version (\S+) (matched|is deprecated)`).FindSubmatch(out)
	switch {
	case m == nil:
		t.Fatalf("%s logged no ABI version check:\n%s", bin, out)
	case string(m[2]) != "matched":
		t.Errorf("%s: the module reports ABI %s, which this Envoy calls deprecated: "+
			"check this Envoy's ABI (abi.h) and add it to abis (abiversion.go)", bin, m[1])
	default:
		t.Logf("%s: ABI %s matched", bin, m[1])
	}
}

// validateBootstrap writes an mcpgw config and a minimal Envoy bootstrap
// with the module as its only filter, and returns the bootstrap's path.
func validateBootstrap(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	key := filepath.Join(dir, "session.key")
	if err := os.WriteFile(key, []byte(sessionKey), 0o600); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(config, []byte(fmt.Sprintf("version: mcpgw/v1\ngateway:\n  sessionKey: {file: %q}\n"+
		"servers:\n- {name: a, url: \"http://127.0.0.1:9/mcp\", hostname: a.svc, prefix: a_}\n", key)), 0o600); err != nil {
		t.Fatal(err)
	}
	bootstrap := filepath.Join(dir, "envoy.yaml")
	if err := os.WriteFile(bootstrap, []byte(strings.ReplaceAll(validateTemplate, "@CONFIG@", config)), 0o600); err != nil {
		t.Fatal(err)
	}
	return bootstrap
}

const validateTemplate = `
static_resources:
  listeners:
  - address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: validate
          route_config:
            virtual_hosts:
            - {name: all, domains: ["*"], routes: [{match: {prefix: /}, direct_response: {status: 200}}]}
          http_filters:
          - name: envoy.filters.http.dynamic_modules
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter
              dynamic_module_config: {name: mcpgw-dynmod, do_not_close: true}
              filter_name: mcpgw
              filter_config:
                "@type": type.googleapis.com/google.protobuf.StringValue
                value: '{"config_path": "@CONFIG@"}'
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
`
