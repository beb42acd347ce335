package router

import (
	"strings"
	"testing"
)

// statelessPost is post for a stateless-era (2026-07-28) request.
func statelessPost(method, name string, body []byte) RequestHeaders {
	h := post("", body)
	h.ProtocolVersion, h.MCPMethod, h.MCPName = "2026-07-28", method, name
	return h
}

// A task created by a routed call gets a gateway task id naming its server;
// tasks requests with it are routed to that server with the backend's id
// restored, and their answers carry the gateway id again.
func TestTaskIDs(t *testing.T) {
	r := newTestRouter(t, "router.yaml")
	// Without the tasks extension declared no task can come back: the
	// answer passes unwatched (no hold-back, content-length kept).
	plain := []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"weather_slow"}}`)
	p := r.NewStream()
	defer p.Release()
	p.RequestHeaders(statelessPost("tools/call", "weather_slow", plain))
	if a := p.RequestBody(plain); a != Route {
		t.Fatalf("tools/call: %s", actions[a])
	}
	if p.ResponseHeaders(200, true) != ResponseContinue || p.WatchResponseBody("application/json") {
		t.Error("answer to a call that cannot create a task watched")
	}

	call := []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"weather_slow",` +
		`"_meta":{"io.modelcontextprotocol/clientCapabilities":{"extensions":{"io.modelcontextprotocol/tasks":{}}}}}}`)
	s := r.NewStream()
	defer s.Release()
	s.RequestHeaders(statelessPost("tools/call", "weather_slow", call))
	if a := s.RequestBody(call); a != Route {
		t.Fatalf("tools/call: %s", actions[a])
	}
	if s.ResponseHeaders(200, true) != ResponseContinue || !s.WatchResponseBody("application/json") {
		t.Fatal("JSON response of a stateless call not watched")
	}
	var w recorder
	s.ApplyResponse(&w)
	if !strings.Contains(strings.Join(w.ops, "\n"), "remove content-length") {
		t.Errorf("content-length kept on a body that may change length: %q", w.ops)
	}
	created := `{"jsonrpc":"2.0","id":1,"result":{"resultType":"task","taskId":"t\"1","status":"working"}}`
	got := passBody(s, created[:30], created[30:])
	gatewayID := `mcpgw:15:default/weathers` + `t\"1`
	if want := strings.Replace(created, `"taskId":"t\"1"`, `"taskId":"`+gatewayID+`"`, 1); got != want {
		t.Fatalf("client receives %s, want %s", got, want)
	}

	get := func(mcpName, taskID string) (*Stream, Action) {
		body := []byte(`{"jsonrpc":"2.0","id":2,"method":"tasks/get","params":{"taskId":"` + taskID + `"}}`)
		s := r.NewStream()
		t.Cleanup(s.Release)
		if ha := s.RequestHeaders(statelessPost("tasks/get", mcpName, body)); ha != HeadersBuffer {
			t.Fatalf("tasks/get headers: %s", headersActions[ha])
		}
		return s, s.RequestBody(body)
	}
	// Mcp-Name is the decoded task id as the client sent it (unescaped).
	s2, a := get(`mcpgw:15:default/weathers`+`t"1`, gatewayID)
	if a != Route {
		t.Fatalf("tasks/get with a gateway task id: %s (%s)", actions[a], s2.Rejection())
	}
	var w2 recorder
	s2.ApplyRequest(&w2)
	for name, want := range map[string]string{"x-mcp-servername": "default/weather", "mcp-name": `t"1`, "x-mcp-method": "tasks/get"} {
		if v, _ := w2.get(name); v != want {
			t.Errorf("%s = %q, want %q", name, v, want)
		}
	}
	if body, want := string(s2.NewBody()), `{"jsonrpc":"2.0","id":2,"method":"tasks/get","params":{"taskId":"t\"1"}}`; body != want {
		t.Errorf("upstream body %s, want %s", body, want)
	}
	s2.ResponseHeaders(200, true)
	if !s2.WatchResponseBody("text/event-stream") {
		t.Fatal("tasks/get response not watched")
	}
	answer := "event: message\ndata: " + `{"jsonrpc":"2.0","id":2,"result":{"resultType":"complete","taskId":"t\"1","status":"completed"}}` + "\n\n"
	if got := passBody(s2, answer); !strings.Contains(got, `"taskId":"`+gatewayID+`"`) {
		t.Errorf("tasks/get answer not rewritten: %s", got)
	}
	if n := r.Metrics.TasksRouted.Load(); n != 1 {
		t.Errorf("TasksRouted = %d, want 1", n)
	}

	// Mcp-Name must be the body's task id (SEP-2663).
	if s3, a := get("other", gatewayID); a != Reply || s3.Rejection() != RejectHeaderMismatch {
		t.Errorf("Mcp-Name mismatch: %s %s, want a header-mismatch reply", actions[a], s3.Rejection())
	}
	// Another task id (not ours, or naming an unknown server) goes to the
	// broker, which asks the task-capable backends.
	for _, id := range []string{"abc", "mcpgw:3:nons1"} {
		if _, a := get(id, id); a != Forward {
			t.Errorf("task id %q: %s, want forward to the broker", id, actions[a])
		}
	}
}

// A stateless answer whose result.taskId occurs twice: the router would
// rewrite the first, the client keep the last (a forged gateway task id
// naming another server). The answer becomes a JSON-RPC error instead.
func TestAmbiguousTaskAnswerRefused(t *testing.T) {
	r := newTestRouter(t, "router.yaml")
	call := []byte(`{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"weather_slow",` +
		`"_meta":{"io.modelcontextprotocol/clientCapabilities":{"extensions":{"io.modelcontextprotocol/tasks":{}}}}}}`)
	s := r.NewStream()
	defer s.Release()
	s.RequestHeaders(statelessPost("tools/call", "weather_slow", call))
	if a := s.RequestBody(call); a != Route {
		t.Fatalf("tools/call: %s", actions[a])
	}
	if s.ResponseHeaders(200, true) != ResponseContinue || !s.WatchResponseBody("application/json") {
		t.Fatal("JSON response of a stateless call not watched")
	}
	answer := `{"jsonrpc":"2.0","id":9,"result":{"resultType":"task","taskId":"t1","taskId":"mcpgw:14:default/githubst9"}}`
	got := passBody(s, answer[:25], answer[25:])
	want := `{"jsonrpc":"2.0","id":9,"error":{"code":-32603,"message":"` + RejectAmbiguousResponse.Message() + `"}}`
	if got != want {
		t.Errorf("client receives %s, want %s", got, want)
	}
	if n := r.Metrics.Rejected[RejectAmbiguousResponse].Load(); n != 1 {
		t.Errorf("ambiguous_response = %d, want 1", n)
	}
}
