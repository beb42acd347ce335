package dynmod_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/filter/dynmod/internal/fakehost"
	"github.com/mcpgw/mcpgw/filter/internal/adaptertest"
	"github.com/mcpgw/mcpgw/filter/sessionid"
)

// The tests drive the adapter's real exported hooks through fakehost, the
// way Envoy 1.39.1 calls them.

const sessionKey = "0123456789abcdef0123456789abcdef-test-key"

// gateway is the test's view of one mcpgw config file and its filter config.
type gateway struct {
	t     testing.TB
	path  string
	cfg   *fakehost.Config
	codec *sessionid.Codec
}

// server is one backend in the config file.
type server struct {
	name, url, hostname, prefix string
}

// newGateway writes a config file for servers and creates a filter config
// for it.
func newGateway(t testing.TB, servers ...server) *gateway {
	t.Helper()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte(sessionKey), 0o600); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "version: mcpgw/v1\ngateway:\n  sessionKey: {file: %q}\nservers:\n", keyFile)
	for _, s := range servers {
		fmt.Fprintf(&b, "- {name: %q, url: %q, hostname: %q, prefix: %q}\n", s.name, s.url, s.hostname, s.prefix)
	}
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	codec, err := sessionid.New([]byte(sessionKey))
	if err != nil {
		t.Fatal(err)
	}
	g := &gateway{t: t, path: path, codec: codec}
	g.cfg = g.newConfig()
	return g
}

func (g *gateway) newConfig() *fakehost.Config {
	g.t.Helper()
	cfg, err := fakehost.NewConfig("mcpgw", []byte(`{"config_path": "`+g.path+`"}`))
	if err != nil {
		g.t.Fatal(err)
	}
	g.t.Cleanup(cfg.Destroy)
	return cfg
}

// request describes a client request.
type request struct {
	method  string // default POST
	session string
	headers map[string]string
	body    string
}

// start creates a stream and runs the request headers hook.
func (g *gateway) start(cfg *fakehost.Config, r request) (*fakehost.Stream, int) {
	g.t.Helper()
	s := cfg.NewStream()
	g.t.Cleanup(func() {
		s.Destroy() // no-op if the test did
		checkViolations(g.t, s)
	})
	if r.method == "" {
		r.method = "POST"
	}
	s.Request.Add(":method", r.method)
	s.Request.Add(":path", "/mcp")
	s.Request.Add(":authority", "gateway.example")
	if r.body != "" {
		s.Request.Add("content-type", "application/json")
		s.Request.Add("content-length", strconv.Itoa(len(r.body)))
	}
	if r.session != "" {
		s.Request.Add("mcp-session-id", r.session)
	}
	for k, v := range r.headers {
		s.Request.Add(k, v)
	}
	return s, s.RequestHeaders(r.body == "")
}

// post runs the request through the headers and body hooks and returns the
// stream and the body hook's status.
func (g *gateway) post(r request) (*fakehost.Stream, int) {
	g.t.Helper()
	s, st := g.start(g.cfg, r)
	if st != fakehost.StopIteration {
		g.t.Fatalf("request headers: status %d, want StopIteration (buffer the body)", st)
	}
	return s, s.RequestBody([]byte(r.body), true)
}

func checkViolations(t testing.TB, s *fakehost.Stream) {
	for _, v := range s.Violations() {
		t.Errorf("ABI violation: %s", v)
	}
}

// reply returns the stream's only local reply.
func reply(t testing.TB, s *fakehost.Stream) fakehost.Reply {
	t.Helper()
	if len(s.Replies) != 1 {
		t.Fatalf("got %d local replies, want 1: %+v", len(s.Replies), s.Replies)
	}
	r := s.Replies[0]
	if ct := r.Headers["content-type"]; ct != "application/json" {
		t.Errorf("reply content-type = %q, want application/json", ct)
	}
	return r
}

// awaitEvent waits for the adapter's goroutine to commit an event.
func awaitEvent(t testing.TB, s *fakehost.Stream) uint64 {
	t.Helper()
	select {
	case ev := <-s.Events:
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no scheduler event committed")
		return 0
	}
}

// counter reads an mcpgw counter; counters are exported when streams end.
func counter(t testing.TB, cfg *fakehost.Config, name string) uint64 {
	t.Helper()
	v, ok := cfg.Counter(name)
	if !ok {
		t.Fatalf("counter %q not defined; have %v", name, cfg.CounterNames())
	}
	return v
}

// backend is the shared table's real go-sdk MCP server (tool "now"), so
// the adapter's own tests and the table talk to the same backend.
type backend struct{ *adaptertest.Backend }

func newBackend(t testing.TB) backend { return backend{adaptertest.NewBackend(t)} }

func (b backend) server() server {
	return server{name: "default/weather", url: b.URL + "/mcp", hostname: "weather.default.svc", prefix: "weather_"}
}
