package conformance

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/filter/config"
	"github.com/mcpgw/mcpgw/internal/testenv"
	"github.com/mcpgw/mcpgw/tests/harness"
	"github.com/mcpgw/mcpgw/tests/mcptest/tasks"
)

// Environment:
//
//	MCPGW_CONFORMANCE_OUT=dir   keep each run's results (checks.json per scenario, output.txt) under dir/<run>
//	MCPGW_CONFORMANCE_UPDATE=1  rewrite the baseline files from this run's failures instead of asserting
//	MCPGW_ENVOY, MCPGW_DYNMOD_DIR, CI as for tests/e2e
//
// Each run is a subtest; `-run 'TestConformance/gateway$'` runs one.

// everything-server is built from the go-sdk version in go.mod.
const everythingServerPkg = "github.com/modelcontextprotocol/go-sdk/conformance/everything-server"

type run struct {
	name     string
	suite    string   // suiteStable or suite2026
	extra    []string // extra suite flags
	stateful bool     // everything-server -stateless=false
	gateway  bool     // through Envoy + router + broker
	prefix   string   // the backend's prefix in the gateway config
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
	// Prefixed, with aliases for the names the suite calls: they keep
	// working, while every other name is only offered prefixed.
	{name: "gateway-prefixed", suite: suiteStable, stateful: true, gateway: true, prefix: "ev_",
		aliases: sameNames(stableSuiteNames...)},
	// The stateless 2026-07-28 revision, suite 0.2.0-alpha.12.
	{name: "direct-2026-07-28", suite: suite2026, extra: []string{"--requirements", "2026-07-28"}},
	// Through the gateway the everything-server (unprefixed) has a
	// task-capable neighbour, for the tasks extension's scenarios, which
	// the everything-server does not implement (directly they fail).
	{name: "gateway-2026-07-28", suite: suite2026, extra: []string{"--requirements", "2026-07-28"}, gateway: true, tasks: true},
}

// tasksSuiteNames are the tools the 2026-07-28 suite's tasks scenarios call
// (the fixture's tools, see tests/mcptest/tasks).
var tasksSuiteNames = []string{
	"greet", "slow_compute", "failing_job", "protocol_error_job", "confirm_delete", "multi_input", "test_tool_with_task",
}

// stableSuiteNames are the tool and prompt names the stable suite calls
// (grep "test_" in its dist/index.js): fixed names, which a client of a
// prefixed server can reach only through aliases.
var stableSuiteNames = []string{
	"test_simple_text", "test_image_content", "test_audio_content", "test_embedded_resource",
	"test_multiple_content_types", "test_tool_with_logging", "test_tool_with_progress",
	"test_error_handling", "test_sampling", "test_elicitation", "test_elicitation_sep1034_defaults",
	"test_elicitation_sep1330_enums", "test_reconnection",
	"test_simple_prompt", "test_prompt_with_arguments", "test_prompt_with_embedded_resource",
	"test_prompt_with_image",
}

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
	server := buildEverythingServer(t, root)

	var summary []string
	for _, r := range runs {
		t.Run(r.name, func(t *testing.T) {
			url := startEverythingServer(t, server, r.stateful)
			if r.gateway {
				url = startGateway(t, root, url, r, !r.stateful)
			}
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
			line := fmt.Sprintf("%-20s Total: %d passed, %d failed (%d scenarios, failing: %s)",
				r.name, res.Passed, res.Failed, len(res.Scenarios), strings.Join(failing, " "))
			summary = append(summary, line)
			t.Log(line)
			if details := failureDetails(out); details != "" {
				t.Logf("failed checks:\n%s", details)
			}
			if len(res.Scenarios) == 0 {
				t.Fatalf("no scenario ran:\n%s", res.Output)
			}
			if update {
				if err := writeBaseline(baseline, r, failing); err != nil {
					t.Fatal(err)
				}
				t.Logf("wrote %s", baseline)
				return
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
		})
	}
	t.Logf("conformance summary:\n%s", strings.Join(summary, "\n"))
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

// buildEverythingServer builds the go-sdk conformance server at the go-sdk
// version this module requires.
func buildEverythingServer(t *testing.T, root string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "everything-server")
	cmd := exec.Command("go", "build", "-o", bin, everythingServerPkg)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", everythingServerPkg, err, out)
	}
	return bin
}

// startEverythingServer runs the server on a fresh loopback port until the
// test ends and returns its MCP URL.
func startEverythingServer(t *testing.T, bin string, stateful bool) string {
	t.Helper()
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(bin, "-http", addr, fmt.Sprintf("-stateless=%t", !stateful))
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-done:
			t.Fatalf("everything-server exited:\n%s", logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("everything-server not listening on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The suite's DNS-rebinding scenario needs a localhost URL; the
	// server accepts Host 127.0.0.1 and localhost alike.
	return fmt.Sprintf("http://localhost:%d/mcp", port)
}

// startGateway starts Envoy with the router module and the broker in front
// of backendURL, named by r's prefix and aliases, and returns the gateway's
// MCP URL. stateless declares the backend as serving the stateless era
// (config.Server.Stateless).
func startGateway(t *testing.T, root, backendURL string, r run, stateless bool) string {
	t.Helper()
	envoyBin, err := harness.FindEnvoy(root)
	testenv.Require(t, err)
	moduleDir := harness.Module(t)
	hostport := strings.TrimSuffix(strings.TrimPrefix(backendURL, "http://"), "/mcp")
	_, port, err := harness.SplitHostPort(hostport)
	if err != nil {
		t.Fatal(err)
	}
	// The router dials the backend by URL and sets :authority to Hostname:
	// the everything-server refuses a non-loopback Host (DNS rebinding).
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	servers := []config.Server{{
		Name: "conformance/everything", URL: "http://" + addr + "/mcp", Hostname: addr, Prefix: r.prefix,
		Aliases: r.aliases, Stateless: stateless,
	}}
	if r.tasks {
		url, stop, err := tasks.Serve(context.Background(), "127.0.0.1:0", tasks.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(stop)
		host := strings.TrimSuffix(strings.TrimPrefix(url, "http://"), tasks.Path)
		servers = append(servers, config.Server{Name: "conformance/tasks", URL: url, Hostname: host,
			Prefix: "tasks_", Aliases: sameNames(tasksSuiteNames...), Stateless: true})
	}
	if err := harness.WriteConfig(cfg, servers); err != nil {
		t.Fatal(err)
	}
	stack, err := harness.StartStack(context.Background(), harness.StackOptions{
		Root: root, EnvoyBinary: envoyBin, ModuleDir: moduleDir,
		ConfigPath: cfg, WorkDir: dir, EnvoyLogLevel: "info",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := stack.Close(); err != nil {
			t.Errorf("stack close: %v", err)
		}
		if t.Failed() {
			t.Logf("envoy output (tail):\n%s", tail(stack.Envoy.Logs(), 60))
		}
	})
	return fmt.Sprintf("http://localhost:%d/mcp", stack.Envoy.Port)
}
