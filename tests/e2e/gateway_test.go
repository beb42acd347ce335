package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgw/mcpgw/tests/harness"
	"github.com/mcpgw/mcpgw/tests/mcptest"
)

// TestGateway walks the whole story of the gateway issue through one real
// Envoy: initialize → prefixed tools/list from two servers → calls routed
// to each → backend restart (session 404) → the call is replayed → spoofed
// routing headers ignored → a third server hot-added to the config file.
func TestGateway(t *testing.T) {
	echo := &backend{name: "echo", prefix: "echo_", srv: mcptest.NewEchoServer("echo")}
	math := &backend{name: "math", prefix: "math_", srv: mcptest.NewMathServer("math")}
	e := startEnv(t, echo, math)
	top := t

	listChanged := make(chan struct{}, 16)
	cs := e.connect(t, &mcp.ClientOptions{
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) {
			select {
			case listChanged <- struct{}{}:
			default:
			}
		},
	}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	t.Run("tools/list is aggregated and prefixed", func(t *testing.T) {
		names := toolNames(ctx, t, cs)
		for _, want := range []string{"echo_echo", "echo_whoami", "math_add", "math_whoami"} {
			if !slices.Contains(names, want) {
				t.Errorf("tools/list lacks %q; got %v", want, names)
			}
		}
	})

	routedBefore := e.routedCalls(t)
	t.Run("tools/call reaches each server", func(t *testing.T) {
		if got := callText(ctx, t, cs, "echo_whoami", nil); got != "echo" {
			t.Errorf("echo_whoami = %q, want echo", got)
		}
		if got := callText(ctx, t, cs, "math_whoami", nil); got != "math" {
			t.Errorf("math_whoami = %q, want math", got)
		}
		if got := callText(ctx, t, cs, "math_add", map[string]any{"a": 2, "b": 3}); got != "5" {
			t.Errorf("math_add(2,3) = %q, want 5", got)
		}
		if got := callText(ctx, t, cs, "echo_echo", map[string]any{"text": "hi"}); got != "hi" {
			t.Errorf("echo_echo(hi) = %q", got)
		}
		// The calls went through the router's backend route, not the broker.
		if n := e.routedCalls(t) - routedBefore; n < 4 {
			t.Errorf("Envoy routed %d requests to backends, want >= 4", n)
		}
	})

	t.Run("backend restart: the call that meets the session 404 is replayed and succeeds", func(t *testing.T) {
		admin := e.stack.Envoy.AdminURL()
		replays0, err := harness.Counter(admin, "mcpgw.replays_succeeded")
		if err != nil {
			t.Fatal(err)
		}
		echo.stop()
		echo.start(top) // same address, no sessions: the old backend session answers 404
		// The stored backend session is stale: this call meets the 404; the
		// router opens a new session, sends the call again and answers it.
		if got := callText(ctx, t, cs, "echo_echo", map[string]any{"text": "after restart"}); got != "after restart" {
			t.Errorf("first call after restart: echo_echo = %q", got)
		}
		if n, err := harness.WaitCounter(admin, "mcpgw.replays_succeeded", replays0+1); err != nil || n != replays0+1 {
			t.Errorf("mcpgw.replays_succeeded = %d (%v), want %d", n, err, replays0+1)
		}
		// The next call uses the new session: no replay.
		if got := callText(ctx, t, cs, "echo_whoami", nil); got != "echo" {
			t.Errorf("after restart echo_whoami = %q", got)
		}
		if n, err := harness.Counter(admin, "mcpgw.replays"); err != nil || n != replays0+1 {
			t.Errorf("mcpgw.replays = %d (%v), want %d", n, err, replays0+1)
		}
		// The gateway session survived: the broker still serves it.
		if names := toolNames(ctx, t, cs); !slices.Contains(names, "math_add") {
			t.Errorf("tools/list after backend restart: %v", names)
		}
	})

	t.Run("spoofed routing headers are ignored", func(t *testing.T) {
		spoof := &http.Client{Transport: headerAdder{
			"X-Mcp-Servername":    "e2e/math",
			"X-Mcp-Upstream-Host": math.addr,
			"X-Mcp-Toolname":      "add",
		}}
		sc := e.connect(t, nil, spoof)
		// tools/list must still come from the broker (aggregated), not math.
		if names := toolNames(ctx, t, sc); !slices.Contains(names, "echo_echo") {
			t.Errorf("spoofed tools/list reached a backend: %v", names)
		}
		if got := callText(ctx, t, sc, "echo_whoami", nil); got != "echo" {
			t.Errorf("spoofed echo_whoami = %q, want echo", got)
		}
	})

	t.Run("bad input gets JSON-RPC errors", func(t *testing.T) {
		for _, tc := range []struct {
			body       string
			session    string
			wantStatus int
			wantCode   int
		}{
			{`{"jsonrpc":"2.0","id":1,`, "", 400, -32700},
			{`{"jsonrpc":"1.0","id":1,"method":"ping"}`, "", 400, -32600},
			{`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"nope_x"}}`, cs.ID(), 200, -32602},
			{`{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"echo_echo"}}`, "", 400, -32600},
			{`{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"echo_echo"}}`, "forged." + strings.Repeat("A", 22), 404, -32600},
		} {
			status, code := postRaw(t, e.stack.URL(), tc.session, tc.body)
			if status != tc.wantStatus || code != tc.wantCode {
				t.Errorf("%s: got HTTP %d code %d, want %d %d", tc.body, status, code, tc.wantStatus, tc.wantCode)
			}
		}
	})

	t.Run("hot-add a third server without restarting Envoy", func(t *testing.T) {
		third := &backend{name: "third", prefix: "third_", srv: mcptest.NewEchoServer("third")}
		third.start(top)
		e.backends = append(e.backends, third)
		drain(listChanged)
		pid := e.stack.Envoy.PID()
		start := time.Now()
		e.writeConfig(t)
		select {
		case <-listChanged:
		case <-time.After(15 * time.Second):
			t.Fatal("no notifications/tools/list_changed within 15s of the config change")
		}
		waitFor(t, 15*time.Second, func() bool { return slices.Contains(toolNames(ctx, t, cs), "third_whoami") })
		// The router may see the file a moment after the broker did.
		waitFor(t, 10*time.Second, func() bool {
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "third_whoami"})
			return err == nil && !res.IsError && resultText(res) == "third"
		})
		t.Logf("third server listable and callable %v after the config change", time.Since(start).Round(time.Millisecond))
		if e.stack.Envoy.PID() != pid || e.stack.Envoy.Exited() {
			t.Error("Envoy restarted")
		}
	})
}

