package broker

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgw/mcpgw/broker/upstream"
	"github.com/mcpgw/mcpgw/filter/config"
	"github.com/mcpgw/mcpgw/tests/mcptest"
)

// withVirtual returns cfg with the virtual servers set, validated.
func withVirtual(t *testing.T, cfg *config.Config, vss ...config.VirtualServer) *config.Config {
	t.Helper()
	c := *cfg
	c.VirtualServers = vss
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return &c
}

// virtualBackends is twoBackends with the virtual server team-a/calc,
// which lists one tool of each server and one that no server provides.
func virtualBackends(t *testing.T) (*harness, *config.Config) {
	t.Helper()
	base := testConfig(t,
		config.Server{Name: "echo", URL: serveBackend(t, mcptest.NewEchoServer("e1")), Prefix: "echo_"},
		config.Server{Name: "math", URL: serveBackend(t, mcptest.NewMathServer("m1")), Prefix: "math_"},
	)
	cfg := withVirtual(t, base, config.VirtualServer{Name: "team-a/calc", Description: "Adds and echoes.",
		Tools: []string{"math_add", "echo_echo", "nope_missing"}})
	h := newHarness(t, cfg)
	h.waitState(t, "echo", upstream.StateReady)
	h.waitState(t, "math", upstream.StateReady)
	return h, base
}

func TestVirtualServerOffersItsToolsOnly(t *testing.T) {
	h, _ := virtualBackends(t)
	vc := connect(t, h.ts.URL+"/mcp/team-a/calc", nil)
	vc.waitTools(t, "the virtual server's tools", func(n []string) bool {
		return slices.Equal(n, []string{"echo_echo", "math_add"})
	})
	init := vc.InitializeResult()
	if init.ServerInfo.Title != "team-a/calc" || init.ServerInfo.Description != "Adds and echoes." || init.Instructions != "Adds and echoes." {
		t.Errorf("server info %+v, instructions %q", init.ServerInfo, init.Instructions)
	}
	if caps := init.Capabilities; caps.Tools == nil || !caps.Tools.ListChanged || caps.Prompts != nil || caps.Resources != nil {
		t.Errorf("capabilities %+v: want tools only", caps)
	}
	// A listed tool is callable through the broker's fallback path; an
	// unlisted one is unknown there, though the gateway has it.
	res, err := vc.CallTool(t.Context(), &mcp.CallToolParams{Name: "math_add", Arguments: map[string]any{"a": 2, "b": 2}})
	if err != nil || textOf(t, res) != "4" {
		t.Fatalf("math_add through the virtual server = %v, %v", res, err)
	}
	if res, err := vc.CallTool(t.Context(), &mcp.CallToolParams{Name: "math_whoami"}); err == nil && !res.IsError {
		t.Errorf("math_whoami through the virtual server: %v, want an error", res)
	}
	// The gateway's own endpoint is unchanged.
	c := connect(t, h.url, nil)
	if got := c.toolNames(t); !slices.Equal(got, []string{"echo_echo", "echo_whoami", "math_add", "math_whoami"}) {
		t.Errorf("/mcp tools = %v", got)
	}

	var st Status
	_, body := get(t, h.ts.URL+"/status")
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	if want := []VirtualServerStatus{{Name: "team-a/calc", Tools: 2, Listed: 3}}; !slices.Equal(st.VirtualServers, want) {
		t.Errorf("/status virtualServers = %+v, want %+v", st.VirtualServers, want)
	}
	_, metrics := get(t, h.ts.URL+"/metrics")
	if !strings.Contains(metrics, "mcpgw_broker_sessions 2\n") {
		t.Errorf("/metrics does not count the virtual server's session:\n%s", metrics)
	}
}

