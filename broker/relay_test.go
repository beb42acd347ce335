package broker

import (
	"context"
	"slices"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgw/mcpgw/broker/upstream"
	"github.com/mcpgw/mcpgw/filter/config"
	"github.com/mcpgw/mcpgw/tests/mcptest"
)

// TestListChangedRelayedWithoutCatalogChange: a backend's list_changed
// reaches the clients of the lists it contributes to even when re-listing
// shows no difference (the conformance suite re-adds the same tool, and a
// backend may change what a definition does not show): session-era
// sessions, stateless-era subscribers, and the virtual servers offering
// one of its tools, but not the others. The re-lists the broker makes on
// its own (the stateless backend's probes) relay nothing, and one
// announcement makes one notification.
func TestListChangedRelayedWithoutCatalogChange(t *testing.T) {
	echo := mcptest.NewEchoServer("e1")
	probes := mcptest.CountRequests(echo, "tools/list") // the stateless backend's probes re-list
	cfg := withVirtual(t, testConfig(t,
		config.Server{Name: "echo", URL: serveStatelessBackend(t, echo).URL, Prefix: "echo_", Stateless: true},
		config.Server{Name: "math", URL: serveBackend(t, mcptest.NewMathServer("m1")), Prefix: "math_"},
	),
		config.VirtualServer{Name: "echoes", Tools: []string{"echo_echo"}},
		config.VirtualServer{Name: "calc", Tools: []string{"math_add"}},
	)
	h := newHarness(t, cfg)
	h.waitState(t, "echo", upstream.StateReady)
	h.waitState(t, "math", upstream.StateReady)

	// watch connects a client counting the tools/list_changed it gets.
	watch := func(url, version string) chan struct{} {
		ch := make(chan struct{}, 10)
		c := connectVersion(t, url, &mcp.ClientOptions{
			ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) { ch <- struct{}{} },
		}, version)
		if version != "" {
			<-c.streamUp
		}
		return ch
	}
	session, stateless := watch(h.url, "2025-11-25"), watch(h.url, "")
	echoes, calc := watch(h.ts.URL+"/mcp/echoes", "2025-11-25"), watch(h.ts.URL+"/mcp/calc", "2025-11-25")
	prompts := make(chan struct{}, 10)
	c := connect(t, h.url, &mcp.ClientOptions{
		PromptListChangedHandler: func(context.Context, *mcp.PromptListChangedRequest) { prompts <- struct{}{} },
	})
	<-c.streamUp

	quiet := func(what string, chs ...chan struct{}) {
		t.Helper()
		waitMore(t, "three probes of the stateless backend", probes, 3)
		for _, ch := range chs {
			if n := len(ch); n != 0 {
				t.Errorf("%s: %d unexpected list_changed", what, n)
			}
		}
	}
	quiet("before any change", session, stateless, echoes, calc, prompts)

	// A real change first: the tool the backend re-adds below then exists.
	mcptest.AddStaticTool(echo, "extra", "hi")
	waitNotified(t, session)
	waitNotified(t, stateless)
	c.waitTools(t, "echo_extra added", func(names []string) bool { return slices.Contains(names, "echo_extra") })
	waitMore(t, "three probes of the stateless backend", probes, 3) // any late notification arrived
	for _, ch := range []chan struct{}{session, stateless, echoes, calc} {
		for len(ch) > 0 {
			<-ch
		}
	}

	// The same tool again: the lists are identical, the announcement is
	// relayed all the same, once, and not to calc (no echo tool there).
	mcptest.AddStaticTool(echo, "extra", "hi")
	for _, ch := range []chan struct{}{session, stateless, echoes} {
		waitNotified(t, ch)
	}
	quiet("after one identical re-add", session, stateless, echoes, calc, prompts)

	// Prompts likewise.
	echo.AddPrompt(&mcp.Prompt{
		Name:        "greet",
		Description: "Greets someone.",
		Arguments:   []*mcp.PromptArgument{{Name: "who", Required: true}},
	}, func(context.Context, *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		return &mcp.GetPromptResult{}, nil
	})
	waitSignal(t, "prompts/list_changed", prompts)
	quiet("after an identical prompt", prompts, calc)
}
