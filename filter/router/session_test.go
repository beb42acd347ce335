package router

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/mcpgw/mcpgw/filter/config"
)

// Backend sessions against a real go-sdk server, with JSON and SSE
// responses.

func forBoth(t *testing.T, f func(t *testing.T, jsonResponse bool)) {
	t.Run("json", func(t *testing.T) { f(t, true) })
	t.Run("sse", func(t *testing.T) { f(t, false) })
}

func TestOpenSessionStoresAndReuses(t *testing.T) {
	forBoth(t, func(t *testing.T, jsonResponse bool) {
		b := newBackend(t, jsonResponse)
		r := routerFor(t, 0, map[string]*backend{"echo": b})
		gw := codec(t).Mint("")

		// First call: no backend session yet.
		s := r.NewStream()
		body := call(1, "echo_x", "hi")
		s.RequestHeaders(post(gw, []byte(body)))
		if a := s.RequestBody([]byte(body)); a != OpenSession {
			t.Fatalf("first call: %s, want open-session", actions[a])
		}
		if a := s.OpenSession(t.Context()); a != Route {
			t.Fatalf("OpenSession: %s (%s)", actions[a], s.Rejection())
		}
		s.Release()
		backendID, ok := r.Sessions().Get(gw, "echo")
		if !ok || backendID == "" || backendID == gw {
			t.Fatalf("stored backend session %q, %v", backendID, ok)
		}
		if n := b.initCount(); n != 1 {
			t.Fatalf("%d initializes", n)
		}
		// Every init request carried the server's credential.
		for i, auth := range b.authSeen {
			if auth != testToken {
				t.Errorf("request %d to the backend had Authorization %q", i, auth)
			}
		}

		// Second call: routed at once, with the stored session, and the
		// backend accepts it (the session really was initialized).
		res := send(t, r, gw, "2025-06-18", call(2, "echo_x", "again"))
		if res.action != Route || res.status != 200 || ran(res.body) != "ran x:again" {
			t.Fatalf("second call: %s %d %s", actions[res.action], res.status, res.body)
		}
		if v, _ := res.request.get(config.HeaderSessionID); v != backendID {
			t.Errorf("routed with session %q, want %q", v, backendID)
		}
		if v, _ := res.response.get(config.HeaderSessionID); v != gw {
			t.Errorf("response session header %q, want the gateway's", v)
		}
		if n := b.initCount(); n != 1 || r.Metrics.SessionInits.Load() != 1 {
			t.Fatalf("%d initializes (metric %d) after reuse", n, r.Metrics.SessionInits.Load())
		}
	})
}

func TestOpenSessionConcurrentFirstCalls(t *testing.T) {
	forBoth(t, func(t *testing.T, jsonResponse bool) {
		b := newBackend(t, jsonResponse)
		b.initGate = make(chan struct{})
		r := routerFor(t, 0, map[string]*backend{"echo": b})
		gw := codec(t).Mint("")
		const n = 16
		streams := make([]*Stream, n)
		for i := range streams {
			streams[i] = r.NewStream()
			body := call(i, "echo_x", "c")
			streams[i].RequestHeaders(post(gw, []byte(body)))
			if a := streams[i].RequestBody([]byte(body)); a != OpenSession {
				t.Fatalf("call %d: %s", i, actions[a])
			}
		}
		ids := make([]string, n)
		var wg sync.WaitGroup
		for i, s := range streams {
			wg.Go(func() {
				if a := s.OpenSession(context.Background()); a != Route {
					t.Errorf("call %d: %s", i, actions[a])
				}
				ids[i] = s.backend
			})
		}
		// Hold the first initialize at the backend while the others queue
		// up behind it (those that arrive later find its session stored).
		for deadline := time.Now().Add(5 * time.Second); b.initCount() == 0 && time.Now().Before(deadline); {
			runtime.Gosched()
		}
		close(b.initGate)
		wg.Wait()
		if got := b.initCount(); got != 1 {
			t.Fatalf("%d initializes for %d concurrent first calls", got, n)
		}
		for i := range ids {
			if ids[i] == "" || ids[i] != ids[0] {
				t.Fatalf("calls got different backend sessions: %q", ids)
			}
		}
	})
}

