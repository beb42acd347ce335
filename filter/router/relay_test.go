package router

import (
	"bytes"
	"strconv"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/mcpgw/mcpgw/internal/testenv"
)

func TestRelayIDRoundTrip(t *testing.T) {
	for _, tc := range []struct{ server, raw string }{
		{"default/weather", `1`},
		{"default/weather", `-12.5e3`},
		{"a", `"abc"`},
		{"team/ü:x", `"with \"quotes\", \\ and \u00e9"`},
		{`odd"name\`, `"7"`},
		{"s", `""`},
	} {
		enc := appendRelayID(nil, tc.server, []byte(tc.raw))
		id := gjson.ParseBytes(enc)
		if !gjson.ValidBytes(enc) || id.Type != gjson.String {
			t.Fatalf("relay id %s of %s is not a JSON string", enc, tc.raw)
		}
		server, kind, original, ok := parseRelayID(id.Str)
		if !ok || server != tc.server {
			t.Fatalf("parseRelayID(%q) = %q, %v; want server %q", id.Str, server, ok, tc.server)
		}
		back := appendOriginalID(nil, kind, original)
		// The same JSON value, possibly spelled with other escapes.
		if got, want := gjson.ParseBytes(back), gjson.Parse(tc.raw); got.Type != want.Type || got.Value() != want.Value() {
			t.Errorf("round trip of %s via %s: %s", tc.raw, enc, back)
		}
	}
	for _, bad := range []string{"", "1", "mcpgw:", "mcpgw:x:an1", "mcpgw:0:n1", "mcpgw:5:abcn1",
		"mcpgw:1:ax1", "mcpgw:1:an", "mcpgw:1:an1x", "mcpgw:1:an01", "mcpgw:99999:an1", "mcpgw:-1:an1",
		// One spelling per id: the length as appendRelayID writes it, and a
		// server name a config can hold (valid UTF-8).
		"mcpgw:+1:an1", "mcpgw:01:an1", "mcpgw: 1:an1", "mcpgw:1 :an1", "mcpgw:1:\xffn1"} {
		if _, _, _, ok := parseRelayID(bad); ok {
			t.Errorf("parseRelayID(%q) accepted", bad)
		}
	}
}

// sse is one SSE event carrying msg, as go-sdk writes them.
func sse(eventID, msg string) string {
	return "event: message\nid: " + eventID + "\ndata: " + msg + "\n\n"
}

// weatherSession returns a router and a gateway session that has a backend
// session ("bs-weather") with default/weather.
func weatherSession(t testing.TB) (*Router, string) {
	r := newTestRouter(t, "router.yaml")
	gw := codec(t).Mint("")
	r.Sessions().Put(gw, "default/weather", "bs-weather")
	return r, gw
}

// routedCall starts a routed tools/call of name in gateway session gw whose
// response is an SSE stream.
func routedCall(t *testing.T, r *Router, gw, name string) *Stream {
	t.Helper()
	body := []byte(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"` + name + `"}}`)
	s := r.NewStream()
	s.RequestHeaders(post(gw, body))
	if a := s.RequestBody(body); a != Route {
		t.Fatalf("call %s: %s", name, actions[a])
	}
	if s.ResponseHeaders(200, true) != ResponseContinue || !s.WatchResponseBody("text/event-stream") {
		t.Fatal("SSE response of a routed call not watched")
	}
	return s
}

// passBody feeds chunks through ResponseBody as an adapter would and returns
// what the client receives.
func passBody(s *Stream, chunks ...string) string {
	var b strings.Builder
	for i, c := range chunks {
		out, replace := s.ResponseBody([]byte(c), i == len(chunks)-1)
		if replace {
			b.Write(out)
		} else {
			b.WriteString(c)
		}
	}
	return b.String()
}

// answerRoute sends a client's answer and returns the action, the headers
// written and the body that goes upstream.
func answerRoute(t *testing.T, r *Router, gw, answer string) (Action, recorder, string) {
	t.Helper()
	s := r.NewStream()
	defer s.Release()
	s.RequestHeaders(post(gw, []byte(answer)))
	a := s.RequestBody([]byte(answer))
	var w recorder
	s.ApplyRequest(&w)
	body := answer
	if nb := s.NewBody(); nb != nil {
		body = string(nb)
	}
	return a, w, body
}

// Two backends ask the same client a question with the same id (every
// go-sdk server numbers its requests from 1) during concurrent calls: each
// answer reaches the backend that asked, with its original id.
func TestRelayedRequestsAnsweredByTheirBackends(t *testing.T) {
	r, gw := weatherSession(t)
	r.Sessions().Put(gw, "default/github", "bs-github")
	weather, github := routedCall(t, r, gw, "weather_x"), routedCall(t, r, gw, "gh_y")
	defer weather.Release()
	defer github.Release()

	ask := `{"jsonrpc":"2.0","id":1,"method":"elicitation/create","params":{"message":"name?"}}`
	progress := `{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"p","progress":1}}`
	got := map[string]string{}
	for name, s := range map[string]*Stream{"weather": weather, "github": github} {
		got[name] = passBody(s, sse("1", progress)+sse("2", ask))
	}
	idOf := func(stream string) gjson.Result {
		data := stream[strings.LastIndex(stream, "data: ")+6:]
		return gjson.Get(data, "id")
	}
	wID, gID := idOf(got["weather"]), idOf(got["github"])
	if wID.Type != gjson.String || gID.Type != gjson.String || wID.Str == gID.Str {
		t.Fatalf("request ids not rewritten apart: %s / %s", wID.Raw, gID.Raw)
	}
	// The SSE event ids are the gateway's too (for resumption).
	weatherEvent := func(id string) string { return "mcpgw:15:default/weathere" + id }
	if want := sse(weatherEvent("1"), progress) + sse(weatherEvent("2"), strings.Replace(ask, `"id":1`, `"id":`+wID.Raw, 1)); got["weather"] != want {
		t.Errorf("weather stream:\n%q\nwant\n%q", got["weather"], want)
	}

	for _, tc := range []struct {
		id              gjson.Result
		server, backend string
	}{{wID, "default/weather", "bs-weather"}, {gID, "default/github", "bs-github"}} {
		answer := `{"jsonrpc":"2.0","id":` + tc.id.Raw + `,"result":{"action":"accept","content":{"name":"x"}}}`
		a, w, body := answerRoute(t, r, gw, answer)
		if a != Route {
			t.Fatalf("answer %s: %s, want route", tc.id.Raw, actions[a])
		}
		for name, want := range map[string]string{"x-mcp-servername": tc.server, "mcp-session-id": tc.backend, "x-mcp-toolname": ""} {
			if v, _ := w.get(name); v != want {
				t.Errorf("answer %s: %s = %q, want %q", tc.id.Raw, name, v, want)
			}
		}
		want := `{"jsonrpc":"2.0","id":1,"result":{"action":"accept","content":{"name":"x"}}}`
		if body != want {
			t.Errorf("answer body upstream %s, want %s", body, want)
		}
		if cl, _ := w.get("content-length"); cl != strconv.Itoa(len(want)) {
			t.Errorf("content-length %q for the restored body", cl)
		}
	}
	if n := r.Metrics.RequestsRelayed.Load(); n != 2 {
		t.Errorf("RequestsRelayed = %d, want 2", n)
	}
	if n := r.Metrics.AnswersRouted.Load(); n != 2 {
		t.Errorf("AnswersRouted = %d, want 2", n)
	}

	// The broker's own requests keep their ids: their answers go to it.
	if a, _, _ := answerRoute(t, r, gw, `{"jsonrpc":"2.0","id":1,"result":{}}`); a != Forward {
		t.Errorf("plain answer: %s, want forward to the broker", actions[a])
	}
	// Another gateway session replaying the relay id reaches only its own
	// backend session; with none for that server, the broker.
	other := codec(t).Mint("")
	r.Sessions().Put(other, "default/weather", "bs-other")
	a, w, _ := answerRoute(t, r, other, `{"jsonrpc":"2.0","id":`+wID.Raw+`,"result":{}}`)
	if v, _ := w.get("mcp-session-id"); a != Route || v != "bs-other" {
		t.Errorf("replayed in another session: %s to %q, want its own backend session", actions[a], v)
	}
	if a, _, _ := answerRoute(t, r, other, `{"jsonrpc":"2.0","id":`+gID.Raw+`,"result":{}}`); a != Forward {
		t.Errorf("no backend session for the named server: %s, want forward", actions[a])
	}
	// A forged gateway session id gets nothing routed.
	if a, _, _ := answerRoute(t, r, "forged", `{"jsonrpc":"2.0","id":`+wID.Raw+`,"result":{}}`); a != Forward {
		t.Errorf("forged session: %s, want forward (the broker answers 404)", actions[a])
	}
}

// Whatever the chunking, the client receives the same rewritten stream; a
// chunk ending inside an event is held back until the event is complete.
func TestResponseBodyChunking(t *testing.T) {
	r, gw := weatherSession(t)
	stream := sse("1", `{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}`) +
		": keep-alive comment\n\n" +
		"event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"q\\\"1\",\"method\":\"roots/list\"}\r\n\r\n" +
		"data: {\"jsonrpc\":\"2.0\",\ndata: \"id\":5,\"method\":\"sampling/createMessage\"}\n\n" + // split message: left alone
		sse("3", `{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"\"method\":\"x\""}]}}`) +
		`data: {"jsonrpc":"2.0","id":9,"method":"ping"}` // no final blank line
	whole := routedCall(t, r, gw, "weather_x")
	want := passBody(whole, stream)
	whole.Release()
	if strings.Count(want, `"mcpgw:`) != 2 || !strings.Contains(want, `"id":"mcpgw:15:default/weathersq\"1"`) ||
		!strings.Contains(want, `"id":"mcpgw:15:default/weathern9"`) || !strings.Contains(want, `"id":5`) || !strings.Contains(want, `"id":7`) {
		t.Fatalf("rewritten stream:\n%s", want)
	}
	for size := 1; size < len(stream); size++ {
		s := routedCall(t, r, gw, "weather_x")
		var chunks []string
		for rest := stream; rest != ""; {
			n := min(size, len(rest))
			chunks, rest = append(chunks, rest[:n]), rest[n:]
		}
		if got := passBody(s, chunks...); got != want {
			t.Fatalf("chunks of %d:\n%q\nwant\n%q", size, got, want)
		}
		s.Release()
	}
}

// message is an SSE event without an id, as go-sdk servers without an
// event store (the default) write them.
func sseNoID(msg string) string { return "event: message\ndata: " + msg + "\n\n" }

// Complete events without requests (or SSE ids) pass as they are, without a copy.
func TestResponseBodyPassesResultsUntouched(t *testing.T) {
	r, gw := weatherSession(t)
	s := routedCall(t, r, gw, "weather_x")
	defer s.Release()
	chunk := []byte(sseNoID(`{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"hi"}]}}`))
	if _, replace := s.ResponseBody(chunk, true); replace {
		t.Error("a result event was copied")
	}
	// Not watched: JSON responses, forwarded requests, stateless calls.
	json := routedCall(t, r, gw, "weather_x")
	defer json.Release()
	if json.WatchResponseBody("application/json") {
		t.Error("JSON response watched")
	}
	if out, replace := json.ResponseBody([]byte(sse("1", `{"jsonrpc":"2.0","id":1,"method":"ping"}`)), true); replace {
		t.Errorf("unwatched response rewritten: %s", out)
	}
}

// An event larger than the body limit is not held back: it passes
// unrewritten, and rewriting resumes after it.
func TestResponseBodyOversizedEvent(t *testing.T) {
	r, gw := weatherSession(t)
	s := routedCall(t, r, gw, "weather_x")
	defer s.Release()
	big := "data: " + `{"jsonrpc":"2.0","id":1,"method":"x","params":"` + strings.Repeat("a", s.t.maxBody) + `"}`
	ask := sse("2", `{"jsonrpc":"2.0","id":2,"method":"roots/list"}`)
	var got bytes.Buffer
	for _, c := range []string{big[:100], big[100:], "\n\n" + ask} {
		out, replace := s.ResponseBody([]byte(c), false)
		if !replace {
			out = []byte(c)
		}
		got.Write(out)
	}
	if !strings.HasPrefix(got.String(), big+"\n\n") {
		t.Errorf("oversized event altered or lost (%d bytes out)", got.Len())
	}
	if !strings.HasSuffix(got.String(), `"id":"mcpgw:15:default/weathern2","method":"roots/list"}`+"\n\n") {
		t.Errorf("no rewrite after the oversized event: %q", got.String()[got.Len()-120:])
	}
}

func TestResponseBodyAllocations(t *testing.T) {
	testenv.SkipUnderRace(t)
	r, gw := weatherSession(t)
	s := routedCall(t, r, gw, "weather_x")
	defer s.Release()
	result := []byte(sse("1", `{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"`+strings.Repeat("x", 1024)+`"}]}}`))
	ask := []byte(sse("2", `{"jsonrpc":"2.0","id":2,"method":"elicitation/create","params":{"message":"?"}}`))
	s.ResponseBody(ask, false) // warm the pooled buffer
	for name, chunk := range map[string][]byte{"result": result, "request": ask, "partial": ask[:20]} {
		if n := testing.AllocsPerRun(100, func() { s.ResponseBody(chunk, false); s.ResponseBody(nil, false) }); n != 0 {
			t.Errorf("%s: %.1f allocs per chunk", name, n)
		}
	}
}

func BenchmarkResponseBody(b *testing.B) {
	r, gw := weatherSession(b)
	body := []byte(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"weather_x"}}`)
	for name, chunk := range map[string][]byte{
		"result1KiB":        []byte(sseNoID(`{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"` + strings.Repeat("x", 1024) + `"}]}}`)),
		"result1KiBEventID": []byte(sse("1", `{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"`+strings.Repeat("x", 1024)+`"}]}}`)),
		"request":           []byte(sse("2", `{"jsonrpc":"2.0","id":2,"method":"elicitation/create","params":{"message":"?"}}`)),
	} {
		b.Run(name, func(b *testing.B) {
			s := r.NewStream()
			defer s.Release()
			s.RequestHeaders(post(gw, body))
			s.RequestBody(body)
			s.WatchResponseBody("text/event-stream")
			b.SetBytes(int64(len(chunk)))
			b.ReportAllocs()
			for b.Loop() {
				s.ResponseBody(chunk, false)
			}
		})
	}
}

// A GET resuming a routed stream (Last-Event-ID: a gateway event id) goes to
// the backend session that served it, with the backend's event id; any
// other GET is the broker's.
func TestStreamResumption(t *testing.T) {
	r, gw := weatherSession(t)
	resume := func(session, lastEventID string) (HeadersAction, recorder) {
		s := r.NewStream()
		defer s.Release()
		ha := s.RequestHeaders(RequestHeaders{Path: "/mcp", Method: "GET", SessionID: session, ProtocolVersion: "2025-11-25",
			LastEventID: lastEventID, EndOfStream: true, ContentLength: -1})
		var w recorder
		if ha == HeadersRoute {
			s.ApplyRequest(&w)
			if s.ResponseHeaders(200, true) != ResponseContinue || !s.WatchResponseBody("text/event-stream") {
				t.Error("resumed stream not watched")
			}
		}
		return ha, w
	}
	ha, w := resume(gw, "mcpgw:15:default/weathere0_7")
	if ha != HeadersRoute {
		t.Fatalf("resume: %s, want route", headersActions[ha])
	}
	for name, want := range map[string]string{"x-mcp-servername": "default/weather", "mcp-session-id": "bs-weather",
		"last-event-id": "0_7", ":authority": "weather.mcp.local"} {
		if v, _ := w.get(name); v != want {
			t.Errorf("%s = %q, want %q", name, v, want)
		}
	}
	for name, tc := range map[string]struct{ session, id string }{
		"broker's own event id":  {gw, "3_1"},
		"request relay id":       {gw, "mcpgw:15:default/weathers0_7"},
		"server without session": {gw, "mcpgw:14:default/githube0_7"},
		"unknown server":         {gw, "mcpgw:4:nonee0_7"},
		"forged session":         {"forged", "mcpgw:15:default/weathere0_7"},
	} {
		if ha, _ := resume(tc.session, tc.id); ha != HeadersContinue {
			t.Errorf("%s: %s, want continue (the broker's)", name, headersActions[ha])
		}
	}
	if n := r.Metrics.StreamsResumed.Load(); n != 1 {
		t.Errorf("StreamsResumed = %d, want 1", n)
	}
}

// A backend's request to the client whose id occurs twice: the router would
// rewrite the first while the client reads the last, here a forged relay id
// naming another server whose answer the client would then send there. The
// event is dropped (and counted); the events around it pass.
func TestAmbiguousBackendRequestDropped(t *testing.T) {
	r, gw := weatherSession(t)
	s := routedCall(t, r, gw, "weather_x")
	defer s.Release()
	progress := `{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"p","progress":1}}`
	for _, forged := range []string{
		`{"jsonrpc":"2.0","id":1,"id":"mcpgw:14:default/githubn5","method":"elicitation/create","params":{"message":"?"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"elicitation/create","Id":"mcpgw:14:default/githubn5"}`,
	} {
		before := r.Metrics.Rejected[RejectAmbiguousResponse].Load()
		got := passBody(s, sse("1", progress)+sse("2", forged)[:40], sse("2", forged)[40:]+sse("3", progress))
		event := func(id string) string { return "mcpgw:15:default/weathere" + id }
		if want := sse(event("1"), progress) + sse(event("3"), progress); got != want {
			t.Errorf("client receives\n%q\nwant\n%q", got, want)
		}
		if n := r.Metrics.Rejected[RejectAmbiguousResponse].Load() - before; n != 1 {
			t.Errorf("ambiguous_response counted %d times, want 1", n)
		}
	}
}
