package dynmod_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/mcpgw/mcpgw/filter/dynmod/internal/fakehost"
)

func toolCall(id int, name string) string {
	return `{"jsonrpc":"2.0","id":` + strconv.Itoa(id) + `,"method":"tools/call","params":{"name":"` + name +
		`","arguments":{"city":"Paris"}}}`
}

// checkRouted verifies the request headers and body of a call routed to b.
func checkRouted(t testing.TB, s *fakehost.Stream, b backend, backendSession string, id, clears int) {
	t.Helper()
	u, _ := url.Parse(b.URL)
	want := map[string]string{
		":authority":          "weather.default.svc",
		":path":               "/mcp",
		"x-mcp-servername":    "default/weather",
		"x-mcp-toolname":      "now",
		"x-mcp-upstream-host": u.Host,
		"x-mcp-method":        "tools/call",
		"mcp-session-id":      backendSession,
	}
	for k, v := range want {
		if got := s.Request.Values(k); len(got) != 1 || got[0] != v {
			t.Errorf("%s = %q, want [%q]", k, got, v)
		}
	}
	wantBody := toolCall(id, "now")
	if s.Body() != wantBody {
		t.Errorf("body = %s\nwant   %s", s.Body(), wantBody)
	}
	if cl := s.Request.Get("content-length"); cl != strconv.Itoa(len(wantBody)) {
		t.Errorf("content-length = %s, want %d", cl, len(wantBody))
	}
	if s.RouteCacheClears != clears {
		t.Errorf("route cache cleared %d times, want %d", s.RouteCacheClears, clears)
	}
}

