package golang_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/envoyproxy/envoy/contrib/golang/common/go/api"
	"github.com/tidwall/gjson"

	"github.com/mcpgw/mcpgw/filter/golang"
	"github.com/mcpgw/mcpgw/filter/golang/internal/fakeapi"
	"github.com/mcpgw/mcpgw/filter/internal/adaptertest"
)

// gatedBackend proxies to b once gate is closed; entered receives a value
// when a request waits at the gate.
type gatedBackend struct {
	*httptest.Server
	gate    chan struct{}
	entered chan struct{}
}

func newGatedBackend(t *testing.T, b *adaptertest.Backend) *gatedBackend {
	u, _ := url.Parse(b.URL)
	proxy := httputil.NewSingleHostReverseProxy(u)
	g := &gatedBackend{gate: make(chan struct{}), entered: make(chan struct{}, 16)}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.entered <- struct{}{}
		select {
		case <-g.gate:
		case <-r.Context().Done():
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(g.Close)
	t.Cleanup(func() { g.open() })
	return g
}

var gateOnce sync.Mutex

func (g *gatedBackend) open() {
	gateOnce.Lock()
	defer gateOnce.Unlock()
	select {
	case <-g.gate:
	default:
		close(g.gate)
	}
}

// gatedGateway is a config whose "weather_*" server sits behind a gate.
func gatedGateway(t *testing.T) (*filterConfig, *adaptertest.Env, *gatedBackend) {
	env := adaptertest.NewEnv(t)
	g := newGatedBackend(t, env.Backend)
	entry := env.Backend.Entry()
	entry.URL = g.URL + "/mcp"
	return newFilterConfig(t, adaptertest.WriteConfig(t, t.TempDir(), entry)), env, g
}

func callRequest(env *adaptertest.Env, id int) adaptertest.Request {
	return adaptertest.Request{Body: adaptertest.ToolCall(id, "weather_now"),
		Headers: [][2]string{{"mcp-session-id", env.Codec.Mint("")}}}
}

// The first call of a client to a server returns api.Running and holds the
// request, unchanged, until the goroutine resumed it.
func TestSessionOpensInBackground(t *testing.T) {
	fc, env, g := gatedGateway(t)
	r := callRequest(env, 1)
	s := fc.start(r)
	defer checkClean(t, s)
	defer s.Destroy()
	if st := s.DecodeHeaders(false); st != api.StopAndBuffer {
		t.Fatalf("DecodeHeaders = %d, want StopAndBuffer", st)
	}
	if st := s.DecodeData([]byte(r.Body), true); st != api.Running {
		t.Fatalf("DecodeData = %d, want Running", st)
	}
	<-g.entered
	if s.Upstream().HeadersSent || len(s.Replies()) != 0 {
		t.Fatal("the request moved while its session was opening")
	}
	if a, _ := s.Request.Get(":authority"); a != "gateway.example" {
		t.Fatalf(":authority changed before the session was open: %q", a)
	}
	g.open()
	if !s.Await(10 * time.Second) {
		t.Fatal("the stream was not resumed")
	}
	up := s.Upstream()
	if !up.EndStream || string(up.Body) != adaptertest.ToolCall(1, "now") {
		t.Errorf("upstream %+v %s", up, up.Body)
	}
	if a, _ := s.Request.Get(":authority"); a != "weather.default.svc" {
		t.Errorf(":authority %q after the session opened", a)
	}
	if s.RouteCacheClears() != 1 {
		t.Errorf("route cache cleared %d times, want 1", s.RouteCacheClears())
	}
}

// Trailers wait for the goroutine; Envoy delivers them after Continue.
func TestSessionOpensBeforeTrailers(t *testing.T) {
	fc, env, g := gatedGateway(t)
	r := callRequest(env, 1)
	s := fc.start(r)
	defer checkClean(t, s)
	defer s.Destroy()
	s.DecodeHeaders(false)
	if st := s.DecodeData([]byte(r.Body), false); st != fakeapi.NotCalled {
		t.Fatalf("DecodeData before the end = %d, want NotCalled (Envoy buffers)", st)
	}
	if st := s.DecodeTrailers(); st != api.Running {
		t.Fatalf("trailers: status %d, want Running (DecodeData with the whole body)", st)
	}
	g.open()
	if !s.Await(10 * time.Second) {
		t.Fatal("not resumed")
	}
	if up := s.Upstream(); !up.EndStream || string(up.Body) != adaptertest.ToolCall(1, "now") {
		t.Errorf("upstream %+v %s", up, up.Body)
	}
}

func TestEmptyBodyWithTrailers(t *testing.T) {
	fc := newFilterConfig(t, adaptertest.WriteConfig(t, t.TempDir()))
	s := fc.start(adaptertest.Request{})
	defer checkClean(t, s)
	defer s.Destroy()
	s.Request.Add("content-type", "application/json")
	s.DecodeHeaders(false)
	if st := s.DecodeTrailers(); st != api.LocalReply {
		t.Fatalf("trailers status %d, want LocalReply", st)
	}
	if r := s.Replies(); len(r) != 1 || r[0].Details != "mcpgw_parse_error" {
		t.Errorf("replies %+v", r)
	}
}

// The client goes away while the session opens: the goroutine's I/O is
// canceled and nothing touches the destroyed stream.
func TestStreamDestroyedWhileOpening(t *testing.T) {
	fc, env, g := gatedGateway(t)
	r := callRequest(env, 1)
	s := fc.start(r)
	defer checkClean(t, s)
	s.DecodeHeaders(false)
	s.DecodeData([]byte(r.Body), true)
	<-g.entered
	s.Destroy()
	golang.WaitSessions(fc.parsed.(api.Config)) // the goroutine is done
	if len(s.Replies()) != 0 || s.Upstream().HeadersSent {
		t.Errorf("a destroyed stream moved: %+v", s.Replies())
	}
	// Later streams work normally.
	if res := fc.Do(t, adaptertest.Request{Body: `{"jsonrpc":"2.0","id":1,"method":"ping"}`}); !res.Continued {
		t.Error("stream after an abandoned one did not continue")
	}
}

// Envoy may reply on its own (a timeout) while the goroutine owns the
// stream: EncodeHeaders lets that reply through untouched.
func TestEnvoyReplyWhileOpening(t *testing.T) {
	fc, env, g := gatedGateway(t)
	r := callRequest(env, 1)
	s := fc.start(r)
	defer checkClean(t, s)
	s.DecodeHeaders(false)
	s.DecodeData([]byte(r.Body), true)
	<-g.entered
	s.Response.Add(":status", "504")
	s.Response.Add("mcp-session-id", "whatever")
	s.Details = "request_timeout"
	if st := s.EncodeHeaders(true); st != api.Continue {
		t.Errorf("EncodeHeaders = %d, want Continue", st)
	}
	if v, _ := s.Response.Get("mcp-session-id"); v != "whatever" {
		t.Errorf("Envoy's reply was rewritten: mcp-session-id %q", v)
	}
	s.Destroy()
}

func TestPanicsFailSafe(t *testing.T) {
	fc := newFilterConfig(t, adaptertest.WriteConfig(t, t.TempDir()))
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`
	for _, tc := range []struct{ panicOn, hook string }{
		{"CopyHeaders", "headers"}, {"ClearRouteCache", "headers"}, {"GetBuffer", "data"}, {"SetHeader", "data"},
	} {
		t.Run(tc.panicOn, func(t *testing.T) {
			s := fc.start(adaptertest.Request{Body: body, Headers: [][2]string{{"x-mcp-method", "spoof"}}})
			defer checkClean(t, s)
			defer s.Destroy()
			if tc.hook == "headers" {
				s.PanicOn = tc.panicOn
			}
			st := s.DecodeHeaders(false)
			if tc.hook == "data" {
				s.PanicOn = tc.panicOn
				st = s.DecodeData([]byte(body), true)
			}
			if st != api.LocalReply {
				t.Errorf("status %d, want LocalReply", st)
			}
			r := s.Replies()
			if len(r) != 1 || r[0].Status != 500 || gjson.Get(r[0].Body, "error.code").Int() != -32603 ||
				r[0].Details != "mcpgw_internal_error" || r[0].Panic {
				t.Errorf("replies %+v, want our JSON-RPC 500", r)
			}
		})
	}
	if len(fakeapi.Logs("panic recovered in Envoy callback")) < 4 {
		t.Error("panics were not logged")
	}
}

// A panic on the response side lets the response through.
func TestResponsePanicPassesThrough(t *testing.T) {
	env := adaptertest.NewEnv(t)
	fc := newFilterConfig(t, env.Path)
	r := callRequest(env, 1)
	s := fc.start(r)
	defer checkClean(t, s)
	defer s.Destroy()
	send(t, s, r)
	s.Response.Add(":status", "404")
	s.Details = "via_upstream"
	s.PanicOn = "GetStringValue"
	if st := s.EncodeHeaders(false); st != api.Continue || len(s.Replies()) != 0 {
		t.Errorf("status %d, replies %+v; want the response through", st, s.Replies())
	}
}

// A panic in the session goroutine answers the request with a 500.
func TestPanicInSessionGoroutine(t *testing.T) {
	fc, env, g := gatedGateway(t)
	r := callRequest(env, 1)
	s := fc.start(r)
	defer checkClean(t, s)
	defer s.Destroy()
	s.DecodeHeaders(false)
	s.DecodeData([]byte(r.Body), true)
	<-g.entered
	s.PanicOn = "SetHeader" // the goroutine's first header write
	g.open()
	if !s.Await(10 * time.Second) {
		t.Fatal("not resumed")
	}
	if rp := s.Replies(); len(rp) != 1 || rp[0].Status != 500 || rp[0].Details != "mcpgw_internal_error" {
		t.Errorf("replies %+v", rp)
	}
}

// Streams run concurrently on several workers, with session inits on
// goroutines; run with -race.
func TestConcurrentStreams(t *testing.T) {
	env := adaptertest.NewEnv(t)
	fc := newFilterConfig(t, env.Path)
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() { // one worker
			defer wg.Done()
			gw := env.Codec.Mint("") // one client per worker: each opens a session
			for i := 0; i < 20; i++ {
				res := fc.Do(t, adaptertest.Request{Body: adaptertest.ToolCall(i, "weather_now"),
					Headers:  [][2]string{{"mcp-session-id", gw}},
					Response: &adaptertest.Response{Status: 200, Details: "via_upstream"}})
				if !res.Continued || len(res.Headers["x-mcp-servername"]) != 1 ||
					res.ResponseHeaders["mcp-session-id"][0] != gw {
					errs <- fmt.Sprintf("worker %d call %d: %+v", w, i, res)
					return
				}
				fwd := fc.Do(t, adaptertest.Request{Body: `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`})
				if !fwd.Continued || fwd.Headers["x-mcp-method"][0] != "tools/list" {
					errs <- fmt.Sprintf("worker %d forward %d: %+v", w, i, fwd)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if n := fc.counter(t, "mcpgw.session_inits"); n != 4 {
		t.Errorf("mcpgw.session_inits = %d, want 4", n)
	}
	if n := fc.counter(t, "mcpgw.requests"); n != 160 {
		t.Errorf("mcpgw.requests = %d, want 160", n)
	}
	if strings.Count(strings.Join(fc.metrics.Names(), ","), "mcpgw.") == 0 {
		t.Error("no counters")
	}
}

// The response to a forwarded initialize names the new gateway session: the
// filter hands it to the router, which opens that session's backend
// sessions with the client's capabilities.
func TestInitializeKeepsClientContext(t *testing.T) {
	env := adaptertest.NewEnv(t)
	fc := newFilterConfig(t, env.Path)
	gw := env.Codec.Mint("")
	init := adaptertest.Request{Body: `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25",` +
		`"capabilities":{"elicitation":{"form":{}}},"clientInfo":{"name":"c","version":"1"}}}`}
	s := fc.start(init)
	send(t, s, init)
	if !s.Upstream().EndStream || len(s.Replies()) != 0 {
		t.Fatalf("initialize not forwarded: %+v", s.Replies())
	}
	s.Response.Add(":status", "200")
	s.Response.Add("mcp-session-id", gw)
	if st := s.EncodeHeaders(false); st != api.Continue {
		t.Fatalf("EncodeHeaders = %d", st)
	}
	checkClean(t, s)
	s.Destroy()

	call := adaptertest.Request{Body: adaptertest.ToolCall(1, "weather_now"), Headers: [][2]string{{"mcp-session-id", gw}}}
	s2 := fc.start(call)
	send(t, s2, call)
	checkClean(t, s2)
	s2.Destroy()
	select {
	case sent := <-env.Backend.InitBodies:
		if !strings.Contains(sent, `"capabilities":{"elicitation":{"form":{}}}`) {
			t.Errorf("backend initialize %s, want the client's capabilities", sent)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no backend session opened")
	}
}

// The SSE response of a routed call passes through the router: a backend's
// request to the client gets a relay id whatever the chunking, and the
// client's answer goes back to that backend with the original id.
func TestRoutedResponseRelaysRequests(t *testing.T) {
	env := adaptertest.NewEnv(t)
	fc := newFilterConfig(t, env.Path)
	gw := env.Codec.Mint("")
	call := adaptertest.Request{Body: adaptertest.ToolCall(1, "weather_now"), Headers: [][2]string{{"mcp-session-id", gw}}}
	s := fc.start(call)
	send(t, s, call)
	s.Response.Add(":status", "200")
	s.Response.Add("content-type", "text/event-stream")
	s.Details = "via_upstream"
	if st := s.EncodeHeaders(false); st != api.Continue {
		t.Fatalf("EncodeHeaders = %d", st)
	}
	ask := "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"roots/list\"}\n\n"
	for i, chunk := range []string{ask[:25], ask[25:]} {
		if st := s.EncodeData([]byte(chunk), i == 1); st != api.Continue {
			t.Fatalf("EncodeData = %d", st)
		}
	}
	want := strings.Replace(ask, `"id":1`, `"id":"mcpgw:15:default/weathern1"`, 1)
	if got := string(s.Downstream().Body); got != want {
		t.Fatalf("client receives %q, want %q", got, want)
	}
	backendSession, _ := s.Request.Get("mcp-session-id")
	checkClean(t, s)
	s.Destroy()

	answer := adaptertest.Request{Body: `{"jsonrpc":"2.0","id":"mcpgw:15:default/weathern1","result":{"roots":[]}}`,
		Headers: [][2]string{{"mcp-session-id", gw}}}
	s2 := fc.start(answer)
	send(t, s2, answer)
	if got, want := string(s2.Upstream().Body), `{"jsonrpc":"2.0","id":1,"result":{"roots":[]}}`; got != want {
		t.Errorf("answer upstream %s, want %s", got, want)
	}
	if got, _ := s2.Request.Get("mcp-session-id"); got != backendSession || got == gw {
		t.Errorf("answer sent with session %q, want the call's backend session %q", got, backendSession)
	}
	checkClean(t, s2)
	s2.Destroy()
}

// The backend's 404 (it lost our session) leaves the response running while
// a goroutine replays the call on a new session; Envoy buffers the 404's
// body meanwhile, and the answer replaces the response.
func TestBackend404ReplaysCall(t *testing.T) {
	env := adaptertest.NewEnv(t)
	fc := newFilterConfig(t, env.Path)
	r := callRequest(env, 1)
	gw := r.Headers[0][1]
	s := fc.start(r)
	defer checkClean(t, s)
	defer s.Destroy()
	send(t, s, r)
	s.Response.Add(":status", "404")
	s.Details = "via_upstream"
	if st := s.EncodeHeaders(false); st != api.Running {
		t.Fatalf("EncodeHeaders = %d, want Running while the call is replayed", st)
	}
	if st := s.EncodeData([]byte("session not found"), true); st != fakeapi.NotCalled {
		t.Errorf("EncodeData = %d, want the 404's body buffered by Envoy", st)
	}
	if !s.Await(10 * time.Second) {
		t.Fatal("the response was not replaced")
	}
	rp := s.Replies()
	if len(rp) != 1 || !rp[0].FromEncoder || rp[0].Status != 200 || rp[0].Details != "mcpgw_replayed" {
		t.Fatalf("replies %+v, want the replayed answer from the encoder", rp)
	}
	if ct, sid := rp[0].Headers["content-type"], rp[0].Headers["mcp-session-id"]; len(ct) != 1 || ct[0] != "text/event-stream" ||
		len(sid) != 1 || sid[0] != gw {
		t.Errorf("answer headers %v, want SSE and the gateway session", rp[0].Headers)
	}
	data := rp[0].Body[strings.Index(rp[0].Body, "data: ")+6:]
	if gjson.Get(data, "id").Int() != 1 || gjson.Get(data, "result.content.0.text").Str != "sunny" {
		t.Errorf("answer %s, want the tool's result for id 1", rp[0].Body)
	}
	if s.Downstream().HeadersSent {
		t.Error("the 404 reached the client")
	}
	s.Destroy() // counters are exported when a stream ends
	for name, want := range map[string]uint64{"mcpgw.replays": 1, "mcpgw.replays_succeeded": 1, "mcpgw.sessions_lost": 1} {
		if got := fc.counter(t, name); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
}

// The client goes away while its call is being replayed: the goroutine
// releases the Stream and calls nothing on the destroyed stream.
func TestStreamDestroyedWhileReplaying(t *testing.T) {
	env := adaptertest.NewEnv(t)
	var armed atomic.Bool
	blocked, done := make(chan struct{}, 1), make(chan struct{})
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if armed.Load() && gjson.GetBytes(body, "method").Str == "tools/call" {
			blocked <- struct{}{}
			<-r.Context().Done() // until the replay is abandoned
			close(done)
			return
		}
		env.Backend.Config.Handler.ServeHTTP(w, r)
	}))
	defer front.Close()
	entry := env.Backend.Entry()
	entry.URL = front.URL + "/mcp"
	fc := newFilterConfig(t, adaptertest.WriteConfig(t, t.TempDir(), entry))
	r := callRequest(env, 1)
	s := fc.start(r)
	defer checkClean(t, s)
	send(t, s, r) // opens the session
	armed.Store(true)
	s.Response.Add(":status", "404")
	s.Details = "via_upstream"
	if st := s.EncodeHeaders(true); st != api.Running {
		t.Fatalf("EncodeHeaders = %d, want Running", st)
	}
	<-blocked
	s.Destroy() // the client went away during the replay
	<-done      // the replay's request was cancelled
	if len(s.Replies()) != 0 || s.Downstream().HeadersSent {
		t.Errorf("a destroyed stream moved: %+v", s.Replies())
	}
	if res := fc.Do(t, adaptertest.Request{Body: `{"jsonrpc":"2.0","id":1,"method":"ping"}`}); !res.Continued {
		t.Error("stream after an abandoned replay did not continue")
	}
}
