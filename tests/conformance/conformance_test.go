package conformance

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/testenv"
	"github.com/mcpgw/mcpgw/tests/harness"
)

// Environment:
//
//	MCPGW_CONFORMANCE_OUT=dir   keep each run's results (checks.json per scenario, output.txt) under dir/<run>
//	MCPGW_CONFORMANCE_UPDATE=1  rewrite the baseline files from this run's failures instead of asserting
//	MCPGW_ENVOY, MCPGW_DYNMOD_DIR, CI as for tests/e2e
//
// Each run is a subtest; `-run 'TestConformance/gateway$'` runs one.

type run struct {
	name     string
	suite    string   // suiteStable or suite2026
	extra    []string // extra suite flags
	stateful bool     // everything-server -stateless=false
	gateway  bool     // through Envoy + router + broker
	prefix   string   // the backend's prefix in the gateway config
	// stripped runs the everything-server with its tools and prompts
	// registered without "test_" (buildEverythingServer).
	stripped bool
	// aliases are the backend's aliases in the gateway config.
	aliases map[string]string
	// tasks puts a second, task-capable backend behind the gateway (the
	// fixture tests/mcptest/tasks), prefixed "tasks_", with aliases for the
	// names the tasks scenarios call.
	tasks bool
}

var runs = []run{
	// Session-era revisions (2025-03-26 .. 2025-11-25), suite 0.1.16.
	{name: "direct", suite: suiteStable, stateful: true},
	{name: "gateway", suite: suiteStable, stateful: true, gateway: true},
	// Prefixed for real: the backend registers simple_text, simple_prompt,
	// ... and the gateway offers them as test_simple_text, ...: every
	// name the suite calls is one the router (and, for completions, the
	// broker) must strip to reach the backend. One listed name does not
	// carry the prefix and keeps its own name by an alias (see
	// baseline-gateway-prefixed.yml).
	{name: "gateway-prefixed", suite: suiteStable, stateful: true, gateway: true, prefix: strippedPrefix,
		stripped: true, aliases: sameNames(unprefixedSuiteNames...)},
	// The stateless 2026-07-28 revision, suite 0.2.0-alpha.12.
	{name: "direct-2026-07-28", suite: suite2026, extra: []string{"--requirements", "2026-07-28"}},
	// Through the gateway the everything-server (unprefixed) has a
	// task-capable neighbour, for the tasks extension's scenarios, which
	// the everything-server does not implement (directly they fail).
	{name: "gateway-2026-07-28", suite: suite2026, extra: []string{"--requirements", "2026-07-28"}, gateway: true, tasks: true},
	// The same, prefixed for real as gateway-prefixed: the router strips
	// "test_" in the body and in Mcp-Name of every stateless call to the
	// everything-server. The tasks fixture's names (greet, slow_compute,
	// ...) share no prefix: they stay aliases.
	{name: "gateway-prefixed-2026-07-28", suite: suite2026, extra: []string{"--requirements", "2026-07-28"}, gateway: true,
		tasks: true, prefix: strippedPrefix, stripped: true, aliases: sameNames(unprefixedSuiteNames...)},
}

// tasksSuiteNames are the tools the 2026-07-28 suite's tasks scenarios call
// (the fixture's tools, see tests/mcptest/tasks).
var tasksSuiteNames = []string{
	"greet", "slow_compute", "failing_job", "protocol_error_job", "confirm_delete", "multi_input", "test_tool_with_task",
}

// stableSuiteNames are the tool and prompt names the stable suite calls
// (suiteCalls reads them from its dist/index.js and checks this list):
// fixed names, all starting with "test_".
var stableSuiteNames = []string{
	"test_simple_text", "test_image_content", "test_audio_content", "test_embedded_resource",
	"test_multiple_content_types", "test_tool_with_logging", "test_tool_with_progress",
	"test_error_handling", "test_sampling", "test_elicitation", "test_elicitation_sep1034_defaults",
	"test_elicitation_sep1330_enums", "test_reconnection",
	"test_simple_prompt", "test_prompt_with_arguments", "test_prompt_with_embedded_resource",
	"test_prompt_with_image",
}

