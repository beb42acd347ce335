package e2e

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/filter/config"
	"github.com/mcpgw/mcpgw/tests/harness"
	"github.com/mcpgw/mcpgw/tests/mcptest"
)

// TestSessionTermination: once a gateway session is terminated, a routed
// tools/call with its id gets HTTP 404 through the real Envoy (MCP: 404
// after termination, on every path), whether the DELETE went through this
// Envoy (the router revokes it at once) or reached the broker another way,
// as through another Envoy replica (the router learns it from the broker's
// revocation feed).
func TestSessionTermination(t *testing.T) {
	echo := &backend{name: "echo", prefix: "echo_", srv: mcptest.NewEchoServer("echo")}
	e := startEnv(t, echo)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const call = `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo_whoami"}}`

	t.Run("DELETE through this Envoy", func(t *testing.T) {
		cs := e.connect(t, nil, nil)
		if got := callText(ctx, t, cs, "echo_whoami", nil); got != "echo" {
			t.Fatalf("echo_whoami = %q", got)
		}
		id := cs.ID()
		if status, code := postRaw(t, e.stack.URL(), id, call); status != 200 || code != 0 {
			t.Fatalf("routed call before DELETE: HTTP %d code %d", status, code)
		}
		if err := cs.Close(); err != nil { // the go-sdk client sends DELETE
			t.Fatal(err)
		}
		if status, code := postRaw(t, e.stack.URL(), id, call); status != 404 || code != -32600 {
			t.Errorf("routed call after DELETE: HTTP %d code %d, want 404 -32600", status, code)
		}
	})

	t.Run("DELETE through another replica", func(t *testing.T) {
		cs := e.connect(t, nil, nil)
		id := cs.ID()
		if status, _ := postRaw(t, e.stack.URL(), id, call); status != 200 {
			t.Fatalf("routed call before DELETE: HTTP %d", status)
		}
		admin := e.stack.Envoy.AdminURL()
		before, err := harness.Counter(admin, "mcpgw.revocations_applied")
		if err != nil {
			t.Fatal(err)
		}
		// Straight to the broker: this Envoy does not see the DELETE.
		req, _ := http.NewRequestWithContext(ctx, http.MethodDelete, "http://"+e.stack.BrokerAddr+"/mcp", nil)
		req.Header.Set("Mcp-Session-Id", id)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("DELETE at the broker: HTTP %d", resp.StatusCode)
		}
		start := time.Now()
		e.waitRouterCounter(t, "mcpgw.revocations_applied", before+1)
		t.Logf("the router applied the broker's revocation within %v", time.Since(start).Round(time.Millisecond))
		if status, code := postRaw(t, e.stack.URL(), id, call); status != 404 || code != -32600 {
			t.Errorf("routed call after DELETE: HTTP %d code %d, want 404 -32600", status, code)
		}
	})
}

// TestRevocationFeedNotReachable: the broker's revocation feed is for the
// routers, never for clients: through Envoy its path gets 404 however it is
// spelled, while the broker itself serves it.
func TestRevocationFeedNotReachable(t *testing.T) {
	e := startEnv(t, &backend{name: "echo", prefix: "echo_", srv: mcptest.NewEchoServer("echo")})
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	const q = "?wait=0"
	if status, body := get("http://" + e.stack.BrokerAddr + config.RevocationsPath + q); status != 200 || !strings.Contains(body, `"epoch"`) {
		t.Fatalf("the broker's own feed: HTTP %d %s", status, body)
	}
	base := strings.TrimSuffix(e.stack.URL(), config.EndpointPath)
	for _, p := range []string{config.RevocationsPath, "/mcp/../.mcpgw/v1/revocations", "/mcp/%2E%2E/.mcpgw/v1/revocations",
		"/%2Emcpgw/v1/revocations", "/mcp/..%2F.mcpgw/v1/revocations"} {
		if status, body := get(base + p + q); status != 404 || strings.Contains(body, `"epoch"`) {
			t.Errorf("GET %s through Envoy: HTTP %d %s, want 404", p, status, body)
		}
	}
}

// waitRouterCounter waits until the router's counter (as Envoy exports it)
// reaches want. The module exports its counters when a stream ends, so
// each poll first sends a request through Envoy (any will do: a GET of an
// unknown virtual server, which the broker answers with 404).
func (e *env) waitRouterCounter(t *testing.T, name string, want int64) {
	t.Helper()
	admin := e.stack.Envoy.AdminURL()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(e.stack.URL() + "/no-such-virtual-server")
		if err == nil {
			resp.Body.Close()
		}
		n, err := harness.Counter(admin, name)
		if err != nil {
			t.Fatal(err)
		}
		if n >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %d, want %d", name, n, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
