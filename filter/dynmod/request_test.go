package dynmod_test

import (
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/mcpgw/mcpgw/filter/dynmod/internal/fakehost"
)

func TestProgramInit(t *testing.T) {
	if v := fakehost.ProgramInit(); v != "v0.1.0" {
		t.Fatalf("on_program_init = %q, want v0.1.0 (the fake host, like Envoy 1.39, has no log_v2)", v)
	}
}

func TestForwardToBroker(t *testing.T) {
	g := newGateway(t, server{name: "a", url: "http://a.svc/mcp", hostname: "a.svc", prefix: "a_"})
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`
	s, st := g.post(request{session: g.codec.Mint(""), body: body, headers: map[string]string{
		"x-mcp-servername":    "evil",
		"X-MCP-Toolname":      "evil",
		"x-mcp-upstream-host": "169.254.169.254:80",
		"x-mcp-method":        "tools/call",
	}})
	if st != fakehost.Continue {
		t.Fatalf("body status = %d, want Continue", st)
	}
	for _, h := range []string{"x-mcp-servername", "x-mcp-toolname", "x-mcp-upstream-host"} {
		if v, ok := s.Request.Lookup(h); ok {
			t.Errorf("client-supplied %s survived: %q", h, v)
		}
	}
	if got := s.Request.Values("x-mcp-method"); len(got) != 1 || got[0] != "tools/list" {
		t.Errorf("x-mcp-method = %q, want [tools/list]", got)
	}
	if s.RouteCacheClears != 1 {
		t.Errorf("route cache cleared %d times, want 1 (internal headers were removed)", s.RouteCacheClears)
	}
	if s.Body() != body {
		t.Errorf("body changed: %q", s.Body())
	}
	if len(s.Replies) != 0 {
		t.Errorf("unexpected local reply %+v", s.Replies)
	}
	s.Destroy()
	if n := counter(t, g.cfg, "mcpgw.forwarded"); n != 1 {
		t.Errorf("mcpgw.forwarded = %d, want 1", n)
	}
}

func TestNoInternalHeadersNoRouteClear(t *testing.T) {
	g := newGateway(t)
	s, st := g.post(request{body: `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`})
	if st != fakehost.Continue || s.RouteCacheClears != 0 {
		t.Fatalf("status %d, route clears %d; want Continue and no clear", st, s.RouteCacheClears)
	}
}

func TestRequestWithoutBodyPassesThrough(t *testing.T) {
	g := newGateway(t)
	for _, m := range []string{"GET", "DELETE", "POST"} {
		s, st := g.start(g.cfg, request{method: m, session: g.codec.Mint("")})
		if st != fakehost.Continue {
			t.Errorf("%s without body: headers status %d, want Continue (a stop would hang it)", m, st)
		}
		if len(s.Replies) != 0 {
			t.Errorf("%s: unexpected reply %+v", m, s.Replies)
		}
	}
}

func TestLocalReplies(t *testing.T) {
	g := newGateway(t, server{name: "a", url: "http://a.svc/mcp", hostname: "a.svc", prefix: "a_"})
	call := func(id, name string) string {
		return `{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":{"name":"` + name + `"}}`
	}
	tests := []struct {
		name    string
		req     request
		status  int
		code    int64
		id      string
		details string
	}{
		{"malformed JSON", request{body: `{"jsonrpc":`}, 400, -32700, "null", "mcpgw_parse_error"},
		{"unknown tool", request{session: g.codec.Mint(""), body: call("7", "nope_x")}, 200, -32602, "7", "mcpgw_unknown_tool"},
		{"forged session", request{session: "forged.session", body: call(`"x"`, "a_t")}, 404, -32600, `"x"`, "mcpgw_unknown_session"},
		{"missing session", request{body: call("3", "a_t")}, 400, -32600, "3", "mcpgw_missing_session"},
		{"not JSON-RPC", request{body: `{"id":1}`}, 400, -32600, "null", "mcpgw_invalid_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, st := g.post(tc.req)
			if st != fakehost.StopIterationNoBuffer {
				t.Errorf("body status = %d, want StopIterationNoBuffer", st)
			}
			r := reply(t, s)
			if r.Status != tc.status || r.Details != tc.details {
				t.Errorf("reply %d %q, want %d %q", r.Status, r.Details, tc.status, tc.details)
			}
			if code := gjson.Get(r.Body, "error.code").Int(); code != tc.code {
				t.Errorf("error code %d, want %d: %s", code, tc.code, r.Body)
			}
			if id := gjson.Get(r.Body, "id").Raw; id != tc.id {
				t.Errorf("id %s, want %s", id, tc.id)
			}
			s.Destroy() // exports the counters
		})
	}
	n := counter(t, g.cfg, "mcpgw.rejected.parse_error")
	if n != 1 {
		t.Errorf("mcpgw.rejected.parse_error = %d, want 1", n)
	}
}

