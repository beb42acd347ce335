package broker

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.uber.org/goleak"

	"github.com/mcpgw/mcpgw/filter/config"
	"github.com/mcpgw/mcpgw/tests/mcptest"
)

// When Run returns, everything it started has stopped: its HTTP server and
// the handlers of the client sessions it served (a GET stream among them),
// its backend connections and its config watch. Only the test's own
// goroutines (the backend, the client's idle connections) remain.
func TestRunReturnsWithNothingRunning(t *testing.T) {
	t.Setenv(keyEnv, testKey)
	path := filepath.Join(t.TempDir(), "config.yaml")
	echo := config.Server{Name: "echo", URL: serveBackend(t, mcptest.NewEchoServer("e1")), Prefix: "echo_"}
	writeConfig(t, path, echo)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	before := goleak.IgnoreCurrent()
	ctx, cancel := context.WithCancel(t.Context())
	ran := make(chan error, 1)
	go func() {
		ran <- Run(ctx, Options{ConfigPath: path, Listener: ln, Logger: testLogger(), Upstream: fastUpstream,
			Watch: config.WatchOptions{Resync: -1}})
	}()
	transport := http.DefaultTransport.(*http.Transport).Clone()
	defer transport.CloseIdleConnections()
	up := make(chan struct{})
	c := mcp.NewClient(&mcp.Implementation{Name: "test-client", Version: "v0"}, nil)
	cs, err := c.Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: "http://" + ln.Addr().String() + "/mcp",
		HTTPClient: &http.Client{Transport: &getObserver{base: transport, opened: up}}},
		&mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	<-up // a GET stream is held open by the broker
	cl := &client{cs, up}
	cl.waitTools(t, "echo tools", func(n []string) bool { return len(n) > 0 })
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "echo_echo", Arguments: map[string]any{"text": "x"}})
	if err != nil || res.IsError {
		t.Fatalf("call through the broker: %v %+v", err, res)
	}

	cancel()
	select {
	case err := <-ran:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	// At once, not eventually: nothing of Run's may still be winding down.
	if left := runningOf("github.com/mcpgw/mcpgw/broker", "github.com/mcpgw/mcpgw/filter/config"); len(left) > 0 {
		t.Fatalf("goroutines of Run still running after it returned:\n%s", strings.Join(left, "\n\n"))
	}
	cs.Close()
	transport.CloseIdleConnections()
	goleak.VerifyNone(t, before)
}

// runningOf returns the stacks of the goroutines running a function of one
// of the packages, other than the test's own.
func runningOf(pkgs ...string) []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "_test.go") {
			continue
		}
		for _, p := range pkgs {
			if strings.Contains(g, p+".") || strings.Contains(g, p+"/") {
				out = append(out, g)
				break
			}
		}
	}
	return out
}
