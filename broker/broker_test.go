package broker

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgw/mcpgw/broker/upstream"
	"github.com/mcpgw/mcpgw/filter/config"
	"github.com/mcpgw/mcpgw/filter/sessionid"
	"github.com/mcpgw/mcpgw/tests/mcptest"
)

// twoBackends serves an echo and a math server behind a broker, and waits
// until both are ready.
func twoBackends(t *testing.T) *harness {
	t.Helper()
	cfg := testConfig(t,
		config.Server{Name: "echo", URL: serveBackend(t, mcptest.NewEchoServer("e1")), Prefix: "echo_"},
		config.Server{Name: "math", URL: serveBackend(t, mcptest.NewMathServer("m1")), Prefix: "math_"},
	)
	h := newHarness(t, cfg)
	h.waitState(t, "echo", upstream.StateReady)
	h.waitState(t, "math", upstream.StateReady)
	return h
}

func TestInitializeMintsGatewaySessionID(t *testing.T) {
	h := twoBackends(t)
	c := connect(t, h.url, nil)
	codec, err := sessionid.New([]byte(testKey))
	if err != nil {
		t.Fatal(err)
	}
	if id := c.ID(); !valid(codec, id) {
		t.Errorf("session id %q is not valid for the gateway key", id)
	}
	if v := c.InitializeResult().ProtocolVersion; !slices.Contains(upstream.SupportedProtocolVersions(), v) {
		t.Errorf("negotiated %q", v)
	}
	caps := c.InitializeResult().Capabilities
	if caps.Tools == nil || !caps.Tools.ListChanged || caps.Prompts == nil || caps.Resources == nil {
		t.Errorf("capabilities = %+v", caps)
	}
}

// TestStatelessEra: a 2026-07-28 client (the go-sdk's default) is served on
// the same endpoint without a session: server/discover, the aggregated
// lists and the proxied calls, whose stateless _meta does not reach the
// broker's session-era backend sessions.
func TestStatelessEra(t *testing.T) {
	h := twoBackends(t)
	c := connectVersion(t, h.url, nil, "")
	if id := c.ID(); id != "" {
		t.Errorf("stateless client got session id %q", id)
	}
	if v := c.InitializeResult().ProtocolVersion; v != statelessVersion {
		t.Fatalf("negotiated %q, want %s", v, statelessVersion)
	}
	caps := c.InitializeResult().Capabilities
	if caps.Tools == nil || caps.Prompts == nil || caps.Resources == nil {
		t.Errorf("discovered capabilities = %+v", caps)
	}
	want := []string{"echo_echo", "echo_whoami", "math_add", "math_whoami"}
	if got := c.toolNames(t); !slices.Equal(got, want) {
		t.Errorf("tools = %v, want %v", got, want)
	}
	res, err := c.CallTool(t.Context(), &mcp.CallToolParams{Name: "math_add", Arguments: map[string]any{"a": 1, "b": 2}})
	if err != nil || textOf(t, res) != "3" {
		t.Fatalf("math_add = %v, %v", res, err)
	}
	prompt, err := c.GetPrompt(t.Context(), &mcp.GetPromptParams{Name: "echo_greet", Arguments: map[string]string{"who": "Ada"}})
	if err != nil || len(prompt.Messages) == 0 {
		t.Errorf("echo_greet = %v, %v", prompt, err)
	}
	// Session-era clients keep their sessions next to it.
	if old := connect(t, h.url, nil); old.ID() == "" {
		t.Error("session-era client got no session id")
	}
}