func TestRepliesFromRequestHeaders(t *testing.T) {
	g := newGateway(t)
	for _, tc := range []struct {
		name    string
		headers map[string]string
		status  int
	}{
		{"wrong content type", map[string]string{"content-type": "text/plain"}, 415},
		{"body too large", map[string]string{"content-type": "application/json", "content-length": "999999999"}, 413},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := g.cfg.NewStream()
			defer func() { s.Destroy(); checkViolations(t, s) }()
			s.Request.Add(":method", "POST")
			s.Request.Add(":path", "/mcp")
			for k, v := range tc.headers {
				s.Request.Add(k, v)
			}
			if st := s.RequestHeaders(false); st != fakehost.StopIteration {
				t.Fatalf("headers status %d, want StopIteration with a reply", st)
			}
			if r := reply(t, s); r.Status != tc.status {
				t.Errorf("status %d, want %d", r.Status, tc.status)
			}
		})
	}
}

func TestBodyInChunks(t *testing.T) {
	g := newGateway(t)
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"cursor":"` + strings.Repeat("c", 300) + `"}}`
	for _, tc := range []struct {
		name     string
		chunk    int
		previous bool
	}{{"one chunk", 0, false}, {"many chunks", 7, false}, {"more chunks than the scratch array", 16, false},
		{"received is the buffer", 0, true}, {"received is the buffer, chunked", 5, true}} {
		t.Run(tc.name, func(t *testing.T) {
			s, st := g.start(g.cfg, request{body: body})
			if st != fakehost.StopIteration {
				t.Fatalf("headers status %d", st)
			}
			s.ChunkSize, s.PreviousFilterBuffered = tc.chunk, tc.previous
			// Two data frames: Envoy buffers the first, the router sees both.
			half := len(body) / 2
			if tc.previous {
				half = 0 // the earlier filter delivers the whole body at once
			} else if st := s.RequestBody([]byte(body[:half]), false); st != fakehost.StopIterationAndBuffer {
				t.Fatalf("first chunk: status %d, want StopIterationAndBuffer", st)
			}
			if st := s.RequestBody([]byte(body[half:]), true); st != fakehost.Continue {
				t.Fatalf("last chunk: status %d, want Continue; replies %+v", st, s.Replies)
			}
			if s.Request.Get("x-mcp-method") != "tools/list" {
				t.Errorf("x-mcp-method = %q: the router did not see the whole body", s.Request.Get("x-mcp-method"))
			}
			if s.Body() != body {
				t.Errorf("forwarded body changed:\n got %q\nwant %q", s.Body(), body)
			}
		})
	}
}

func TestBodyEndingWithTrailers(t *testing.T) {
	g := newGateway(t)
	body := `{"jsonrpc":"2.0","id":1,"method":"ping"}`
	s, _ := g.start(g.cfg, request{body: body})
	if st := s.RequestBody([]byte(body), false); st != fakehost.StopIterationAndBuffer {
		t.Fatalf("body status %d", st)
	}
	if st := s.RequestTrailers(); st != fakehost.Continue {
		t.Fatalf("trailers status %d, want Continue", st)
	}
	if s.Request.Get("x-mcp-method") != "ping" {
		t.Errorf("x-mcp-method = %q", s.Request.Get("x-mcp-method"))
	}

	s2, _ := g.start(g.cfg, request{body: "{oops"})
	s2.RequestBody([]byte("{oops"), false)
	if st := s2.RequestTrailers(); st != fakehost.StopIteration {
		t.Fatalf("trailers status %d, want StopIteration after a reply", st)
	}
	if r := reply(t, s2); r.Status != 400 {
		t.Errorf("status %d", r.Status)
	}
}

func TestPanicInHookFailsSafe(t *testing.T) {
	g := newGateway(t)
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`

	s, st := g.start(g.cfg, request{body: body})
	s.PanicOn = "get_body_chunks_size"
	if st != fakehost.StopIteration {
		t.Fatal(st)
	}
	if st := s.RequestBody([]byte(body), true); st != fakehost.StopIterationNoBuffer {
		t.Errorf("body status after panic = %d, want StopIterationNoBuffer", st)
	}
	r := reply(t, s)
	if r.Status != 500 || gjson.Get(r.Body, "error.code").Int() != -32603 {
		t.Errorf("reply %d %s, want 500 -32603", r.Status, r.Body)
	}

	s2 := g.cfg.NewStream()
	s2.PanicOn = "get_header"
	if st := s2.RequestHeaders(false); st != fakehost.StopIteration || len(s2.Replies) != 1 {
		t.Errorf("headers after panic: status %d, replies %d; want StopIteration and a 500", st, len(s2.Replies))
	}
	s2.Destroy()
	if len(fakehost.Logs("panic recovered in Envoy hook")) < 2 {
		t.Error("panics were not logged")
	}
}

