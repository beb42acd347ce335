package e2e

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgw/mcpgw/tests/mcptest"
)

// TestStatelessClient: a 2026-07-28 client (the go-sdk's default: no
// initialize, no session) through the real Envoy, in front of session-era
// backends (no stateless: true in the config). It discovers the gateway and
// lists and calls tools; its calls reach the backends via the broker, which
// uses its own sessions with them.
func TestStatelessClient(t *testing.T) {
	echo := &backend{name: "echo", prefix: "echo_", srv: mcptest.NewEchoServer("echo")}
	math := &backend{name: "math", prefix: "math_", srv: mcptest.NewMathServer("math")}
	e := startEnv(t, echo, math)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	c := mcp.NewClient(&mcp.Implementation{Name: "e2e-stateless", Version: "v0"}, nil)
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: e.stack.URL(), HTTPClient: &http.Client{Transport: tr}}, nil)
	if err != nil {
		t.Fatalf("connect through envoy: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	if v := cs.InitializeResult().ProtocolVersion; v != "2026-07-28" {
		t.Fatalf("negotiated %q, want 2026-07-28", v)
	}
	if id := cs.ID(); id != "" {
		t.Errorf("stateless client got session id %q", id)
	}
	if got := callText(ctx, t, cs, "echo_whoami", nil); got != "echo" {
		t.Errorf("echo_whoami = %q, want echo", got)
	}
	if got := callText(ctx, t, cs, "math_add", map[string]any{"a": 2, "b": 3}); got != "5" {
		t.Errorf("math_add(2,3) = %q, want 5", got)
	}
}
