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

// TestStatelessBackendListChanged: a backend marked stateless is reached
// over the stateless protocol (server/discover, then subscriptions/listen
// opened by the go-sdk client), so its list_changed reaches the broker,
// which re-lists and notifies its own clients of both eras.
func TestStatelessBackendListChanged(t *testing.T) {
	echo := mcptest.NewEchoServer("e1")
	probes := mcptest.CountRequests(echo, "tools/list") // this era's probe re-lists
	ts := serveStatelessBackend(t, echo)
	h := newHarness(t, testConfig(t, config.Server{Name: "echo", URL: ts.URL, Prefix: "echo_", Stateless: true}))
	ready := h.waitState(t, "echo", upstream.StateReady)
	if ready.ProtocolVersion != "2026-07-28" {
		t.Errorf("negotiated %q with the stateless backend, want 2026-07-28", ready.ProtocolVersion)
	}

	oldNotified := make(chan struct{}, 10)
	old := connect(t, h.url, &mcp.ClientOptions{
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) { oldNotified <- struct{}{} },
	})
	<-old.streamUp
	newNotified := make(chan struct{}, 10)
	cur := connectVersion(t, h.url, &mcp.ClientOptions{
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) { newNotified <- struct{}{} },
	}, "")

	mcptest.AddStaticTool(echo, "extra", "hi")
	waitNotified(t, oldNotified)
	waitNotified(t, newNotified)
	old.waitTools(t, "echo_extra added", func(names []string) bool { return slices.Contains(names, "echo_extra") })
	cur.waitTools(t, "echo_extra added", func(names []string) bool { return slices.Contains(names, "echo_extra") })
	res, err := cur.CallTool(t.Context(), &mcp.CallToolParams{Name: "echo_extra"})
	if err != nil || textOf(t, res) != "hi" {
		t.Fatalf("echo_extra = %v, %v", res, err)
	}
	// The session survives the probes (every 50ms here): no reconnect.
	waitMore(t, "three probes", probes, 3)
	if s := h.serverState("echo"); s.State != upstream.StateReady || !s.Since.Equal(ready.Since) || s.LastError != "" {
		t.Errorf("after pings: %+v, want ready since %v", s, ready.Since)
	}
	// With no ping in that era, the probe still notices the backend is gone.
	ts.CloseClientConnections()
	ts.Close()
	h.waitState(t, "echo", upstream.StateUnreachable)
}