func TestUnknownVirtualServer(t *testing.T) {
	h, _ := virtualBackends(t)
	for _, path := range []string{"/mcp/team-a/nope", "/mcp/", "/mcp/team-a/calc/"} {
		_, err := mcp.NewClient(&mcp.Implementation{Name: "c", Version: "v0"}, nil).
			Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: h.ts.URL + path}, nil)
		name := strings.TrimPrefix(path, "/mcp/")
		if err == nil || !strings.Contains(err.Error(), `virtual server "`+name+`" not found`) {
			t.Errorf("connect to %s: %v, want a virtual-server-not-found error", path, err)
		}
	}
	resp := post(t, h.ts.URL+"/mcp/team-a/nope", "", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`)
	body, _ := io.ReadAll(resp.Body)
	var msg struct {
		ID    any `json:"id"`
		Error struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &msg); err != nil || resp.StatusCode != http.StatusNotFound ||
		resp.Header.Get("Content-Type") != "application/json" || msg.Error.Code != -32600 || msg.ID != 1.0 ||
		!strings.Contains(msg.Error.Message, `"team-a/nope" not found`) {
		t.Errorf("unknown virtual server: HTTP %d %q %s (%v)", resp.StatusCode, resp.Header.Get("Content-Type"), body, err)
	}
	// Not a single request: the id is unknown.
	resp = post(t, h.ts.URL+"/mcp/team-a/nope", "", `[{"jsonrpc":"2.0","id":1,"method":"ping"}]`)
	if body, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), `"id":null`) {
		t.Errorf("batch to an unknown virtual server: HTTP %d %s", resp.StatusCode, body)
	}
	if strings.Contains(string(body), "team-a/calc") {
		t.Errorf("the 404 lists the other virtual servers: %s", body)
	}
	if n := h.b.metrics.virtualUnknown.Load(); n < 4 {
		t.Errorf("virtual_server_not_found = %d, want >= 4", n)
	}
}

// TestVirtualServerSessionsAreBound: a session belongs to the endpoint it
// was opened on; its id means nothing on another one.
func TestVirtualServerSessionsAreBound(t *testing.T) {
	h, _ := virtualBackends(t)
	vc := connect(t, h.ts.URL+"/mcp/team-a/calc", nil)
	c := connect(t, h.url, nil)
	for _, tc := range []struct{ url, id string }{
		{h.url, vc.ID()},
		{h.ts.URL + "/mcp/team-a/calc", c.ID()},
	} {
		if resp := post(t, tc.url, tc.id, listTools); resp.StatusCode != http.StatusNotFound {
			t.Errorf("session of another endpoint on %s: HTTP %d, want 404", tc.url, resp.StatusCode)
		}
	}
	if resp := post(t, h.ts.URL+"/mcp/team-a/calc", vc.ID(), listTools); resp.StatusCode != http.StatusOK {
		t.Errorf("own session: HTTP %d", resp.StatusCode)
	}
}

func TestVirtualServerFollowsConfig(t *testing.T) {
	h, base := virtualBackends(t)
	notified := make(chan struct{}, 10)
	vc := connect(t, h.ts.URL+"/mcp/team-a/calc", &mcp.ClientOptions{
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) { notified <- struct{}{} },
	})
	<-vc.streamUp
	vc.waitTools(t, "first list", func(n []string) bool { return len(n) == 2 })

	// The list changes: clients are notified and see the new list.
	calc := config.VirtualServer{Name: "team-a/calc", Description: "Adds and echoes.", Tools: []string{"math_add", "math_whoami"}}
	if err := h.b.Apply(withVirtual(t, base, calc)); err != nil {
		t.Fatal(err)
	}
	waitNotified(t, notified)
	vc.waitTools(t, "new list", func(n []string) bool { return slices.Equal(n, []string{"math_add", "math_whoami"}) })

	// A server goes: its tools leave the virtual server; it comes back (with
	// a new prefix the list does not name): they do not return.
	if err := h.b.Apply(withVirtual(t, testConfig(t, base.Servers[0]), calc)); err != nil {
		t.Fatal(err)
	}
	vc.waitTools(t, "math removed", func(n []string) bool { return len(n) == 0 })
	renamed := base.Servers[1]
	renamed.Prefix = "calc_"
	if err := h.b.Apply(withVirtual(t, testConfig(t, base.Servers[0], renamed), calc)); err != nil {
		t.Fatal(err)
	}
	h.waitState(t, "math", upstream.StateReady)
	eventually(t, "calc_add exposed", func() bool { return slices.Contains(h.exposedTools(), "calc_add") })
	if got := vc.toolNames(t); len(got) != 0 {
		t.Errorf("tools after the rename = %v, want none", got)
	}
	// The list follows the rename: the tools are back.
	calc.Tools = []string{"calc_add"}
	if err := h.b.Apply(withVirtual(t, testConfig(t, base.Servers[0], renamed), calc)); err != nil {
		t.Fatal(err)
	}
	vc.waitTools(t, "renamed tool listed", func(n []string) bool { return slices.Equal(n, []string{"calc_add"}) })

	// A new description replaces the server: the old session is closed.
	calc.Description = "Adds."
	if err := h.b.Apply(withVirtual(t, testConfig(t, base.Servers[0], renamed), calc)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "old session closed", func() bool {
		return post(t, h.ts.URL+"/mcp/team-a/calc", vc.ID(), listTools).StatusCode == http.StatusNotFound
	})
	vc2 := connect(t, h.ts.URL+"/mcp/team-a/calc", nil)
	if d := vc2.InitializeResult().Instructions; d != "Adds." {
		t.Errorf("instructions %q after the change", d)
	}
	vc2.waitTools(t, "replacement lists the tools", func(n []string) bool { return slices.Equal(n, []string{"calc_add"}) })

	// Removed: its sessions are closed and it is unknown.
	if err := h.b.Apply(testConfig(t, base.Servers[0], renamed)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "session closed", func() bool {
		return post(t, h.ts.URL+"/mcp/team-a/calc", vc2.ID(), listTools).StatusCode == http.StatusNotFound
	})
	if st := h.b.Status(); len(st.VirtualServers) != 0 {
		t.Errorf("status still lists %+v", st.VirtualServers)
	}
}

func TestVirtualServerNoConfigYet(t *testing.T) {
	b := New(Options{})
	defer b.Close()
	rec := httptest.NewRecorder()
	b.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/mcp/team-a/calc", strings.NewReader(listTools)))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503 before the first config", rec.Code)
	}
}
