package harness

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgw/mcpgw/filter/config"
	"github.com/mcpgw/mcpgw/filter/sessionid"
	"github.com/mcpgw/mcpgw/internal/testenv"
	"github.com/mcpgw/mcpgw/tests/mcptest"
)

// Backend is an example MCP server behind a test gateway, served on
// loopback. Stop and Start serve it again at the same address with no
// sessions, as a restarted server would be.
type Backend struct {
	// Name is the server's name in the config; Prefix its tools' prefix.
	Name, Prefix string
	Server       *mcp.Server
	// Options are the go-sdk handler's (nil: defaults). Stateless options
	// make it a 2026-07-28 server, marked stateless in the config.
	Options *mcp.StreamableHTTPOptions
	// Wrap, if set, wraps the go-sdk handler (e.g. to delay or count
	// requests).
	Wrap func(http.Handler) http.Handler
	// Addr (host:port) and URL are set by the first Start; set Addr before
	// to serve at a chosen address.
	Addr, URL string
	stop      func()
}

// Start serves the backend at its address (a fresh one the first time).
// Pass the top-level test: the backend lives until it ends.
func (b *Backend) Start(t testing.TB) {
	t.Helper()
	addr := b.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var url string
	var stop func()
	var err error
	if b.Wrap == nil {
		url, stop, err = mcptest.ServeOptions(context.Background(), addr, b.Server, b.Options)
	} else {
		h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return b.Server }, b.Options)
		url, stop, err = mcptest.ServeHandler(context.Background(), addr, b.Wrap(h), func() {
			for ss := range b.Server.Sessions() {
				ss.Close()
			}
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	first := b.stop == nil
	b.URL, b.stop = url, stop
	b.Addr = strings.TrimSuffix(strings.TrimPrefix(url, "http://"), mcptest.Path)
	if first {
		t.Cleanup(func() { b.stop() }) // whichever life the backend is in by then
	}
}

// Stop stops serving (connections and sessions are closed).
func (b *Backend) Stop() { b.stop() }

// ServerConfig is the backend's entry in the gateway config. Its
// :authority is its own address: go-sdk servers bound to loopback refuse
// other Host headers (DNS-rebinding protection).
func (b *Backend) ServerConfig() config.Server {
	return config.Server{Name: b.Name, URL: b.URL, Hostname: b.Addr, Prefix: b.Prefix,
		Stateless: b.Options != nil && b.Options.Stateless}
}

// Gateway is a running gateway (Envoy with the router module, and the
// broker) in front of Backends, with its config file in Dir.
type Gateway struct {
	*Stack
	Dir, ConfigPath string
	Backends        []*Backend
	// VirtualServers are written to the config with the backends.
	VirtualServers []config.VirtualServer
}

// StartGateway starts the backends and a gateway in front of them; all
// stop when t ends, and Envoy's output is logged if t failed. A missing
// Envoy skips t (fails it when CI=true).
func StartGateway(t *testing.T, backends ...*Backend) *Gateway {
	t.Helper()
	return StartGatewayWith(t, nil, backends...)
}

// StartGatewayWith is StartGateway with virtual servers in the config.
func StartGatewayWith(t *testing.T, virtual []config.VirtualServer, backends ...*Backend) *Gateway {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	envoyBin, err := FindEnvoy(root)
	testenv.Require(t, err)
	moduleDir := Module(t)
	for _, b := range backends {
		b.Start(t)
	}
	dir := t.TempDir()
	g := &Gateway{Dir: dir, ConfigPath: filepath.Join(dir, "config.yaml"), Backends: backends, VirtualServers: virtual}
	g.WriteConfig(t)
	stack, err := StartStack(context.Background(), StackOptions{
		Root: root, EnvoyBinary: envoyBin, ModuleDir: moduleDir,
		ConfigPath: g.ConfigPath, WorkDir: dir, EnvoyLogLevel: "info",
	})
	if err != nil {
		t.Fatal(err)
	}
	g.Stack = stack
	t.Cleanup(func() {
		if err := stack.Close(); err != nil {
			t.Errorf("stack close: %v", err)
		}
		if t.Failed() {
			t.Logf("envoy output:\n%s", stack.Envoy.Logs())
		}
	})
	return g
}

// Config is the config file's content for the current backends.
func (g *Gateway) Config() config.Config {
	c := config.Config{
		Version:        config.Version,
		Gateway:        config.Gateway{SessionKey: config.SecretRef{File: "session.key"}},
		VirtualServers: g.VirtualServers,
	}
	for _, b := range g.Backends {
		c.Servers = append(c.Servers, b.ServerConfig())
	}
	return c
}

// WriteConfig (re)writes the config file for the current backends,
// atomically.
func (g *Gateway) WriteConfig(t testing.TB) {
	t.Helper()
	if err := WriteConfigFile(g.ConfigPath, g.Config()); err != nil {
		t.Fatal(err)
	}
}

// Codec returns the codec of the gateway's session key, to mint genuine
// session ids the broker never opened (as ids of a previous broker life
// are).
func (g *Gateway) Codec(t testing.TB) *sessionid.Codec {
	t.Helper()
	key, err := config.SecretRef{File: filepath.Join(g.Dir, "session.key")}.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	codec, err := sessionid.New([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return codec
}

// Connect opens a session-era (2025-11-25) go-sdk client session through
// Envoy to path (config.EndpointPath, or a virtual server's); hc may be
// nil. It is closed when t ends.
func (g *Gateway) Connect(t testing.TB, path string, opts *mcp.ClientOptions, hc *http.Client) *mcp.ClientSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := mcp.NewClient(&mcp.Implementation{Name: "harness", Version: "v0"}, opts)
	url := strings.TrimSuffix(g.URL(), config.EndpointPath) + path
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: hc},
		&mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatalf("connect through envoy to %s: %v", path, err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// CallText calls a tool and returns its text, failing t on any error.
func CallText(ctx context.Context, t testing.TB, cs *mcp.ClientSession, name string, args map[string]any) string {
	t.Helper()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("tools/call %s: %v", name, err)
	}
	if res.IsError {
		t.Fatalf("tools/call %s: tool error %s", name, ResultText(res))
	}
	return ResultText(res)
}

// ResultText joins the text contents of a tool result.
func ResultText(res *mcp.CallToolResult) string {
	var parts []string
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			parts = append(parts, tc.Text)
		}
	}
	return strings.Join(parts, "")
}

// ToolNames lists the session's tools.
func ToolNames(ctx context.Context, cs *mcp.ClientSession) ([]string, error) {
	var names []string
	for tool, err := range cs.Tools(ctx, nil) {
		if err != nil {
			return nil, err
		}
		names = append(names, tool.Name)
	}
	return names, nil
}
