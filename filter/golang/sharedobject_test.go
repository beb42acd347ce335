package golang_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/mcpgw/mcpgw/filter/golang"
	"github.com/mcpgw/mcpgw/filter/golang/internal/fakehost"
	"github.com/mcpgw/mcpgw/filter/internal/adaptertest"
	"github.com/mcpgw/mcpgw/internal/testenv"
)

// The tests below load the real shared object (built from
// filter/cmd/libmcpgw-golang, shim included) into the fake Envoy and drive
// its exported entry points.

func startHost(t *testing.T) *fakehost.Host {
	t.Helper()
	testenv.SkipIfShort(t, "builds the shared object")
	so, host, err := fakehost.Build()
	if err != nil {
		t.Fatal(err)
	}
	return fakehost.Start(t, host, so)
}

func soConfig(t *testing.T, h *fakehost.Host, path string) *fakehost.Config {
	t.Helper()
	c := newSOConfig(t, h, path)
	t.Cleanup(c.Destroy)
	return c
}

// newSOConfig is soConfig for a test that destroys the config itself.
func newSOConfig(t *testing.T, h *fakehost.Host, path string) *fakehost.Config {
	t.Helper()
	raw, err := proto.Marshal(pluginConfig(t, path))
	if err != nil {
		t.Fatal(err)
	}
	c := h.NewConfig(golang.PluginName, raw, false)
	if c.GoID == 0 {
		t.Fatalf("the plugin rejected config_path %s; logs:\n%s", path, strings.Join(h.Logs(), "\n"))
	}
	return c
}

// soHost is adaptertest.Host over the shared object.
type soHost struct{ c *fakehost.Config }

func (h soHost) Do(t testing.TB, r adaptertest.Request) adaptertest.Result {
	t.Helper()
	s := h.c.NewStream(0)
	for _, hd := range r.HeaderList() {
		s.Header("req", hd[0], hd[1])
	}
	s.DecodeHeaders(r.Body == "")
	if r.Body != "" {
		s.DecodeData(r.Body, !r.Trailers)
		if r.Trailers {
			s.DecodeTrailers()
		}
	}
	snap := s.Dump()
	if !snap.UpstreamEnd && len(snap.Replies) == 0 {
		if !s.Await(10 * time.Second) {
			t.Fatal("the stream neither continued nor replied")
		}
		snap = s.Dump()
	}
	res := adaptertest.Result{Continued: snap.UpstreamHeaders && snap.UpstreamEnd, Headers: snap.Request,
		Body: snap.UpstreamBody, RouteCacheClears: snap.RouteCacheClears}
	if r.Response != nil && res.Continued && len(snap.Replies) == 0 {
		s.Header("resp", ":status", strconv.Itoa(r.Response.Status))
		if sid := r.Response.SessionHeader(res.Headers); sid != "" {
			s.Header("resp", "mcp-session-id", sid)
		}
		s.SetDetails(r.Response.Details)
		if s.EncodeHeaders(r.Response.NoBody) == fakehost.Running && !s.Await(10*time.Second) {
			t.Fatal("the response neither continued nor was replaced")
		}
		snap = s.Dump()
		res.ResponseHeaders = snap.Response
	}
	for _, rp := range snap.Replies {
		if rp.Panic {
			t.Errorf("a panic escaped the plugin: %+v", rp)
		}
		res.Replies = append(res.Replies, adaptertest.Reply{Status: rp.Status, ContentType: rp.ContentType,
			Body: rp.Body, Details: rp.Details, SessionID: rp.SessionID})
	}
	s.Destroy()
	for _, e := range s.Dump().Errors {
		t.Errorf("API call refused: %s", e)
	}
	return res
}

// TestSharedObjectTable plays the behavioural table through the real .so.
func TestSharedObjectTable(t *testing.T) {
	h := startHost(t)
	env := adaptertest.NewEnv(t)
	c := soConfig(t, h, env.Path)
	adaptertest.Run(t, env, soHost{c})
	for name, want := range map[string]uint64{"mcpgw.session_inits": 3, "mcpgw.sessions_lost": 3,
		"mcpgw.replays": 2, "mcpgw.replays_succeeded": 1,
		"mcpgw.config_reloads": 1, "mcpgw.rejected.parse_error": 2} {
		if got, ok := c.Counter(name); !ok || got != want {
			t.Errorf("%s = %d (defined %v), want %d", name, got, ok, want)
		}
	}
}

