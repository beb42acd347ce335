// Package conformance runs the official MCP conformance suite
// (npm @modelcontextprotocol/conformance) against the go-sdk
// everything-server, once directly (the reference) and once through the
// gateway (Envoy + router module + broker), and checks each run against an
// expected-failure baseline (baseline-*.yml, the suite's --expected-failures
// format): the test fails on a new failure and on a baseline entry that now
// passes (stale baseline).
//
// A gateway run must also prove that the calls took the router's path: the
// broker's fallback (which forwards tools/call and prompts/get over its own
// backend sessions) would pass the same scenarios. After each gateway run
// the test reads Envoy's and the broker's counters: the broker must have
// proxied no tools/call or prompts/get, and the router must have routed
// (and Envoy sent to the backends' cluster) at least as many requests as
// the suite has call sites (checkRouted).
//
// The prefixed runs strip real prefixes: the backend is the everything-
// server with its tools and prompts registered without "test_" (the only
// change to its source), behind the gateway prefix "test_", so each name
// the suite calls reaches the backend only once the router strips it. The
// names that cannot be stripped, because they do not start with "test_",
// keep an alias, and each baseline-*prefixed*.yml says which and why: the
// one the stable suite looks up in tools/list (json_schema_2020_12_tool),
// and the task-capable fixture's tools in the 2026-07-28 run.
//
// The suite's packages and a Node 22 runtime are pinned in
// build/npm/conformance (package.json + package-lock.json) and installed
// there with `npm ci` when missing or out of date.
package conformance

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/mcpgw/mcpgw/tests/harness"
)

// npmDir is where the pinned npm packages live, relative to the repo root.
const npmDir = "build/npm/conformance"

// Suites: the stable suite (session-era revisions) and the 2026-07-28
// pre-release, installed side by side (the second under an npm alias).
const (
	suiteStable = "node_modules/@modelcontextprotocol/conformance/dist/index.js"
	suite2026   = "node_modules/conformance-2026/dist/index.js"
)

// install installs the pinned npm folder (see harness.NpmCI) and returns it.
func install(root string) (string, error) {
	dir := filepath.Join(root, npmDir)
	return dir, harness.NpmCI(dir)
}

// runOptions describe one suite run.
type runOptions struct {
	Suite    string   // suiteStable or suite2026
	URL      string   // MCP endpoint
	Baseline string   // --expected-failures file; "" for none
	Extra    []string // e.g. --requirements 2026-07-28, --scenario X
	OutDir   string   // -o: per-scenario checks.json, plus output.txt
}

// result is what one run printed.
type result struct {
	Passed, Failed int               // "Total: N passed, M failed"
	Scenarios      map[string]checks // per scenario, from the SUMMARY lines
	Output         string
	ExitErr        error // non-nil when the suite exited non-zero
}

type checks struct{ Passed, Failed int }

func (r *result) failing() []string {
	var out []string
	for name, c := range r.Scenarios {
		if c.Failed > 0 {
			out = append(out, name)
		}
	}
	return out
}

var (
	ansiRE     = regexp.MustCompile("\x1b\\[[0-9;]*m")
	totalRE    = regexp.MustCompile(`(?m)^Total: (\d+) passed, (\d+) failed`)
	scenarioRE = regexp.MustCompile(`^[✓✗] (\S+): (\d+) passed, (\d+) failed`)
)

// runSuite runs the suite with the Node 22 runtime from npmDir.
func runSuite(ctx context.Context, dir string, o runOptions) (*result, error) {
	args := []string{filepath.Join(dir, o.Suite), "server", "--url", o.URL, "-o", o.OutDir}
	if o.Baseline != "" {
		args = append(args, "--expected-failures", o.Baseline)
	}
	args = append(args, o.Extra...)
	cmd := exec.CommandContext(ctx, filepath.Join(dir, harness.NodeBin), args...)
	cmd.Env = append(os.Environ(), "NO_COLOR=1", "FORCE_COLOR=0")
	out, err := cmd.CombinedOutput()
	_ = os.WriteFile(filepath.Join(o.OutDir, "output.txt"), out, 0o644)
	// The suite colours its baseline report even with NO_COLOR.
	r := &result{Output: ansiRE.ReplaceAllString(string(out), ""), Scenarios: map[string]checks{}}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		return r, fmt.Errorf("run suite: %w\n%s", err, out)
	}
	r.ExitErr = err
	m := totalRE.FindStringSubmatch(r.Output)
	if m == nil {
		return r, fmt.Errorf("suite output has no %q line:\n%s", "Total: N passed, M failed", out)
	}
	r.Passed, _ = strconv.Atoi(m[1])
	r.Failed, _ = strconv.Atoi(m[2])
	summary := false
	sc := bufio.NewScanner(strings.NewReader(r.Output))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "=== SUMMARY ===") {
			summary = true
			continue
		}
		if !summary {
			continue
		}
		if strings.HasPrefix(line, "Total:") {
			break
		}
		if m := scenarioRE.FindStringSubmatch(line); m != nil {
			p, _ := strconv.Atoi(m[2])
			f, _ := strconv.Atoi(m[3])
			r.Scenarios[m[1]] = checks{p, f}
		}
	}
	return r, nil
}

// failureDetails returns the failed checks' messages from the checks.json
// files under outDir (one line per check), for the test log.
func failureDetails(outDir string) string {
	var b strings.Builder
	files, _ := filepath.Glob(filepath.Join(outDir, "*", "checks.json"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, c := range parseChecks(data) {
			if c.Status == "FAILURE" {
				fmt.Fprintf(&b, "  %s / %s: %s\n", filepath.Base(filepath.Dir(f)), c.ID, c.ErrorMessage)
			}
		}
	}
	return b.String()
}

type check struct {
	ID           string `json:"id"`
	Status       string `json:"status"` // SUCCESS, FAILURE, WARNING, SKIPPED, INFO
	ErrorMessage string `json:"errorMessage"`
}

func parseChecks(data []byte) []check {
	var cs []check
	_ = json.Unmarshal(data, &cs)
	return cs
}

// scenarioDirRE matches the suite's per-scenario result directory,
// "server-<scenario>-<ISO timestamp>".
var scenarioDirRE = regexp.MustCompile(`^server-(.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$`)

// failingScenarios returns the scenarios with a FAILURE or WARNING check
// (what the suite's baseline logic counts as failing), sorted.
func failingScenarios(outDir string) []string {
	var out []string
	files, _ := filepath.Glob(filepath.Join(outDir, "*", "checks.json"))
	for _, f := range files {
		m := scenarioDirRE.FindStringSubmatch(filepath.Base(filepath.Dir(f)))
		if m == nil {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			out = append(out, m[1])
			continue
		}
		for _, c := range parseChecks(data) {
			if c.Status == "FAILURE" || c.Status == "WARNING" {
				out = append(out, m[1])
				break
			}
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}