func TestBadHandlesDoNotCrash(t *testing.T) {
	g := newGateway(t)
	fakehost.DestroyHandle(12345) // not a config handle: recovered

	s := g.cfg.NewStream()
	real := s.Module()
	s.SetModule(0) // as when filter_new failed
	s.Request.Add(":method", "POST")
	s.Request.Add(":path", "/mcp")
	if st := s.RequestHeaders(false); st != fakehost.Continue {
		t.Errorf("unknown filter: status %d, want Continue", st)
	}
	if st := s.RequestBody([]byte("{"), true); st != fakehost.Continue {
		t.Errorf("unknown filter: body status %d, want Continue", st)
	}
	s.SetModule(real)
	s.Stubs()
	s.Destroy()
}

// A body without Content-Length is counted as it arrives: once past
// gateway.maxRequestBodyBytes the client gets the router's JSON-RPC 413 at
// once, before Envoy's own buffer limit would answer a text/plain one.
func TestChunkedBodyOverLimit(t *testing.T) {
	g := newGateway(t)
	s := g.cfg.NewStream()
	defer func() { s.Destroy(); checkViolations(t, s) }()
	for _, kv := range [][2]string{{":method", "POST"}, {":path", "/mcp"}, {"content-type", "application/json"}} {
		s.Request.Add(kv[0], kv[1])
	}
	if st := s.RequestHeaders(false); st != fakehost.StopIteration {
		t.Fatalf("headers status %d, want StopIteration (buffer)", st)
	}
	chunk := []byte(strings.Repeat(" ", 600<<10))
	if st := s.RequestBody(chunk, false); st != fakehost.StopIterationAndBuffer {
		t.Fatalf("first 600 KiB: status %d, want StopIterationAndBuffer", st)
	}
	if st := s.RequestBody(chunk, false); st != fakehost.StopIterationNoBuffer {
		t.Fatalf("1200 KiB: status %d, want StopIterationNoBuffer with a reply", st)
	}
	if r := reply(t, s); r.Status != 413 || !strings.Contains(r.Body, `"code":-32600`) {
		t.Errorf("reply %d %s, want 413 with a JSON-RPC error", r.Status, r.Body)
	}
	s.Destroy() // counters are flushed when a stream ends
	if n := counter(t, g.cfg, "mcpgw.rejected.body_too_large"); n != 1 {
		t.Errorf("mcpgw.rejected.body_too_large = %d, want 1", n)
	}
}