func awaitDeleted(t testing.TB, s *fakehost.Stream) {
	t.Helper()
	for i := 0; s.SchedulersDeleted.Load() != int32(s.SchedulersCreated); i++ {
		if i > 1000 {
			t.Fatalf("schedulers: %d created, %d deleted", s.SchedulersCreated, s.SchedulersDeleted.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// openAndRoute runs a first call of gw to b through session init and
// returns the backend session id.
func openAndRoute(t testing.TB, g *gateway, b backend, gw string, id int) (*fakehost.Stream, string) {
	t.Helper()
	s, st := g.post(request{session: gw, body: toolCall(id, "weather_now"),
		headers: map[string]string{"x-mcp-toolname": "spoofed"}})
	if st != fakehost.StopIterationAndBuffer {
		t.Fatalf("first call: body status %d, want StopIterationAndBuffer while the session opens; replies %+v", st, s.Replies)
	}
	if s.SchedulersCreated != 1 || s.ContinueDecodings != 0 {
		t.Fatalf("schedulers %d, continues %d; want 1 and 0", s.SchedulersCreated, s.ContinueDecodings)
	}
	if a := s.Request.Get(":authority"); a != "gateway.example" {
		t.Fatalf(":authority changed before the session was open: %q", a)
	}
	ev := awaitEvent(t, s)
	sid := <-b.Inits
	s.Scheduled(ev) // Envoy runs the scheduled hook on the worker
	if s.ContinueDecodings != 1 || len(s.Replies) != 0 {
		t.Fatalf("after the event: continues %d, replies %+v; want 1 continue", s.ContinueDecodings, s.Replies)
	}
	checkRouted(t, s, b, sid, id, 2) // the spoofed header, then the route
	awaitDeleted(t, s)
	return s, sid
}

func TestLazySessionInitThenRoute(t *testing.T) {
	b := newBackend(t)
	g := newGateway(t, b.server())
	gw := g.codec.Mint("")

	s, sid := openAndRoute(t, g, b, gw, 2)
	// The response carries the backend's session id; the client must only
	// ever see its gateway session.
	s.Response.Add(":status", "200")
	s.Response.Add("mcp-session-id", sid)
	s.SetAttribute(fakehost.AttributeResponseCodeDetails, "via_upstream")
	if st := s.ResponseHeaders(false); st != fakehost.Continue {
		t.Fatalf("response headers status %d", st)
	}
	if got := s.Response.Values("mcp-session-id"); len(got) != 1 || got[0] != gw {
		t.Errorf("response mcp-session-id = %q, want the gateway session", got)
	}
	if b, tr := s.ResponseBodyAndTrailers(); b != fakehost.Continue || tr != fakehost.Continue {
		t.Errorf("response body/trailers status %d/%d", b, tr)
	}
	s.Destroy()

	// The second call reuses the session: routed in the body hook.
	s2, st := g.post(request{session: gw, body: toolCall(3, "weather_now")})
	if st != fakehost.Continue || s2.SchedulersCreated != 0 {
		t.Fatalf("second call: status %d, schedulers %d; want Continue without session init", st, s2.SchedulersCreated)
	}
	checkRouted(t, s2, b, sid, 3, 1)
	s2.Destroy()

	for name, want := range map[string]uint64{"mcpgw.session_inits": 1, "mcpgw.routed": 2, "mcpgw.requests": 2} {
		if got := counter(t, g.cfg, name); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
}

// The backend's 404 (it lost our session) stops the response; a goroutine
// replays the call on a new session, and the scheduled hook sends the
// backend's answer in place of the 404.
func TestBackend404ReplaysCall(t *testing.T) {
	b := newBackend(t)
	g := newGateway(t, b.server())
	gw := g.codec.Mint("")
	s, sid := openAndRoute(t, g, b, gw, 1)
	s.Destroy()

	// Envoy's own 404 (e.g. no route) is passed through.
	s2, _ := g.post(request{session: gw, body: toolCall(2, "weather_now")})
	s2.Response.Add(":status", "404")
	s2.SetAttribute(fakehost.AttributeResponseCodeDetails, "route_not_found")
	if st := s2.ResponseHeaders(true); st != fakehost.Continue || len(s2.Replies) != 0 || s2.SchedulersCreated != 0 {
		t.Fatalf("Envoy 404: status %d, replies %+v; want it passed through", st, s2.Replies)
	}
	s2.Destroy()

	// The backend's 404: it lost our session.
	s3, _ := g.post(request{session: gw, body: toolCall(3, "weather_now")})
	checkRouted(t, s3, b, sid, 3, 1)
	s3.Response.Add(":status", "404")
	s3.SetAttribute(fakehost.AttributeResponseCodeDetails, "via_upstream")
	if st := s3.ResponseHeaders(false); st != fakehost.StopIteration || s3.SchedulersCreated != 1 {
		t.Fatalf("backend 404: status %d, schedulers %d; want StopIteration while the call is replayed", st, s3.SchedulersCreated)
	}
	if st, _ := s3.ResponseBody([]byte("session not found"), false); st != fakehost.StopIterationNoBuffer {
		t.Errorf("404 body: status %d, want StopIterationNoBuffer (dropped)", st)
	}
	if bst, tr := s3.ResponseBodyAndTrailers(); bst != fakehost.StopIterationNoBuffer || tr != fakehost.StopIteration {
		t.Errorf("404 body/trailers: status %d/%d, want the response held", bst, tr)
	}
	s3.Scheduled(awaitEvent(t, s3))
	awaitDeleted(t, s3)
	checkAnswer(t, s3, gw, 3)
	s3.Destroy()
	sid2 := <-b.Inits
	if sid2 == sid {
		t.Fatalf("backend session %q reused after the backend lost it", sid)
	}

	// The replay's session is the one kept: the next call uses it.
	s4, st := g.post(request{session: gw, body: toolCall(4, "weather_now")})
	if st != fakehost.Continue || s4.SchedulersCreated != 0 {
		t.Fatalf("next call: status %d, schedulers %d; want it routed at once", st, s4.SchedulersCreated)
	}
	checkRouted(t, s4, b, sid2, 4, 1)
	s4.Destroy()
	for name, want := range map[string]uint64{"mcpgw.sessions_lost": 1, "mcpgw.session_inits": 2,
		"mcpgw.replays": 1, "mcpgw.replays_succeeded": 1, "mcpgw.rejected.backend_session_lost": 0} {
		if got := counter(t, g.cfg, name); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
}

// checkAnswer checks that the stream's only local reply is the answer of
// the backend's tool to the replayed call id of gateway session gw.
func checkAnswer(t *testing.T, s *fakehost.Stream, gw string, id int64) {
	t.Helper()
	if len(s.Replies) != 1 {
		t.Fatalf("%d local replies, want the answer: %+v", len(s.Replies), s.Replies)
	}
	r := s.Replies[0]
	if r.Status != 200 || r.Details != "mcpgw_replayed" || r.Headers["content-type"] != "text/event-stream" ||
		r.Headers["mcp-session-id"] != gw {
		t.Errorf("answer %d %q %v, want 200 mcpgw_replayed, SSE, the gateway session", r.Status, r.Details, r.Headers)
	}
	data := r.Body[strings.Index(r.Body, "data: ")+6:]
	if gjson.Get(data, "id").Int() != id || gjson.Get(data, "result.content.0.text").Str != "sunny" {
		t.Errorf("answer body %s, want the tool's result for id %d", r.Body, id)
	}
}

// The client goes away while its call is being replayed: the goroutine
// finishes the stream, no event is delivered, and the slot is reused.
func TestStreamDestroyedWhileReplaying(t *testing.T) {
	b := newBackend(t)
	var armed atomic.Bool
	blocked := make(chan struct{}, 1)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if armed.Load() && gjson.GetBytes(body, "method").Str == "tools/call" {
			blocked <- struct{}{}
			<-r.Context().Done() // until the replay is abandoned
			return
		}
		b.Config.Handler.ServeHTTP(w, r)
	}))
	defer front.Close()
	g := newGateway(t, server{name: "default/weather", url: front.URL + "/mcp", hostname: "w.svc", prefix: "weather_"})
	gw := g.codec.Mint("")
	s, _ := g.post(request{session: gw, body: toolCall(1, "weather_now")})
	s.Scheduled(awaitEvent(t, s)) // the first call opens the session
	s.Destroy()

	armed.Store(true)
	s2, st := g.post(request{session: gw, body: toolCall(2, "weather_now")})
	if st != fakehost.Continue {
		t.Fatalf("second call: status %d", st)
	}
	s2.Response.Add(":status", "404")
	s2.SetAttribute(fakehost.AttributeResponseCodeDetails, "via_upstream")
	if st := s2.ResponseHeaders(true); st != fakehost.StopIteration {
		t.Fatalf("backend 404: status %d", st)
	}
	<-blocked
	s2.Destroy() // the client went away during the replay
	awaitDeleted(t, s2)
	if len(s2.Events) != 0 || len(s2.Replies) != 0 {
		t.Errorf("a destroyed stream got events %d, replies %+v", len(s2.Events), s2.Replies)
	}
	for i := 0; i < 3; i++ {
		s3, st := g.post(request{body: `{"jsonrpc":"2.0","id":1,"method":"ping"}`})
		if st != fakehost.Continue || s3.Request.Get("x-mcp-method") != "ping" {
			t.Fatalf("stream after an abandoned replay: status %d", st)
		}
		s3.Destroy()
	}
}

func TestBackendUnavailable(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	g := newGateway(t, server{name: "default/weather", url: dead.URL + "/mcp", hostname: "w.svc", prefix: "weather_"})
	s, st := g.post(request{session: g.codec.Mint(""), body: toolCall(5, "weather_now")})
	if st != fakehost.StopIterationAndBuffer {
		t.Fatalf("status %d", st)
	}
	s.Scheduled(awaitEvent(t, s))
	r := reply(t, s)
	if r.Status != 200 || gjson.Get(r.Body, "error.code").Int() != -32603 || r.Details != "mcpgw_backend_unavailable" {
		t.Errorf("reply %d %s %s", r.Status, r.Details, r.Body)
	}
	if s.ContinueDecodings != 0 {
		t.Error("continued decoding after a local reply")
	}
}

func TestStreamDestroyedWhileOpening(t *testing.T) {
	release := make(chan struct{})
	blocked := make(chan struct{}, 1)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		blocked <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		http.Error(w, "late", http.StatusServiceUnavailable)
	}))
	defer slow.Close()
	defer close(release)
	g := newGateway(t, server{name: "default/weather", url: slow.URL + "/mcp", hostname: "w.svc", prefix: "weather_"})

	s, st := g.post(request{session: g.codec.Mint(""), body: toolCall(1, "weather_now")})
	if st != fakehost.StopIterationAndBuffer {
		t.Fatalf("status %d", st)
	}
	<-blocked
	s.Destroy() // the client went away while the session was opening
	awaitDeleted(t, s)
	select {
	case ev := <-s.Events:
		t.Errorf("event %d delivered for a destroyed stream", ev)
	case <-time.After(50 * time.Millisecond):
	}

	// Slots are reused: later streams work normally.
	for i := 0; i < 3; i++ {
		s2, st := g.post(request{body: `{"jsonrpc":"2.0","id":1,"method":"ping"}`})
		if st != fakehost.Continue || s2.Request.Get("x-mcp-method") != "ping" {
			t.Fatalf("stream after an abandoned one: status %d", st)
		}
		s2.Destroy()
	}
}

