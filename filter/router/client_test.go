package router

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

func TestIsLoopbackOrigin(t *testing.T) {
	for o, want := range map[string]bool{
		"http://localhost":             true,
		"http://localhost:6274":        true,
		"https://localhost:443":        true,
		"http://127.0.0.1":             true,
		"http://127.0.0.1:8080":        true,
		"http://[::1]":                 true,
		"https://[::1]:3000":           true,
		"":                             false,
		"null":                         false,
		"localhost":                    false,
		"ftp://localhost":              false,
		"http://localhost.evil.com":    false,
		"http://localhost:80.evil.com": false,
		"http://localhost:":            false,
		"http://localhost:1234567":     false,
		"http://localhost/":            false,
		"http://127.0.0.1.nip.io":      false,
		"http://127.0.0.2":             false,
		"http://evil.example.com":      false,
		"http://[::1]x":                false,
		"HTTP://localhost":             false,
	} {
		if got := isLoopbackOrigin(o); got != want {
			t.Errorf("isLoopbackOrigin(%q) = %v, want %v", o, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { isLoopbackOrigin("http://localhost:6274") }); n != 0 {
		t.Errorf("isLoopbackOrigin allocates %v times", n)
	}
}

// The Origin check runs at request headers, for every method, before the
// session is looked at; a forbidden DELETE ends nothing.
func TestOriginRejectedAtHeaders(t *testing.T) {
	r := newTestRouter(t, "router.yaml")
	gw := codec(t).Mint("")
	r.Sessions().Put(gw, "default/weather", "b1")
	for _, method := range []string{"POST", "GET", "DELETE"} {
		s := r.NewStream()
		h := RequestHeaders{Path: "/mcp", Method: method, SessionID: gw, Origin: "http://evil.example.com", ContentLength: -1}
		if ha := s.RequestHeaders(h); ha != HeadersReply || s.Rejection() != RejectOrigin {
			t.Errorf("%s: %s, %s", method, headersActions[ha], s.Rejection())
		}
		if status, _ := s.Reply(); status != 403 {
			t.Errorf("%s: status %d", method, status)
		}
		s.Release()
	}
	if _, ok := r.Sessions().Get(gw, "default/weather"); !ok {
		t.Error("a refused DELETE ended the session")
	}
	if got := r.Metrics.Rejected[RejectOrigin].Load(); got != 3 {
		t.Errorf("origin_not_allowed counted %d times", got)
	}
}

// initialize drives a client's initialize through a Stream, and its broker
// response creating gateway session gw.
func initialize(t *testing.T, r *Router, gw, body string) {
	t.Helper()
	s := r.NewStream()
	defer s.Release()
	h := post("", []byte(body))
	h.ProtocolVersion = ""
	if ha := s.RequestHeaders(h); ha != HeadersBuffer {
		t.Fatalf("headers action %s", headersActions[ha])
	}
	if a := s.RequestBody([]byte(body)); a != Forward {
		t.Fatalf("action %s", actions[a])
	}
	if !s.AwaitsSessionID() {
		t.Fatal("initialize does not await the session id")
	}
	s.InitializeResponse(200, gw)
	if s.AwaitsSessionID() {
		t.Fatal("still awaits the session id")
	}
}

// The client's initialize capabilities and protocol version reach the
// backend sessions the router opens for it; its logging level too, right
// after the open and whenever it changes; the backend then sends it log
// notifications.
func TestClientContextReachesBackend(t *testing.T) {
	b := newBackend(t, false) // SSE: notifications travel with the response
	r := routerFor(t, 0, map[string]*backend{"echo": b})
	gw := codec(t).Mint("")
	initialize(t, r, gw, `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25",`+
		`"capabilities":{"elicitation":{"form":{}},"sampling":{}},"clientInfo":{"name":"c","version":"1"}}}`)
	if caps, version, _ := r.Sessions().Client(gw); version != "2025-11-25" || caps != `{"elicitation":{"form":{}},"sampling":{}}` {
		t.Fatalf("client context %q %q", caps, version)
	}

	// Before any backend session: recorded, forwarded nowhere, sent to the broker.
	res := send(t, r, gw, "2025-11-25", `{"jsonrpc":"2.0","id":1,"method":"logging/setLevel","params":{"level":"info"}}`)
	if res.action != Forward {
		t.Fatalf("setLevel: %s", actions[res.action])
	}
	if m, _ := res.request.get("x-mcp-method"); m != "logging/setLevel" {
		t.Errorf("x-mcp-method %q", m)
	}
	if _, _, level := r.Sessions().Client(gw); level != "info" {
		t.Fatalf("level %q", level)
	}

	res = send(t, r, gw, "2025-11-25", call(2, "echo_log", ""))
	if res.action != Route || !strings.Contains(res.body, "hello from the backend") {
		t.Fatalf("log call: %s %d %s", actions[res.action], res.status, res.body)
	}
	b.mu.Lock()
	sent := b.initBody[0]
	levels := slices.Clone(b.levels)
	b.mu.Unlock()
	if got := gjson.Get(sent, "params.capabilities").Raw; got != `{"elicitation":{"form":{}},"sampling":{}}` {
		t.Errorf("backend initialize capabilities %s", got)
	}
	if got := gjson.Get(sent, "params.protocolVersion").Str; got != "2025-11-25" {
		t.Errorf("backend initialize version %q", got)
	}
	backendID, _ := r.Sessions().Get(gw, "echo")
	if want := []string{backendID + " info"}; !slices.Equal(levels, want) {
		t.Errorf("backend setLevel %q, want %q", levels, want)
	}

	// A later level goes to the open backend session, in the background.
	res = send(t, r, gw, "2025-11-25", `{"jsonrpc":"2.0","id":3,"method":"logging/setLevel","params":{"level":"error"}}`)
	if res.action != Forward {
		t.Fatalf("setLevel: %s", actions[res.action])
	}
	want := []string{backendID + " info", backendID + " error"}
	eventually(t, fmt.Sprintf("backend setLevel %q", want), func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return slices.Equal(b.levels, want)
	})
	// Now info is below the level: the backend drops the notification.
	res = send(t, r, gw, "2025-11-25", call(4, "echo_log", ""))
	if res.action != Route || strings.Contains(res.body, "hello from the backend") || ran(res.body) != "logged" {
		t.Errorf("log call after level error: %s %d %s", actions[res.action], res.status, res.body)
	}
}

// Without a kept context (the client initialized before the router started,
// or with another replica), backends are opened as before: no capabilities,
// the header's version, no level.
func TestNoClientContext(t *testing.T) {
	b := newBackend(t, true)
	r := routerFor(t, 0, map[string]*backend{"echo": b})
	gw := codec(t).Mint("")
	if res := send(t, r, gw, "2025-06-18", call(1, "echo_x", "a")); res.action != Route {
		t.Fatalf("call: %s", actions[res.action])
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if got := gjson.Get(b.initBody[0], "params.capabilities").Raw; got != "{}" {
		t.Errorf("capabilities %s", got)
	}
	if len(b.levels) != 0 {
		t.Errorf("setLevel sent: %q", b.levels)
	}
}

func TestInitializeResponseIgnored(t *testing.T) {
	r := newTestRouter(t, "router.yaml")
	c := codec(t)
	body := `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"sampling":{}}}}`
	for name, tc := range map[string]struct {
		status int
		id     string
	}{
		"error status": {400, c.Mint("")},
		"no session":   {200, ""},
		"forged":       {200, forge(c.Mint(""))},
	} {
		s := r.NewStream()
		s.RequestHeaders(post("", []byte(body)))
		s.RequestBody([]byte(body))
		s.InitializeResponse(tc.status, tc.id)
		s.Release()
		if r.Sessions().Len() != 0 {
			t.Errorf("%s: kept a client context", name)
		}
	}
	// Not an initialize: nothing awaited.
	s := r.NewStream()
	list := []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	s.RequestHeaders(post(c.Mint(""), list))
	s.RequestBody(list)
	if s.AwaitsSessionID() {
		t.Error("tools/list awaits a session id")
	}
}

func TestInternLevel(t *testing.T) {
	for _, l := range logLevels {
		if got := internLevel(gjson.Parse(`"` + l + `"`)); got != l {
			t.Errorf("internLevel(%q) = %q", l, got)
		}
	}
	for _, raw := range []string{`"Debug"`, `"verbose"`, `""`, `1`, `null`, `{"level":"debug"}`} {
		if got := internLevel(gjson.Parse(raw)); got != "" {
			t.Errorf("internLevel(%s) = %q", raw, got)
		}
	}
}

// A client's cancellation of a routed call reaches the backend sessions of
// its gateway session (in the background) and goes on to the broker; one
// naming a relay id is routed to that backend alone, id restored.
func TestCancellation(t *testing.T) {
	echo, other := newBackend(t, true), newBackend(t, true)
	r := routerFor(t, 0, map[string]*backend{"echo": echo, "other": other})
	gw := codec(t).Mint("")
	for i, name := range []string{"echo_x", "other_x"} {
		if res := send(t, r, gw, "2025-11-25", call(i+1, name, "a")); res.action != Route {
			t.Fatalf("call %s: %s", name, actions[res.action])
		}
	}
	res := send(t, r, gw, "2025-11-25", `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7}}`)
	if res.action != Forward {
		t.Fatalf("cancellation: %s, want forward (to the broker as well)", actions[res.action])
	}
	for name, b := range map[string]*backend{"echo": echo, "other": other} {
		sid, _ := r.Sessions().Get(gw, name)
		eventually(t, name+" got the cancellation", func() bool {
			b.mu.Lock()
			defer b.mu.Unlock()
			return slices.Equal(b.cancels, []string{sid + " 7"})
		})
	}

	relayed := `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"mcpgw:4:echon3"}}`
	res = send(t, r, gw, "2025-11-25", relayed)
	if res.action != Route {
		t.Fatalf("cancellation of a relayed request: %s, want route", actions[res.action])
	}
	sid, _ := r.Sessions().Get(gw, "echo")
	eventually(t, "echo got the relayed cancellation", func() bool {
		echo.mu.Lock()
		defer echo.mu.Unlock()
		return slices.Contains(echo.cancels, sid+" 3")
	})
	if n := r.Metrics.CancelsRelayed.Load(); n != 1 {
		t.Errorf("CancelsRelayed = %d, want 1", n)
	}
}
