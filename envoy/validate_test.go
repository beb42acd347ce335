package envoy_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/internal/testenv"
	"github.com/mcpgw/mcpgw/tests/harness"
)

// envoySources returns the pinned Envoy module's source tree (go.mod).
func envoySources(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/envoyproxy/envoy").Output()
	if err != nil {
		t.Fatalf("go list -m github.com/envoyproxy/envoy: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// stockEnvoy returns the stock Envoy binary: MCPGW_ENVOY, else the one
// `make envoy` installs for envoy/ENVOY_VERSION (harness.FindEnvoy).
func stockEnvoy(t *testing.T) string {
	t.Helper()
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := harness.FindEnvoy(root)
	testenv.Require(t, err)
	return bin
}

// dynamicModule builds the router as a dynamic module into dir (or uses
// MCPGW_DYNMOD_SO) and returns the directory to search it in.
func dynamicModule(t *testing.T) string {
	t.Helper()
	if so := os.Getenv("MCPGW_DYNMOD_SO"); so != "" {
		return filepath.Dir(so)
	}
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", filepath.Join(dir, "libmcpgw-dynmod.so"),
		"github.com/mcpgw/mcpgw/filter/cmd/libmcpgw-dynmod")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the dynamic module: %v\n%s", err, out)
	}
	return dir
}

// TestGolangBootstrapValidates runs golang.yaml through the stock Envoy's
// --mode validate, with the golang filter swapped for the dynamic module
// carrying the same filter config (pointed at a real config file). Envoy
// validates the listeners, routes and clusters and loads the module, which
// loads the config file.
func TestGolangBootstrapValidates(t *testing.T) {
	testenv.SkipIfShort(t, "builds the dynamic module")
	envoy := stockEnvoy(t)
	bootstrap := readYAML(t, "golang.yaml")[0]
	golangF, i := golangStanza(t, bootstrap)
	value := at(t, golangF, "typed_config", "plugin_config", "value").(object)
	filterConfig := object{}
	for k, v := range value {
		filterConfig[k] = v
	}
	filterConfig["config_path"] = writeConfig(t)
	raw, err := json.Marshal(filterConfig)
	if err != nil {
		t.Fatal(err)
	}
	httpFilters(t, bootstrap)[i] = object{
		"name": "envoy.filters.http.dynamic_modules",
		"typed_config": object{
			"@type":                 "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
			"dynamic_module_config": object{"name": "mcpgw-dynmod", "do_not_close": true},
			"filter_name":           "mcpgw",
			"filter_config": object{"@type": "type.googleapis.com/google.protobuf.StringValue",
				"value": string(raw)},
		},
	}
	swapped, err := json.Marshal(bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "golang-as-dynmod.json")
	if err := os.WriteFile(file, swapped, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(envoy, "--mode", "validate", "-c", file, "--log-level", "warn",
		"--use-dynamic-base-id")
	cmd.Env = append(os.Environ(), "ENVOY_DYNAMIC_MODULES_SEARCH_PATH="+dynamicModule(t))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK") {
		t.Fatalf("envoy --mode validate: %v\n%s", err, out)
	}
}