func TestConfigsShareRouter(t *testing.T) {
	b := newBackend(t)
	g := newGateway(t, b.server())
	gw := g.codec.Mint("")
	s, sid := openAndRoute(t, g, b, gw, 1)
	s.Destroy()

	// A listener update: Envoy creates the new filter config, then destroys
	// the old one. Backend sessions survive.
	cfg2 := g.newConfig()
	g.cfg.Destroy()
	g.cfg = cfg2
	s2, st := g.post(request{session: gw, body: toolCall(2, "weather_now")})
	if st != fakehost.Continue {
		t.Fatalf("status %d: the session opened under the old filter config was lost", st)
	}
	checkRouted(t, s2, b, sid, 2, 1)
}

// The prefix-stripped body must replace the original wherever Envoy holds
// it: in the current chunk, in the decoding buffer, or in both.
func TestRoutedBodyReplacement(t *testing.T) {
	b := newBackend(t)
	g := newGateway(t, b.server())
	gw := g.codec.Mint("")
	s, sid := openAndRoute(t, g, b, gw, 1)
	s.Destroy()
	for _, tc := range []struct {
		name     string
		chunk    int
		split    bool
		previous bool
	}{{"one chunk", 0, false, false}, {"two frames", 0, true, false}, {"many chunks", 5, true, false},
		{"received is the buffer", 0, false, true}, {"received is the buffer, chunked", 9, false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			body := toolCall(2, "weather_now")
			s, _ := g.start(g.cfg, request{session: gw, body: body})
			s.ChunkSize, s.PreviousFilterBuffered = tc.chunk, tc.previous
			if tc.split {
				s.RequestBody([]byte(body[:20]), false)
				body = body[20:]
			}
			if st := s.RequestBody([]byte(body), true); st != fakehost.Continue {
				t.Fatalf("status %d, replies %+v", st, s.Replies)
			}
			checkRouted(t, s, b, sid, 2, 1)
			s.Destroy()
		})
	}
}

