package conformance

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/filter/config"
	"github.com/mcpgw/mcpgw/internal/testenv"
	"github.com/mcpgw/mcpgw/tests/harness"
	"github.com/mcpgw/mcpgw/tests/mcptest/tasks"
)

// startGateway starts Envoy with the router module and the broker in front
// of backendURL, named by r's prefix and aliases, and returns the stack
// once it serves, the backends included. stateless declares the backend as
// serving the stateless era (config.Server.Stateless).
func startGateway(t *testing.T, root, backendURL string, r run, stateless bool) *harness.Stack {
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
		// A name inside the everything-server's prefix belongs to it
		// (config.Names): the fixture cannot have it as an alias.
		var names []string
		for _, n := range tasksSuiteNames {
			if !config.InPrefix(n, r.prefix) {
				names = append(names, n)
			}
		}
		servers = append(servers, config.Server{Name: "conformance/tasks", URL: url, Hostname: host,
			Prefix: "tasks_", Aliases: sameNames(names...), Stateless: true})
	}
	if err := harness.WriteConfig(cfg, servers); err != nil {
		t.Fatal(err)
	}
	stack, err := harness.StartStack(context.Background(), harness.StackOptions{
		Root: root, EnvoyBinary: envoyBin, ModuleDir: moduleDir,
		ConfigPath: cfg, WorkDir: dir, EnvoyLogLevel: "info",
		WaitServers: true, // the suite's first scenario lists the tools
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
	return stack
}

// checkRouted checks that the suite's tools/call and prompts/get took the
// router's path, not the broker's fallback, which would pass the same
// scenarios: every scenario passed (the baselines list none of a gateway
// run), so each of the suite's calls was answered, and the broker proxied
// none of them; the router routed, and Envoy sent to the backends, at
// least as many requests as the suite has call sites.
func checkRouted(t *testing.T, g *harness.Stack, npm string, r run) {
	t.Helper()
	names, err := suiteCalls(filepath.Join(npm, r.suite))
	if err != nil {
		t.Fatal(err)
	}
	if r.suite == suiteStable {
		called := slices.Compact(slices.Sorted(slices.Values(names)))
		if listed := slices.Sorted(slices.Values(stableSuiteNames)); !slices.Equal(called, listed) {
			t.Errorf("the suite calls %v, stableSuiteNames lists %v: update it (and the prefixed run)", called, listed)
		}
	}
	routing, err := g.CheckRouted(int64(len(names)))
	if err != nil {
		t.Errorf("%s: %v", r.name, err)
	}
	t.Logf("%s: %d call sites in the suite; routed %d, sent to backends %d, broker proxied %d tools/call and %d prompts/get",
		r.name, len(names), routing.Routed, routing.UpstreamRequests, routing.BrokerTools, routing.BrokerPrompts)
}

// callRE matches a call site in the suite's bundle: the SDK client's
// callTool({name:`x`...}) and getPrompt({name:`x`...}), and the raw
// requests' params {name:`x`,arguments:...}.
var callRE = regexp.MustCompile("(?:callTool|getPrompt)\\(\\{name:`([^`]+)`|\\bname:`([^`]+)`,arguments:")

// suiteCalls returns the tool or prompt name of every call site in the
// suite's bundle, in order, repeats included.
func suiteCalls(bundle string) ([]string, error) {
	b, err := os.ReadFile(bundle)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, m := range callRE.FindAllStringSubmatch(string(b), -1) {
		names = append(names, m[1]+m[2])
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%s: no call site found: the bundle changed, update callRE", bundle)
	}
	return names, nil
}