func TestOpenSessionFailure(t *testing.T) {
	const initOK = `{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-06-18","capabilities":{},"serverInfo":{"name":"f","version":"1"}}}`
	tests := []struct {
		name string
		h    http.HandlerFunc // nil: nothing listens
	}{
		{"connection refused", nil},
		{"http 500", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "boom", 500) }},
		{"http 404", func(w http.ResponseWriter, _ *http.Request) { http.NotFound(w, nil) }},
		{"not json", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("<html>")) }},
		{"json-rpc error", func(w http.ResponseWriter, _ *http.Request) {
			w.Write([]byte(`{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"bad version"}}`))
		}},
		{"no protocolVersion", func(w http.ResponseWriter, _ *http.Request) {
			w.Write([]byte(`{"jsonrpc":"2.0","id":1,"result":{}}`))
		}},
		{"sse without response", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			w.Write([]byte("event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\"}\n\n"))
		}},
		{"initialized refused", func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get(config.HeaderSessionID) != "" {
				http.Error(w, "no", 400)
				return
			}
			w.Header().Set(config.HeaderSessionID, "s1")
			w.Write([]byte(initOK))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.h)
			if tt.h == nil {
				srv.Close()
			} else {
				defer srv.Close()
			}
			r := routerFor(t, 0, map[string]*backend{"f": {srv: srv}})
			gw := codec(t).Mint("")
			for attempt := 1; attempt <= 2; attempt++ {
				res := send(t, r, gw, "", `{"jsonrpc":"2.0","id":"c1","method":"tools/call","params":{"name":"f_x"}}`)
				want := `{"jsonrpc":"2.0","id":"c1","error":{"code":-32603,"message":"Backend MCP server unavailable"}}`
				if res.action != Reply || res.status != 200 || res.body != want {
					t.Fatalf("attempt %d: %s %d %s", attempt, actions[res.action], res.status, res.body)
				}
				// Nothing is stored: the next call tries again.
				if _, ok := r.Sessions().Get(gw, "f"); ok {
					t.Fatal("failed session stored")
				}
				if got := r.Metrics.SessionInitFail.Load(); got != int64(attempt) {
					t.Fatalf("SessionInitFail = %d after %d attempts", got, attempt)
				}
			}
		})
	}
}

