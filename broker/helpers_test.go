package broker

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.uber.org/goleak"

	"github.com/mcpgw/mcpgw/broker/upstream"
	"github.com/mcpgw/mcpgw/filter/config"
	"github.com/mcpgw/mcpgw/tests/mcptest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const keyEnv = "BROKER_TEST_SESSION_KEY"

// testKey is a 32-byte session key.
const testKey = "0123456789abcdef0123456789abcdef"

// fastUpstream keeps reconnects and pings quick in tests.
var fastUpstream = upstream.Options{
	PingInterval:   50 * time.Millisecond,
	RequestTimeout: 2 * time.Second,
	BackoffMin:     10 * time.Millisecond,
	BackoffMax:     50 * time.Millisecond,
}

// testConfig returns a config with the test session key and servers.
func testConfig(t *testing.T, servers ...config.Server) *config.Config {
	t.Helper()
	t.Setenv(keyEnv, testKey)
	for i := range servers {
		if servers[i].Hostname == "" {
			servers[i].Hostname = "backend.test"
		}
	}
	c := &config.Config{
		Version: config.Version,
		Gateway: config.Gateway{SessionKey: config.SecretRef{Env: keyEnv}},
		Servers: servers,
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

// testLogger logs to stderr when BROKER_TEST_LOG is set, else discards.
func testLogger() *slog.Logger {
	if os.Getenv("BROKER_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// harness is a broker served on httptest.
type harness struct {
	b   *Broker
	ts  *httptest.Server
	url string // the /mcp endpoint
}

func newHarness(t *testing.T, cfg *config.Config) *harness {
	t.Helper()
	b := New(Options{Upstream: fastUpstream, Logger: testLogger()})
	ts := httptest.NewServer(b.Handler())
	// Cleanups run last-in first-out: the broker closes its sessions (and
	// so their GET streams) before the HTTP server waits for its handlers.
	t.Cleanup(ts.Close)
	t.Cleanup(func() { b.Close() })
	if err := b.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	return &harness{b: b, ts: ts, url: ts.URL + "/mcp"}
}

// serveBackend serves an example server on a fresh loopback port.
func serveBackend(t *testing.T, srv *mcp.Server) string {
	t.Helper()
	url, stop, err := mcptest.Serve(t.Context(), "127.0.0.1:0", srv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return url
}

// serveStatelessBackend serves srv in the go-sdk's stateless mode (the
// 2026-07-28 era, no sessions), as for a backend marked stateless.
func serveStatelessBackend(t *testing.T, srv *mcp.Server) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(mcp.NewStreamableHTTPHandler(
		func(*http.Request) *mcp.Server { return srv },
		&mcp.StreamableHTTPOptions{Stateless: true}))
	t.Cleanup(ts.Close)
	return ts
}

// client is a go-sdk client session through the broker. streamUp is closed
// once its standalone SSE stream is open: the go-sdk server drops
// notifications sent before that, so tests expecting one wait for it.
type client struct {
	*mcp.ClientSession
	streamUp <-chan struct{}
}

// connect opens a session-era client session (2025-11-25: initialize, a
// gateway session id, the GET stream); connectVersion one at version ("" is
// the go-sdk's default, the stateless 2026-07-28).
func connect(t *testing.T, url string, opts *mcp.ClientOptions) *client {
	t.Helper()
	return connectVersion(t, url, opts, "2025-11-25")
}

func connectVersion(t *testing.T, url string, opts *mcp.ClientOptions, version string) *client {
	t.Helper()
	up := make(chan struct{})
	rt := &getObserver{base: http.DefaultTransport, opened: up}
	c := mcp.NewClient(&mcp.Implementation{Name: "test-client", Version: "v0"}, opts)
	cs, err := c.Connect(t.Context(), &mcp.StreamableClientTransport{
		Endpoint: url, HTTPClient: &http.Client{Transport: rt},
	}, &mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return &client{cs, up}
}

type getObserver struct {
	base   http.RoundTripper
	opened chan struct{}
	once   sync.Once
}

func (o *getObserver) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := o.base.RoundTrip(r)
	if err == nil && r.Method == http.MethodGet && resp.StatusCode == http.StatusOK {
		o.once.Do(func() { close(o.opened) })
	}
	return resp, err
}

func (c *client) toolNames(t *testing.T) []string {
	t.Helper()
	var names []string
	for tool, err := range c.Tools(t.Context(), nil) {
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	return names
}

// waitTools lists the client's tools until cond holds: a notification may
// precede the last of a batch of changes by the go-sdk's debounce delay.
func (c *client) waitTools(t *testing.T, what string, cond func([]string) bool) {
	t.Helper()
	eventually(t, what, func() bool { return cond(c.toolNames(t)) })
}

// eventually polls cond until it holds, failing the test after 10s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitMore waits until n more events than now are counted and the last of
// those is handled: one more event must begin, as each begins after the one
// before it ended (a session's probes, re-lists). Tests that check that
// something does not happen wait for the events that could make it happen.
func waitMore(t *testing.T, what string, counter *atomic.Int64, n int64) {
	t.Helper()
	from := counter.Load()
	eventually(t, what, func() bool { return counter.Load() > from+n })
}

// serverState returns the named server's status, or the zero value.
func (h *harness) serverState(name string) ServerStatus {
	for _, s := range h.b.Status().Servers {
		if s.Name == name {
			return s
		}
	}
	return ServerStatus{}
}

func (h *harness) waitState(t *testing.T, name string, want upstream.State) ServerStatus {
	t.Helper()
	eventually(t, name+" "+string(want), func() bool { return h.serverState(name).State == want })
	return h.serverState(name)
}

// exposedTools are the tool names the broker currently serves.
func (h *harness) exposedTools() []string {
	h.b.mu.Lock()
	defer h.b.mu.Unlock()
	names := make([]string, 0, len(h.b.reg.tools))
	for n := range h.b.reg.tools {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func textOf(t *testing.T, res *mcp.CallToolResult) string {
	t.Helper()
	if len(res.Content) == 0 {
		t.Fatalf("no content in %+v", res)
	}
	tc, ok := res.Content[0].(*mcp.TextContent)
	if !ok {
		t.Fatalf("content is %T", res.Content[0])
	}
	return tc.Text
}
