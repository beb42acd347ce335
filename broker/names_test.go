package broker

import (
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgw/mcpgw/broker/upstream"
	"github.com/mcpgw/mcpgw/filter/config"
	"github.com/mcpgw/mcpgw/tests/mcptest"
)

// TestListedNamesRouteToTheirServer: the unprefixed server "plain" has a
// tool ev_whoami of its own, and "ev" (prefix ev_) has whoami: both are
// offered as ev_whoami. Whichever server the config adds, and the broker
// reaches, first, the broker lists every name with the definition of the
// server and tool config.Names (the router's rule) sends it to: ev's
// whoami here, while plain's ev_whoami is shadowed.
func TestListedNamesRouteToTheirServer(t *testing.T) {
	for _, first := range []string{"plain", "ev"} {
		t.Run(first+"-first", func(t *testing.T) {
			plainSrv := mcptest.NewEchoServer("plain")
			mcptest.AddStaticTool(plainSrv, "ev_whoami", "plain's own ev_whoami")
			servers := map[string]config.Server{
				"plain": {Name: "plain", URL: serveBackend(t, plainSrv), Prefix: ""},
				"ev":    {Name: "ev", URL: serveBackend(t, mcptest.NewEchoServer("ev")), Prefix: "ev_"},
			}
			second := "ev"
			if first == "ev" {
				second = "plain"
			}
			h := newHarness(t, testConfig(t, servers[first]))
			h.waitState(t, first, upstream.StateReady)
			c := connect(t, h.url, nil)
			c.waitTools(t, first+"'s tools", func(n []string) bool { return slices.Contains(n, "ev_whoami") })
			cfg := testConfig(t, servers["plain"], servers["ev"])
			if err := h.b.Apply(cfg); err != nil {
				t.Fatal(err)
			}
			h.waitState(t, second, upstream.StateReady)
			c.waitTools(t, "both servers' tools", func(n []string) bool {
				return slices.Contains(n, "echo") && slices.Contains(n, "ev_echo")
			})
			checkListedRoute(t, h, c, config.NewNames(cfg.Servers))
			res, err := c.CallTool(t.Context(), &mcp.CallToolParams{Name: "ev_whoami"})
			if err != nil || textOf(t, res) != "ev" {
				t.Errorf("ev_whoami through the broker = %v, %v; want ev's answer", res, err)
			}
		})
	}
}

// checkListedRoute checks that every tool the client is listed comes from
// the backend, and is that backend's tool, that names routes its name to.
func checkListedRoute(t *testing.T, h *harness, c *client, names *config.Names) {
	t.Helper()
	listed := c.toolNames(t)
	if want := []string{"echo", "ev_echo", "ev_whoami", "whoami"}; !slices.Equal(listed, want) {
		t.Errorf("tools = %v, want %v", listed, want)
	}
	if _, body := get(t, h.ts.URL+"/metrics"); !strings.Contains(body, "mcpgw_broker_shadowed{kind=\"tool\"} 1\n") {
		t.Errorf("/metrics does not count plain's shadowed ev_whoami:\n%s", body)
	}
	h.b.mu.Lock()
	defer h.b.mu.Unlock()
	for _, name := range listed {
		i, bare, ok := names.Resolve(name)
		o := h.b.reg.tools[name]
		if !ok || o.backend != names.Server(i) || o.orig != bare {
			t.Errorf("%s is listed as %s's %q but routes to %s's %q (ok %v)", name, o.backend, o.orig, names.Server(i), bare, ok)
		}
	}
	if def := h.b.reg.exposed["ev_whoami"].def; def == nil || strings.Contains(def.Description, "fixed text") {
		t.Errorf("ev_whoami is listed with plain's definition: %+v", def)
	}
}