func toolNames(ctx context.Context, t *testing.T, cs *mcp.ClientSession) []string {
	t.Helper()
	var names []string
	for tool, err := range cs.Tools(ctx, nil) {
		if err != nil {
			t.Fatalf("tools/list: %v", err)
		}
		names = append(names, tool.Name)
	}
	return names
}

func callText(ctx context.Context, t *testing.T, cs *mcp.ClientSession, name string, args map[string]any) string {
	t.Helper()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("tools/call %s: %v", name, err)
	}
	if res.IsError {
		t.Fatalf("tools/call %s: tool error %s", name, resultText(res))
	}
	return resultText(res)
}

func resultText(res *mcp.CallToolResult) string {
	var parts []string
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			parts = append(parts, tc.Text)
		}
	}
	return strings.Join(parts, "")
}

// postRaw sends one JSON-RPC body and returns the HTTP status and the
// JSON-RPC error code (0 if none) of the JSON or SSE response.
func postRaw(t *testing.T, url, session, body string) (int, int) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, bytes.NewBufferString(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if session != "" {
		req.Header.Set("Mcp-Session-Id", session)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		for line := range strings.Lines(string(b)) { // the response is the last data
			if d, ok := strings.CutPrefix(strings.TrimSpace(line), "data:"); ok {
				b = []byte(d)
			}
		}
	}
	var msg struct {
		Error *struct{ Code int } `json:"error"`
	}
	if err := json.Unmarshal(b, &msg); err != nil {
		t.Errorf("response to %s is not JSON: %q", body, b)
	}
	if msg.Error == nil {
		return resp.StatusCode, 0
	}
	return resp.StatusCode, msg.Error.Code
}

// routedCalls reads how many requests Envoy sent to the backends' cluster.
func (e *env) routedCalls(t *testing.T) int {
	t.Helper()
	resp, err := http.Get(e.stack.Envoy.AdminURL() + "/stats?filter=^cluster.mcp_servers.upstream_rq_total$")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var n int
	fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(string(b), "cluster.mcp_servers.upstream_rq_total:")), "%d", &n)
	return n
}

type headerAdder map[string]string

func (h headerAdder) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range h {
		r.Header.Set(k, v)
	}
	return http.DefaultTransport.RoundTrip(r)
}

func drain(ch chan struct{}) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

func waitFor(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