// A server that assigns no session id (stateless) still gets an
// initialized "session": the empty id is stored and not re-initialized.
func TestOpenSessionStatelessBackend(t *testing.T) {
	var inits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if b, _ := io.ReadAll(r.Body); strings.Contains(string(b), `"initialize"`) {
			inits.Add(1)
			w.Write([]byte(`{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-06-18"}}`))
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	r := routerFor(t, 0, map[string]*backend{"f": {srv: srv}})
	gw := codec(t).Mint("")
	for i := range 2 {
		s := r.NewStream()
		body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"f_x"}}`
		s.RequestHeaders(post(gw, []byte(body)))
		a := s.RequestBody([]byte(body))
		if a == OpenSession {
			a = s.OpenSession(t.Context())
		}
		var w recorder
		s.ApplyRequest(&w)
		if a != Route || !slices.Contains(w.ops, "remove "+config.HeaderSessionID) {
			t.Fatalf("call %d: %s %q", i, actions[a], w.ops)
		}
		s.Release()
	}
	if inits.Load() != 1 {
		t.Fatalf("%d initializes", inits.Load())
	}
}

// The client's protocol version is offered to the backend in initialize,
// as a JSON string whatever the header holds.
func TestOpenSessionProtocolVersion(t *testing.T) {
	b := newBackend(t, true)
	r := routerFor(t, 0, map[string]*backend{"echo": b})
	for _, v := range []string{"", "2025-03-26", `2025-06-18","capabilities":{"sampling":{}},"x":"`} {
		gw := codec(t).Mint("")
		s := r.NewStream()
		body := call(1, "echo_x", "")
		h := post(gw, []byte(body))
		h.ProtocolVersion = v
		s.RequestHeaders(h)
		s.RequestBody([]byte(body))
		s.OpenSession(t.Context())
		s.Release()
		b.mu.Lock()
		sent := b.initBody[len(b.initBody)-1]
		b.mu.Unlock()
		want := v
		if want == "" {
			want = DefaultProtocolVersion
		}
		if !gjson.Valid(sent) || gjson.Get(sent, "params.protocolVersion").Str != want || gjson.Get(sent, "params.capabilities.sampling").Exists() {
			t.Errorf("version %q: initialize body %s", v, sent)
		}
	}
}

// ResponseHeaders without a backend: which statuses and streams count.
func TestResponseHeaders(t *testing.T) {
	r := newTestRouter(t, "router.yaml")
	gw := codec(t).Mint("")
	routed := func(t *testing.T) *Stream {
		t.Helper()
		r.Sessions().Put(gw, "default/weather", "b1")
		s := r.NewStream()
		body := []byte(`{"jsonrpc":"2.0","id":"r","method":"tools/call","params":{"name":"weather_x"}}`)
		s.RequestHeaders(post(gw, body))
		if a := s.RequestBody(body); a != Route {
			t.Fatalf("%s", actions[a])
		}
		return s
	}
	tests := []struct {
		name         string
		status       int
		fromUpstream bool
		newer        bool // a newer backend session was stored meanwhile
		want         ResponseAction
		wantKept     string // the backend session stored afterwards
	}{
		{"ok", 200, true, false, ResponseContinue, "b1"},
		{"upstream 404", 404, true, false, ResponseReplay, ""},
		{"envoy's own 404 (no route)", 404, false, false, ResponseContinue, "b1"},
		{"upstream 500", 500, true, false, ResponseContinue, "b1"},
		{"upstream 400", 400, true, false, ResponseContinue, "b1"},
		{"404 for an already replaced session", 404, true, true, ResponseReplay, "b2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lost := r.Metrics.SessionsLost.Load()
			s := routed(t)
			defer s.Release()
			if tt.newer {
				r.Sessions().Put(gw, "default/weather", "b2")
			}
			if got := s.ResponseHeaders(tt.status, tt.fromUpstream); got != tt.want {
				t.Fatalf("ResponseHeaders = %s, want %s", responseAction[got], responseAction[tt.want])
			}
			kept, _ := r.Sessions().Get(gw, "default/weather")
			if kept != tt.wantKept {
				t.Errorf("stored session %q, want %q", kept, tt.wantKept)
			}
			wantLost := lost
			if tt.want == ResponseReplay && !tt.newer {
				wantLost++
			}
			if got := r.Metrics.SessionsLost.Load(); got != wantLost {
				t.Errorf("SessionsLost = %d, want %d", got, wantLost)
			}
			var w recorder
			s.ApplyResponse(&w)
			if want := []string{"set mcp-session-id: " + gw}; !slices.Equal(w.ops, want) {
				t.Errorf("ApplyResponse %q, want %q", w.ops, want)
			}
		})
	}
	// Forwarded requests: the broker's 404 (unknown gateway session) passes,
	// and their response headers are left alone.
	s := r.NewStream()
	defer s.Release()
	body := []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	s.RequestHeaders(post(gw, body))
	s.RequestBody(body)
	if got := s.ResponseHeaders(404, true); got != ResponseContinue {
		t.Fatalf("forwarded 404: %s", responseAction[got])
	}
	var w recorder
	s.ApplyResponse(&w)
	if len(w.ops) != 0 {
		t.Fatalf("ApplyResponse on a forwarded request: %q", w.ops)
	}

	// A stateless-era routed call holds no backend session: the backend's
	// 404 is its own answer (e.g. method not found) and passes, and the
	// response gets no session id.
	st := r.NewStream()
	defer st.Release()
	h := post("", body)
	h.ProtocolVersion, h.MCPMethod, h.MCPName = "2026-07-28", "tools/call", "weather_x"
	call := []byte(`{"jsonrpc":"2.0","id":"r","method":"tools/call","params":{"name":"weather_x"}}`)
	h.ContentLength = int64(len(call))
	st.RequestHeaders(h)
	if a := st.RequestBody(call); a != Route {
		t.Fatalf("stateless call: %s", actions[a])
	}
	if got := st.ResponseHeaders(404, true); got != ResponseContinue {
		t.Fatalf("stateless routed 404: %s", responseAction[got])
	}
	var ws recorder
	st.ApplyResponse(&ws)
	if len(ws.ops) != 0 {
		t.Fatalf("ApplyResponse on a stateless call: %q", ws.ops)
	}
}

// DELETE of a gateway session forgets its backend sessions and ends them
// on every backend; the request itself goes on to the broker.
func TestDeleteEndsBackendSessions(t *testing.T) {
	forBoth(t, func(t *testing.T, jsonResponse bool) {
		echo, other := newBackend(t, jsonResponse), newBackend(t, jsonResponse)
		r := routerFor(t, 0, map[string]*backend{"echo": echo, "other": other})
		gw, bystander := codec(t).Mint(""), codec(t).Mint("")
		for _, g := range []string{gw, bystander} {
			for _, tool := range []string{"echo_x", "other_x"} {
				if res := send(t, r, g, "2025-06-18", call(1, tool, "")); res.status != 200 {
					t.Fatalf("%s: %d %s", tool, res.status, res.body)
				}
			}
		}
		echoID, _ := r.Sessions().Get(gw, "echo")
		otherID, _ := r.Sessions().Get(gw, "other")

		s := r.NewStream()
		if a := s.RequestHeaders(RequestHeaders{Path: "/mcp", Method: "DELETE", SessionID: gw, ContentLength: -1, EndOfStream: true}); a != HeadersContinue {
			t.Fatalf("DELETE: %s", headersActions[a])
		}
		s.Release()
		for _, srv := range []string{"echo", "other"} {
			if _, ok := r.Sessions().Get(gw, srv); ok {
				t.Errorf("%s session kept after DELETE", srv)
			}
			if _, ok := r.Sessions().Get(bystander, srv); !ok {
				t.Errorf("another gateway session's %s session dropped", srv)
			}
		}
		for b, want := range map[*backend]string{echo: echoID, other: otherID} {
			select {
			case got := <-b.deleteHit:
				if got != want {
					t.Errorf("backend got DELETE for %q, want %q", got, want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("backend session not ended")
			}
		}
		// The gateway session is over: a routed call with it gets the 404
		// of an unknown session (MCP: 404 after termination), while the
		// bystander's calls still run.
		if res := send(t, r, gw, "2025-06-18", call(2, "echo_x", "")); res.status != 404 || !strings.Contains(res.body, "Session not found") {
			t.Errorf("call after DELETE: %d %s, want 404", res.status, res.body)
		}
		if res := send(t, r, bystander, "2025-06-18", call(3, "echo_x", "z")); ran(res.body) != "ran x:z" {
			t.Errorf("bystander after DELETE: %d %s", res.status, res.body)
		}
	})
}

// Adapters embed the Stream and Init it again for the next request as soon
// as the DELETE's headers are done: the background close must not read the
// Stream (run with -race).
func TestDeleteThenStreamReuse(t *testing.T) {
	setTestEnv(t)
	var calls atomic.Int64
	r := New(Options{HTTPClient: &http.Client{Transport: failingTransport{&calls}}})
	if err := r.Apply(loadConfig(t, "router.yaml")); err != nil {
		t.Fatal(err)
	}
	gw := codec(t).Mint("")
	r.Sessions().Put(gw, "default/weather", "b1")
	r.Sessions().Put(gw, "default/github", "b2")
	r.Sessions().Put(gw, "tools/everything", "") // stateless: nothing to end
	var s Stream
	s.Init(r)
	s.RequestHeaders(RequestHeaders{Path: "/mcp", Method: "DELETE", SessionID: gw, ContentLength: -1, EndOfStream: true})
	s.Release()
	other := New(Options{})
	defer other.Close()
	s.Init(other) // the next request on this worker
	r.Close()     // waits for the background DELETEs
	if calls.Load() != 2 {
		t.Fatalf("%d backend DELETEs, want 2", calls.Load())
	}
}

// The header/body confusions found while testing, against a real backend:
// each was routed with x-mcp-toolname "x" while the backend ran "secret".
// They are now refused before reaching it.
func TestConfusedCallsRefused(t *testing.T) {
	b := newBackend(t, true)
	r := routerFor(t, 0, map[string]*backend{"echo": b})
	gw := codec(t).Mint("")
	for _, body := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo_x","name":"secret"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo_x"},"params":{"name":"secret"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo_x","nam\u0065":"secret"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo_x","NAME":"secret"}}`,
	} {
		res := send(t, r, gw, "2025-06-18", body)
		if res.action != Reply || res.status != 400 || strings.Contains(res.body, "ran ") {
			t.Errorf("%s: %s %d %s", body, actions[res.action], res.status, res.body)
		}
	}
	if b.initCount() != 0 {
		t.Errorf("the backend was contacted (%d initializes)", b.initCount())
	}
	// The plain call still works.
	if res := send(t, r, gw, "2025-06-18", call(2, "echo_secret", "ok")); ran(res.body) != "ran secret:ok" {
		t.Fatalf("plain call: %d %s", res.status, res.body)
	}
}

// The router remembers at most gateway.maxSessions gateway sessions; an
// evicted one's next call simply opens a new backend session.
func TestSessionsBoundedThroughRouter(t *testing.T) {
	b := newBackend(t, true)
	r := routerFor(t, 2, map[string]*backend{"echo": b})
	c := codec(t)
	gws := []string{c.Mint(""), c.Mint(""), c.Mint("")}
	for i, gw := range gws {
		if res := send(t, r, gw, "2025-06-18", call(i, "echo_x", "")); res.status != 200 {
			t.Fatalf("%d: %d %s", i, res.status, res.body)
		}
	}
	if n := r.Sessions().Len(); n != 2 {
		t.Fatalf("%d gateway sessions held, want 2", n)
	}
	if _, ok := r.Sessions().Get(gws[0], "echo"); ok {
		t.Fatal("the least recently used session was not evicted")
	}
	if res := send(t, r, gws[0], "2025-06-18", call(9, "echo_x", "back")); ran(res.body) != "ran x:back" || b.initCount() != 4 {
		t.Fatalf("evicted session: %d %s after %d initializes", res.status, res.body, b.initCount())
	}
}