func TestAggregatedPrefixedLists(t *testing.T) {
	h := twoBackends(t)
	c := connect(t, h.url, nil)
	want := []string{"echo_echo", "echo_whoami", "math_add", "math_whoami"}
	if got := c.toolNames(t); !slices.Equal(got, want) {
		t.Errorf("tools = %v, want %v", got, want)
	}
	prompts, err := c.ListPrompts(t.Context(), nil)
	if err != nil || len(prompts.Prompts) != 1 || prompts.Prompts[0].Name != "echo_greet" {
		t.Errorf("prompts = %v, %v", prompts, err)
	}
	res, err := c.ListResources(t.Context(), nil)
	if err != nil || len(res.Resources) != 1 || res.Resources[0].URI != mcptest.PiURI {
		t.Errorf("resources = %v, %v", res, err)
	}
}

func TestFallbackProxying(t *testing.T) {
	h := twoBackends(t)
	c := connect(t, h.url, nil)

	res, err := c.CallTool(t.Context(), &mcp.CallToolParams{Name: "math_add", Arguments: map[string]any{"a": 1, "b": 2}})
	if err != nil || textOf(t, res) != "3" {
		t.Fatalf("math_add = %v, %v", res, err)
	}
	res, err = c.CallTool(t.Context(), &mcp.CallToolParams{Name: "echo_whoami"})
	if err != nil || textOf(t, res) != "e1" {
		t.Fatalf("echo_whoami = %v, %v", res, err)
	}
	big := strings.Repeat("x", 1024)
	res, err = c.CallTool(t.Context(), &mcp.CallToolParams{Name: "echo_echo", Arguments: map[string]any{"text": big}})
	if err != nil || textOf(t, res) != big {
		t.Fatalf("echo_echo(1 KiB) = %v, %v", res, err)
	}
	// The backend validates arguments: its error comes back as a tool error.
	res, err = c.CallTool(t.Context(), &mcp.CallToolParams{Name: "math_add", Arguments: map[string]any{"a": "x"}})
	if err == nil && !res.IsError {
		t.Errorf("bad arguments: got %v, want an error", res)
	}

	p, err := c.GetPrompt(t.Context(), &mcp.GetPromptParams{Name: "echo_greet", Arguments: map[string]string{"who": "Ada"}})
	if err != nil || !strings.Contains(p.Messages[0].Content.(*mcp.TextContent).Text, "Ada") {
		t.Fatalf("echo_greet = %v, %v", p, err)
	}
	r, err := c.ReadResource(t.Context(), &mcp.ReadResourceParams{URI: mcptest.PiURI})
	if err != nil || r.Contents[0].Text != mcptest.PiText {
		t.Fatalf("read pi = %v, %v", r, err)
	}
	if got := h.b.metrics.proxied[proxiedTool].Load(); got != 4 {
		t.Errorf("proxied tools = %d, want 4", got)
	}
}

func TestInvalidBackendExcluded(t *testing.T) {
	noCaps := mcp.NewServer(&mcp.Implementation{Name: "empty"},
		&mcp.ServerOptions{Capabilities: &mcp.ServerCapabilities{}})
	oldOnly := mcp.NewServer(&mcp.Implementation{Name: "old"},
		&mcp.ServerOptions{SupportedProtocolVersions: []string{"2024-11-05"}})
	mcptest.AddStaticTool(oldOnly, "legacy", "x")
	cfg := testConfig(t,
		config.Server{Name: "echo", URL: serveBackend(t, mcptest.NewEchoServer("e1")), Prefix: "echo_"},
		config.Server{Name: "empty", URL: serveBackend(t, noCaps), Prefix: "empty_"},
		config.Server{Name: "old", URL: serveBackend(t, oldOnly), Prefix: "old_"},
	)
	h := newHarness(t, cfg)
	h.waitState(t, "echo", upstream.StateReady)
	if s := h.waitState(t, "empty", upstream.StateInvalid); !strings.Contains(s.LastError, "capabilities") {
		t.Errorf("empty: lastError = %q", s.LastError)
	}
	if s := h.waitState(t, "old", upstream.StateInvalid); !strings.Contains(s.LastError, "2024-11-05") {
		t.Errorf("old: lastError = %q", s.LastError)
	}
	c := connect(t, h.url, nil)
	if got, want := c.toolNames(t), []string{"echo_echo", "echo_whoami"}; !slices.Equal(got, want) {
		t.Errorf("tools = %v, want %v", got, want)
	}
}

