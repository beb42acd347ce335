// Package abuse is mcpgw's own fault and abuse suite, through the real
// stack: a real Envoy with the router module, the broker and real go-sdk
// MCP servers (tests/harness). Hostile inputs (hostile_*_test.go) are
// sent, as raw HTTP requests or bytes on a TCP connection, to one shared
// gateway, each with the exact HTTP status and JSON-RPC error it must get;
// after each, a kept session must still make a good tools/call. Faults
// (faults_*_test.go) break a part of the stack and say what must not be
// lost. CATALOGUE.md lists every case; TestCatalogue keeps it in step
// with the tables (go test -run TestCatalogue -update rewrites it).
package abuse

import (
	"context"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgw/mcpgw/filter/config"
	"github.com/mcpgw/mcpgw/tests/harness"
	"github.com/mcpgw/mcpgw/tests/mcptest"
)

// Names of the shared gateway's parts, as the cases use them.
const (
	virtualName = "abuse/vs" // a virtual server offering echo_echo only
	goodTool    = "echo_whoami"
)

// fixture is the shared gateway the hostile cases are sent to.
type fixture struct {
	g  *harness.Gateway
	cs *mcp.ClientSession // the kept session of the good call
	// values fill the {placeholders} of the cases' requests.
	values map[string]string
	// canary counts connections to an address no request may be routed
	// to (spoofed routing headers name it).
	canary *canary
}

// startFixture starts the gateway with two session-era servers (echo,
// math), a stateless one (plain) and a virtual server, and prepares the
// session ids the cases refer to.
func startFixture(t *testing.T) *fixture {
	t.Helper()
	backends := []*harness.Backend{
		{Name: "abuse/echo", Prefix: "echo_", Server: mcptest.NewEchoServer("echo")},
		{Name: "abuse/math", Prefix: "math_", Server: mcptest.NewMathServer("math")},
		{Name: "abuse/plain", Prefix: "plain_", Server: mcptest.NewEchoServer("plain"),
			Options: &mcp.StreamableHTTPOptions{Stateless: true}},
	}
	g := harness.StartGatewayWith(t, []config.VirtualServer{{Name: virtualName, Tools: []string{"echo_echo"}}}, backends...)
	f := &fixture{g: g, canary: startCanary(t)}
	f.cs = g.Connect(t, config.EndpointPath, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if got := harness.CallText(ctx, t, f.cs, goodTool, nil); got != "echo" {
		t.Fatalf("%s = %q before any case", goodTool, got)
	}
	vs := g.Connect(t, config.VirtualServerPath(virtualName), nil, nil)
	other := g.Codec(t) // the gateway's key: genuine ids the broker never opened
	f.values = map[string]string{
		"session":    f.cs.ID(),
		"vs-session": vs.ID(),
		"deleted":    f.deletedSession(t),
		"stale":      other.Mint(""),
		"foreign":    foreignID(t),
		"canary":     f.canary.addr,
		"echo-addr":  backends[0].Addr,
		"long-id":    longString('7', 4096),
	}
	return f
}

// good makes the good call of the kept session, which every case must
// leave working, and checks that Envoy is still the same process.
func (f *fixture) good(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := f.cs.CallTool(ctx, &mcp.CallToolParams{Name: goodTool})
	switch {
	case f.g.Envoy.Exited():
		t.Fatalf("Envoy exited:\n%s", f.g.Envoy.Logs())
	case err != nil:
		t.Fatalf("good call after the case: %v", err)
	case res.IsError || harness.ResultText(res) != "echo":
		t.Fatalf("good call after the case: %q (error %v)", harness.ResultText(res), res.IsError)
	}
}

// canary is a listener that counts the connections it accepts.
type canary struct {
	addr  string
	conns atomic.Int64
}

func startCanary(t *testing.T) *canary {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &canary{addr: ln.Addr().String()}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "canary: nothing may be routed here", http.StatusTeapot)
		}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				c.conns.Add(1)
			}
		},
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return c
}

func longString(c byte, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = c
	}
	return string(b)
}
