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
	// observe, if set, sees each HTTP request before the server does.
	observe func(*http.Request)
	stop    func()
}

func (b *backend) serverConfig() config.Server {
	// The :authority is the backend's own address: go-sdk servers bound to
	// loopback refuse other Host headers (DNS-rebinding protection).
	return config.Server{Name: "e2e/" + b.name, URL: b.url, Hostname: b.addr, Prefix: b.prefix}
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
	if b.observe == nil {
		return mcptest.ServeOptions(context.Background(), addr, b.srv, b.opts)
	}
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return b.srv }, b.opts)
	observed := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.observe(r)
		h.ServeHTTP(w, r)
	})
	return mcptest.ServeHandler(context.Background(), addr, observed, func() {
		for ss := range b.srv.Sessions() {
			ss.Close() // releases the hanging GET streams
		}
	})
}

// env is one running gateway with its backends.
type env struct {
	stack      *harness.Stack
	configPath string
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
	e := &env{configPath: filepath.Join(dir, "config.yaml"), backends: backends}
	e.writeConfig(t)
	stack, err := harness.StartStack(context.Background(), harness.StackOptions{
		Root: root, EnvoyBinary: envoyBin, ModuleDir: moduleDir,
		ConfigPath: e.configPath, WorkDir: dir, EnvoyLogLevel: "info",
		WaitServers: true, // every backend was started above
	})
	if err != nil {
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
	if err := harness.WriteConfig(e.configPath, servers); err != nil {
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