func TestBackendDownThenBack(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there yet
	cfg := testConfig(t,
		config.Server{Name: "echo", URL: serveBackend(t, mcptest.NewEchoServer("e1")), Prefix: "echo_"},
		config.Server{Name: "math", URL: "http://" + addr + mcptest.Path, Prefix: "math_"},
	)
	h := newHarness(t, cfg)
	// The down backend does not hold up the other one.
	h.waitState(t, "echo", upstream.StateReady)
	if s := h.waitState(t, "math", upstream.StateUnreachable); s.LastError == "" {
		t.Error("unreachable without lastError")
	}
	notified := make(chan struct{}, 10)
	c := connect(t, h.url, &mcp.ClientOptions{
		ToolListChangedHandler: func(_ context.Context, _ *mcp.ToolListChangedRequest) { notified <- struct{}{} },
	})
	if got, want := c.toolNames(t), []string{"echo_echo", "echo_whoami"}; !slices.Equal(got, want) {
		t.Errorf("tools while math is down = %v, want %v", got, want)
	}
	<-c.streamUp

	_, stop, err := mcptest.Serve(t.Context(), addr, mcptest.NewMathServer("m1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	h.waitState(t, "math", upstream.StateReady)
	waitNotified(t, notified)
	c.waitTools(t, "math_add back", func(names []string) bool { return slices.Contains(names, "math_add") })

	// Down again: its tools are withdrawn once a reconnect fails.
	stop()
	h.waitState(t, "math", upstream.StateUnreachable)
	eventually(t, "math tools withdrawn", func() bool { return !slices.Contains(h.exposedTools(), "math_add") })
}

func waitNotified(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("no notifications/tools/list_changed")
	}
}

func TestListChangedReachesClients(t *testing.T) {
	echo := mcptest.NewEchoServer("e1")
	h := newHarness(t, testConfig(t, config.Server{Name: "echo", URL: serveBackend(t, echo), Prefix: "echo_"}))
	h.waitState(t, "echo", upstream.StateReady)
	notified := make(chan struct{}, 10)
	c := connect(t, h.url, &mcp.ClientOptions{
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) { notified <- struct{}{} },
	})
	<-c.streamUp

	mcptest.AddStaticTool(echo, "extra", "hi")
	waitNotified(t, notified)
	c.waitTools(t, "echo_extra added", func(names []string) bool { return slices.Contains(names, "echo_extra") })
	res, err := c.CallTool(t.Context(), &mcp.CallToolParams{Name: "echo_extra"})
	if err != nil || textOf(t, res) != "hi" {
		t.Fatalf("echo_extra = %v, %v", res, err)
	}

	echo.RemoveTools("extra")
	waitNotified(t, notified)
	c.waitTools(t, "echo_extra removed", func(names []string) bool { return !slices.Contains(names, "echo_extra") })
}

func TestProxyToUnavailableBackend(t *testing.T) {
	b := New(Options{})
	defer b.Close()
	p := proxy{b}
	_, err := p.tool("gone", "x")(t.Context(), &mcp.CallToolRequest{Params: &mcp.CallToolParamsRaw{Name: "p_x"}})
	var werr *jsonrpc.Error
	if !errors.As(err, &werr) || werr.Code != jsonrpc.CodeInternalError || !strings.Contains(err.Error(), `"gone"`) {
		t.Errorf("error = %v, want an internal JSON-RPC error naming the server", err)
	}
	if b.metrics.proxyErrors[proxiedTool].Load() != 1 {
		t.Error("proxy error not counted")
	}
}

// valid reports whether codec verifies the id of an anonymous session.
func valid(codec *sessionid.Codec, id string) bool {
	_, ok := codec.Verify(id, "")
	return ok
}