func TestRoutedCallEndingWithTrailers(t *testing.T) {
	b := newBackend(t)
	g := newGateway(t, b.server())
	gw := g.codec.Mint("")
	body := toolCall(1, "weather_now")
	s, _ := g.start(g.cfg, request{session: gw, body: body})
	if st := s.RequestBody([]byte(body), false); st != fakehost.StopIterationAndBuffer {
		t.Fatalf("body status %d", st)
	}
	// The session is opened from the trailers hook.
	if st := s.RequestTrailers(); st != fakehost.StopIteration {
		t.Fatalf("trailers status %d, want StopIteration while the session opens", st)
	}
	s.Scheduled(awaitEvent(t, s))
	checkRouted(t, s, b, <-b.Inits, 1, 1)
	if s.ContinueDecodings != 1 {
		t.Errorf("continue_decoding called %d times", s.ContinueDecodings)
	}
}

// The response to a forwarded initialize names the new gateway session: the
// adapter hands it to the router, which opens that session's backend
// sessions with the client's capabilities and protocol version.
func TestInitializeKeepsClientContext(t *testing.T) {
	b := newBackend(t)
	g := newGateway(t, b.server())
	gw := g.codec.Mint("")
	init := `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25",` +
		`"capabilities":{"elicitation":{"form":{}}},"clientInfo":{"name":"c","version":"1"}}}`
	s, st := g.post(request{body: init})
	if st != fakehost.Continue {
		t.Fatalf("initialize: status %d, want Continue (to the broker)", st)
	}
	s.Response.Add(":status", "200")
	s.Response.Add("mcp-session-id", gw)
	s.SetAttribute(fakehost.AttributeResponseCodeDetails, "via_upstream")
	if st := s.ResponseHeaders(false); st != fakehost.Continue {
		t.Fatalf("response headers status %d", st)
	}
	if got := s.Response.Values("mcp-session-id"); len(got) != 1 || got[0] != gw {
		t.Errorf("response mcp-session-id = %q, want the broker's untouched", got)
	}
	s.Destroy()

	s2, _ := openAndRoute(t, g, b, gw, 2)
	s2.Destroy()
	sent := <-b.InitBodies
	if got := gjson.Get(sent, "params.capabilities").Raw; got != `{"elicitation":{"form":{}}}` {
		t.Errorf("backend initialize capabilities %s, want the client's", got)
	}
}