func TestSharedObjectConfigs(t *testing.T) {
	h := startHost(t)
	path := adaptertest.WriteConfig(t, t.TempDir())
	for _, tc := range []struct {
		name   string
		config map[string]any
		route  bool
	}{
		{"relative path", map[string]any{"config_path": "x.yaml"}, false},
		{"unknown field", map[string]any{"config_path": path, "x": 1}, false},
		{"per-route", map[string]any{"config_path": path}, true},
	} {
		raw, _ := proto.Marshal(typedStruct(t, "type.googleapis.com/xds.type.v3.TypedStruct", tc.config))
		if c := h.NewConfig(golang.PluginName, raw, tc.route); c.GoID != 0 {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	logs := strings.Join(h.Logs(), "\n")
	if !strings.Contains(logs, "failed to parse golang plugin config") || !strings.Contains(logs, "must be absolute") {
		t.Errorf("config errors not logged by the shim:\n%s", logs)
	}
	// Two configs for one file share the router; destroying one keeps it.
	c1, c2 := soConfig(t, h, path), soConfig(t, h, path)
	c1.Destroy()
	res := soHost{c2}.Do(t, adaptertest.Request{Body: `{"jsonrpc":"2.0","id":1,"method":"ping"}`})
	if !res.Continued || res.Headers["x-mcp-method"][0] != "ping" {
		t.Errorf("after destroying the other config: %+v", res)
	}
}

func TestSharedObjectLogs(t *testing.T) {
	h := startHost(t)
	path := adaptertest.WriteConfig(t, t.TempDir())
	c := soConfig(t, h, path)
	soHost{c}.Do(t, adaptertest.Request{Body: "nope"})
	var found bool
	for _, l := range h.Logs() {
		if strings.HasPrefix(l, "2 mcpgw: request rejected") && strings.Contains(l, "reason=parse_error") &&
			strings.Contains(l, "config="+path) {
			found = true
		}
	}
	if !found {
		t.Errorf("no info line for the rejection:\n%s", strings.Join(h.Logs(), "\n"))
	}
}

// Whole requests on four worker threads at once: the Go runtime entered
// from several foreign threads, the shim's per-worker request maps.
func TestSharedObjectConcurrentWorkers(t *testing.T) {
	h := startHost(t)
	env := adaptertest.NewEnv(t)
	c := soConfig(t, h, env.Path)
	ok, fail := c.Burst(4, 250, `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, "tools/list")
	if ok != 1000 || fail != 0 {
		t.Errorf("burst: %d ok, %d failed; want 1000 ok", ok, fail)
	}
	if n, _ := c.Counter("mcpgw.forwarded"); n != 1000 {
		t.Errorf("mcpgw.forwarded = %d, want 1000", n)
	}
	// Interleaved streams on one worker, one of them opening a session.
	gw := env.Codec.Mint("")
	slow := c.NewStream(1)
	for _, kv := range [][2]string{{":method", "POST"}, {":path", "/mcp"}, {"content-type", "application/json"},
		{"mcp-session-id", gw}} {
		slow.Header("req", kv[0], kv[1])
	}
	slow.DecodeHeaders(false)
	if st := slow.DecodeData(adaptertest.ToolCall(1, "weather_now"), true); st != fakehost.Running {
		t.Fatalf("first call: status %d, want Running", st)
	}
	res := soHost{c}.Do(t, adaptertest.Request{Body: `{"jsonrpc":"2.0","id":2,"method":"ping"}`})
	if !res.Continued {
		t.Errorf("a stream next to a running one: %+v", res)
	}
	if !slow.Await(10 * time.Second) {
		t.Fatal("the session was not opened")
	}
	if snap := slow.Dump(); !snap.UpstreamEnd || snap.Request["x-mcp-servername"][0] != "default/weather" {
		t.Errorf("routed call: %+v", snap)
	}
	slow.Destroy()
}

func TestSharedObjectConfigReload(t *testing.T) {
	h := startHost(t)
	dir := t.TempDir()
	c := soConfig(t, h, adaptertest.WriteConfig(t, dir))
	env := adaptertest.NewEnv(t)
	req := adaptertest.Request{Body: adaptertest.ToolCall(1, "weather_now"),
		Headers: [][2]string{{"mcp-session-id", env.Codec.Mint("")}}}
	if res := (soHost{c}).Do(t, req); len(res.Replies) != 1 || res.Replies[0].Details != "mcpgw_unknown_tool" {
		t.Fatalf("before the reload: %+v", res)
	}
	adaptertest.WriteConfig(t, dir, env.Backend.Entry())
	deadline := time.Now().Add(10 * time.Second)
	for !(soHost{c}).Do(t, req).Continued {
		if time.Now().After(deadline) {
			t.Fatal("the config change was not applied")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A client gone while its session opens: nothing touches the stream after
// OnDestroy (the API would refuse, and the fake would record it).
func TestSharedObjectDestroyWhileOpening(t *testing.T) {
	h := startHost(t)
	env := adaptertest.NewEnv(t)
	g := newGatedBackend(t, env.Backend)
	entry := env.Backend.Entry()
	entry.URL = g.URL + "/mcp"
	c := newSOConfig(t, h, adaptertest.WriteConfig(t, t.TempDir(), entry))
	s := c.NewStream(0)
	for _, kv := range [][2]string{{":method", "POST"}, {":path", "/mcp"}, {"content-type", "application/json"},
		{"mcp-session-id", env.Codec.Mint("")}} {
		s.Header("req", kv[0], kv[1])
	}
	s.DecodeHeaders(false)
	if st := s.DecodeData(adaptertest.ToolCall(1, "weather_now"), true); st != fakehost.Running {
		t.Fatalf("status %d, want Running", st)
	}
	<-g.entered
	s.Destroy()
	g.open()
	// Destroying the config waits for its streams' session goroutines (and
	// closes the router): after it, nothing of this stream's can still run.
	c.Destroy()
	snap := s.Dump()
	if len(snap.Errors) != 0 || len(snap.Replies) != 0 || snap.UpstreamHeaders {
		t.Errorf("after destroy: %+v", snap)
	}
}
