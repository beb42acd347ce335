package router

import (
	"regexp"
	"strings"
	"testing"
)

// FuzzResponseBody drives arbitrary response bodies of routed calls through
// the response rewriter (sse.go), in three shapes: a session-era SSE stream
// (relay ids for the backend's requests, gateway event ids), and a
// stateless-era answer that may carry a task id, as one JSON body or as an
// SSE stream. For every body and every way of cutting it into chunks (as
// Envoy delivers them, empty ones included) it checks that
//
//   - the client receives the same bytes whatever the chunking;
//   - those bytes are the backend's with ids replaced by gateway ids that
//     name the server and carry the backend's id unchanged (undoing the
//     rewrites gives back the body), so no other byte is ever altered —
//     unless a message was ambiguous, which is never passed on.
//
// go test ./filter/router -run '^$' -fuzz '^FuzzResponseBody$' -fuzztime 60s
func FuzzResponseBody(f *testing.F) {
	for _, s := range []string{
		sse("1", `{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}`),
		": keep-alive\n\nevent: message\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"q\\\"1\",\"method\":\"roots/list\"}\r\n\r\n",
		"data: {\"jsonrpc\":\"2.0\",\ndata: \"id\":5,\"method\":\"sampling/createMessage\"}\n\n",
		sse("3", `{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"\"method\":\"x\""}]}}`),
		`data: {"jsonrpc":"2.0","id":9,"method":"ping"}`,
		sse("", `{"jsonrpc":"2.0","id":-1.5e3,"method":"elicitation/create","params":{}}`) + "id: 4\ndata: {}\n\n",
		`{"jsonrpc":"2.0","id":1,"result":{"resultType":"task","taskId":"t\"1","status":"working"}}`,
		"data: " + `{"jsonrpc":"2.0","id":1,"result":{"taskId":"abc"}}` + "\n\n",
		`{"jsonrpc":"2.0","id":1,"result":{"taskId":"a","taskId":"b"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"x","result":{"taskId":"a"}}`,
	} {
		for mode := range uint8(3) {
			f.Add([]byte(s), []byte{7, 0, 31, 2}, mode)
		}
	}
	r, c := fuzzRouter(f)
	gw := codec(f).Mint("")
	for _, srv := range c.Servers {
		r.Sessions().Put(gw, srv.Name, "b-"+srv.Name)
	}
	f.Fuzz(func(t *testing.T, body, cuts []byte, mode uint8) {
		mode %= 3
		ambiguous := r.Metrics.Rejected[RejectAmbiguousResponse].Load()
		whole := watchedStream(t, r, gw, mode)
		want := passBody(whole, string(body))
		whole.Release()
		// An ambiguous backend message (a member twice, or in another case)
		// is dropped or replaced by an error, not passed on (sse.go).
		ambiguous = r.Metrics.Rejected[RejectAmbiguousResponse].Load() - ambiguous
		chunked := watchedStream(t, r, gw, mode)
		got := passBody(chunked, cut(string(body), cuts)...)
		chunked.Release()
		if got != want {
			t.Fatalf("chunks %v give\n%q\nthe whole body\n%q", cut(string(body), cuts), got, want)
		}
		if ambiguous == 0 && !strings.Contains(string(body), "mcpgw:") {
			if back := undoGatewayIDs(want, mode == 0); back != string(body) {
				t.Fatalf("the client receives\n%q\nwhich is not the backend's\n%q\nwith gateway ids", want, body)
			}
		}
	})
}

// watchedStream starts a routed call to default/weather whose response body
// is watched: mode 0 a session-era call answered with SSE, 1 a stateless
// call that declares the tasks extension answered with JSON, 2 the same
// answered with SSE.
func watchedStream(t *testing.T, r *Router, gw string, mode uint8) *Stream {
	t.Helper()
	if mode == 0 {
		return routedCall(t, r, gw, "weather_x")
	}
	body := []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"weather_x",` +
		`"_meta":{"io.modelcontextprotocol/clientCapabilities":{"extensions":{"` + tasksExtension + `":{}}}}}}`)
	s := r.NewStream()
	s.RequestHeaders(statelessPost("tools/call", "weather_x", body))
	if a := s.RequestBody(body); a != Route {
		t.Fatalf("stateless call: %s", actions[a])
	}
	ct := "application/json"
	if mode == 2 {
		ct = "text/event-stream"
	}
	if s.ResponseHeaders(200, true) != ResponseContinue || !s.WatchResponseBody(ct) {
		t.Fatalf("%s answer of a stateless call not watched", ct)
	}
	return s
}

// cut splits s into chunks whose sizes are cuts (mod 33: empty chunks
// happen), the rest going into the last.
func cut(s string, cuts []byte) []string {
	var chunks []string
	for _, c := range cuts {
		n := min(int(c)%33, len(s))
		chunks, s = append(chunks, s[:n]), s[n:]
	}
	return append(chunks, s)
}

// The gateway ids default/weather's events and messages get (relay.go,
// sse.go), written as the rewriter writes them.
var (
	numericRelayID = regexp.MustCompile(`"mcpgw:15:default/weathern([-+.0-9eE]*)"`)
	stringRelayID  = regexp.MustCompile(`"mcpgw:15:default/weathers`)
	eventID        = regexp.MustCompile(`mcpgw:15:default/weathere`)
)

// undoGatewayIDs replaces each gateway id by the backend's id it carries.
func undoGatewayIDs(s string, sessionEra bool) string {
	s = stringRelayID.ReplaceAllLiteralString(s, `"`)
	if !sessionEra {
		return s // only task ids, which are strings
	}
	s = numericRelayID.ReplaceAllString(s, "$1")
	return eventID.ReplaceAllLiteralString(s, "")
}