// A foreign Origin is refused at request headers with 403, GET included.
func TestForeignOriginRefused(t *testing.T) {
	g := newGateway(t)
	for _, method := range []string{"GET", "POST"} {
		s, st := g.start(g.cfg, request{method: method, headers: map[string]string{"origin": "http://evil.example.com"}})
		if st != fakehost.StopIteration {
			t.Fatalf("%s: status %d, want StopIteration after a reply", method, st)
		}
		if r := reply(t, s); r.Status != 403 || gjson.Get(r.Body, "error.code").Int() != -32600 {
			t.Errorf("%s: reply %d %s", method, r.Status, r.Body)
		}
		s.Destroy()
	}
}

// The SSE response of a routed call passes through the router: a backend's
// request to the client gets a relay id whatever the chunking, results pass
// untouched, and the client's answer goes back to that backend.
func TestRoutedResponseRelaysRequests(t *testing.T) {
	b := newBackend(t)
	g := newGateway(t, b.server())
	gw := g.codec.Mint("")
	s, sid := openAndRoute(t, g, b, gw, 1)
	s.Response.Add(":status", "200")
	s.Response.Add("content-type", "text/event-stream")
	s.SetAttribute(fakehost.AttributeResponseCodeDetails, "via_upstream")
	if st := s.ResponseHeaders(false); st != fakehost.Continue {
		t.Fatalf("response headers: status %d", st)
	}
	ask := "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"elicitation/create\",\"params\":{}}\n\n"
	var got strings.Builder
	for _, chunk := range []string{ask[:30], ask[30:]} {
		st, out := s.ResponseBody([]byte(chunk), false)
		if st != fakehost.Continue {
			t.Fatalf("response body: status %d", st)
		}
		got.WriteString(out)
	}
	want := strings.Replace(ask, `"id":1`, `"id":"mcpgw:15:default/weathern1"`, 1)
	if got.String() != want {
		t.Fatalf("client receives %q, want %q", got.String(), want)
	}
	result := "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n"
	if _, out := s.ResponseBody([]byte(result), true); out != result {
		t.Errorf("result altered: %q", out)
	}
	s.Destroy()

	answer := `{"jsonrpc":"2.0","id":"mcpgw:15:default/weathern1","result":{"action":"decline"}}`
	s2, st := g.post(request{session: gw, body: answer})
	if st != fakehost.Continue {
		t.Fatalf("answer: body status %d", st)
	}
	if got := s2.Request.Get("mcp-session-id"); got != sid {
		t.Errorf("answer sent with backend session %q, want %q", got, sid)
	}
	if got, want := s2.Body(), `{"jsonrpc":"2.0","id":1,"result":{"action":"decline"}}`; got != want {
		t.Errorf("answer body upstream %s, want %s", got, want)
	}
	s2.Destroy()
	if n := counter(t, g.cfg, "mcpgw.requests_relayed"); n != 1 {
		t.Errorf("mcpgw.requests_relayed = %d, want 1", n)
	}
	if n := counter(t, g.cfg, "mcpgw.answers_routed"); n != 1 {
		t.Errorf("mcpgw.answers_routed = %d, want 1", n)
	}
}