// unprefixedSuiteNames are the names the stable suite looks for in the
// lists without calling them, which do not start with "test_": the
// json-schema-2020-12 scenario finds json_schema_2020_12_tool in
// tools/list and checks its input schema.
var unprefixedSuiteNames = []string{"json_schema_2020_12_tool"}

// sameNames aliases each name to the backend's own of the same name.
func sameNames(names ...string) map[string]string {
	m := make(map[string]string, len(names))
	for _, n := range names {
		m[n] = n
	}
	return m
}

func TestConformance(t *testing.T) {
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	npm, err := install(root)
	testenv.Require(t, err)
	bin := t.TempDir()           // the servers, built once for every run
	servers := map[bool]string{} // stripped or not -> binary
	var summary []string
	for _, r := range runs {
		t.Run(r.name, func(t *testing.T) {
			if servers[r.stripped] == "" {
				servers[r.stripped] = buildEverythingServer(t, root, bin, r.stripped)
			}
			url := startEverythingServer(t, servers[r.stripped], r.stateful)
			var g *harness.Stack
			if r.gateway {
				g = startGateway(t, root, url, r, !r.stateful)
				url = fmt.Sprintf("http://localhost:%d/mcp", g.Envoy.Port)
			}
			res, failing := runAndCheck(t, root, npm, r, url)
			summary = append(summary, fmt.Sprintf("%-28s Total: %d passed, %d failed (%d scenarios, failing: %s)",
				r.name, res.Passed, res.Failed, len(res.Scenarios), strings.Join(failing, " ")))
			if g != nil {
				checkRouted(t, g, npm, r)
			}
		})
	}
	t.Logf("conformance summary:\n%s", strings.Join(summary, "\n"))
}

// runAndCheck runs the suite of r against url and compares its failing
// scenarios with r's baseline (or rewrites it, MCPGW_CONFORMANCE_UPDATE).
func runAndCheck(t *testing.T, root, npm string, r run, url string) (*result, []string) {
	t.Helper()
	out := outDir(t, r.name)
	baseline := filepath.Join(root, "tests", "conformance", "baseline-"+r.name+".yml")
	update := os.Getenv("MCPGW_CONFORMANCE_UPDATE") != ""
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	opts := runOptions{Suite: r.suite, URL: url, Extra: r.extra, OutDir: out}
	if !update {
		opts.Baseline = baseline
	}
	res, err := runSuite(ctx, npm, opts)
	if err != nil {
		t.Fatal(err)
	}
	failing := failingScenarios(out)
	t.Logf("%s Total: %d passed, %d failed (%d scenarios, failing: %s)",
		r.name, res.Passed, res.Failed, len(res.Scenarios), strings.Join(failing, " "))
	if details := failureDetails(out); details != "" {
		t.Logf("failed checks:\n%s", details)
	}
	if len(res.Scenarios) == 0 {
		t.Fatalf("no scenario ran:\n%s", res.Output)
	}
	if update {
		if err := writeBaseline(baseline, r.name, failing); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", baseline)
		return res, failing
	}
	// The suite compares against the baseline itself: exit 0 iff
	// every failing scenario is listed and every listed one fails.
	if res.ExitErr != nil {
		t.Errorf("conformance run %s does not match %s (%v); suite output:\n%s\n"+
			"(MCPGW_CONFORMANCE_UPDATE=1 rewrites the baseline)", r.name, baseline, res.ExitErr, tail(res.Output, 40))
	}
	// Belt and braces: the same comparison on our side, so a suite
	// that ignores an unknown flag cannot pass silently.
	want, err := readBaseline(baseline)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(want, failing) {
		t.Errorf("failing scenarios %v, baseline %s lists %v", failing, filepath.Base(baseline), want)
	}
	return res, failing
}

func outDir(t *testing.T, name string) string {
	base := os.Getenv("MCPGW_CONFORMANCE_OUT")
	if base == "" {
		return t.TempDir()
	}
	dir, err := filepath.Abs(filepath.Join(base, name))
	if err == nil {
		_ = os.RemoveAll(dir)
		err = os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
