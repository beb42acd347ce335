// Package e2e runs the gateway end to end: a go-sdk client → a real Envoy
// with the router module → the broker and real go-sdk MCP servers.
package e2e

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgw/mcpgw/filter/config"
	"github.com/mcpgw/mcpgw/internal/testenv"
	"github.com/mcpgw/mcpgw/tests/harness"
	"github.com/mcpgw/mcpgw/tests/mcptest"
)

// backend is one example MCP server behind the gateway.
type backend struct {
	name, prefix, addr, url string
	srv                     *mcp.Server
	opts                    *mcp.StreamableHTTPOptions // nil: go-sdk defaults
	// wrap, if set, wraps the MCP handler; observe, if set, sees each HTTP
	// request before the server does.
	wrap       func(http.Handler) http.Handler
	observe    func(*http.Request)
	credential *config.Credential // nil: none
	stop       func()
}

func (b *backend) serverConfig() config.Server {
	// The :authority is the backend's own address: go-sdk servers bound to
	// loopback refuse other Host headers (DNS-rebinding protection).
	return config.Server{Name: "e2e/" + b.name, URL: b.url, Hostname: b.addr, Prefix: b.prefix, Credential: b.credential}
}

// start serves the backend at its address (a fresh one the first time).
// Pass the top-level test: the backend lives until it ends.
func (b *backend) start(t *testing.T) {
	t.Helper()
	addr := b.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	url, stop, err := b.serve(addr)
	if err != nil {
		t.Fatal(err)
	}
	first := b.stop == nil
	b.url, b.stop = url, stop
	b.addr = strings.TrimSuffix(strings.TrimPrefix(url, "http://"), mcptest.Path)
	if first {
		t.Cleanup(func() { b.stop() }) // whichever life the backend is in by then
	}
}

func (b *backend) serve(addr string) (string, func(), error) {
	if b.wrap == nil && b.observe == nil {
		return mcptest.ServeOptions(context.Background(), addr, b.srv, b.opts)
	}
	var h http.Handler = mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return b.srv }, b.opts)
	if b.wrap != nil {
		h = b.wrap(h)
	}
	if b.observe != nil {
		inner := h
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b.observe(r)
			inner.ServeHTTP(w, r)
		})
	}
	return mcptest.ServeHandler(context.Background(), addr, h, func() {
		for ss := range b.srv.Sessions() {
			ss.Close() // releases the hanging GET streams
		}
	})
}

// env is one running gateway with its backends. Its router follows the
// broker's revocation feed (gateway.brokerURL).
type env struct {
	stack      *harness.Stack
	configPath string
	gateway    config.Gateway
	backends   []*backend
}

func startEnv(t *testing.T, backends ...*backend) *env {
	t.Helper()
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	envoyBin, err := harness.FindEnvoy(root)
	testenv.Require(t, err)
	moduleDir := harness.Module(t)
	for _, b := range backends {
		b.start(t)
	}
	dir := t.TempDir()
	brokerLn, err := harness.ListenBroker()
	if err != nil {
		t.Fatal(err)
	}
	e := &env{configPath: filepath.Join(dir, "config.yaml"), backends: backends,
		gateway: config.Gateway{BrokerURL: harness.BrokerURL(brokerLn)}}
	e.writeConfig(t)
	stack, err := harness.StartStack(context.Background(), harness.StackOptions{
		Root: root, EnvoyBinary: envoyBin, ModuleDir: moduleDir,
		ConfigPath: e.configPath, WorkDir: dir, EnvoyLogLevel: "info", BrokerListener: brokerLn,
		WaitServers: true, // every backend was started above
	})
	if err != nil {
		brokerLn.Close()
		t.Fatal(err)
	}
	e.stack = stack
	t.Cleanup(func() {
		if err := stack.Close(); err != nil {
			t.Errorf("stack close: %v", err)
		}
		if t.Failed() {
			t.Logf("envoy output:\n%s", stack.Envoy.Logs())
		}
	})
	return e
}

func (e *env) writeConfig(t *testing.T) {
	t.Helper()
	var servers []config.Server
	for _, b := range e.backends {
		servers = append(servers, b.serverConfig())
	}
	if err := harness.WriteGatewayConfig(e.configPath, e.gateway, servers); err != nil {
		t.Fatal(err)
	}
}

// connect opens a go-sdk client session through Envoy, in the session era
// (2025-11-25) these tests are about: the go-sdk's default is the stateless
// 2026-07-28, whose calls to these session-era backends go via the broker.
func (e *env) connect(t *testing.T, opts *mcp.ClientOptions, hc *http.Client) *mcp.ClientSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "v0"}, opts)
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: e.stack.URL(), HTTPClient: hc},
		&mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatalf("connect through envoy: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}
