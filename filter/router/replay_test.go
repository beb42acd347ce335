package router

import (
	"slices"
	"strings"
	"testing"
)

// A backend that lost our session (it restarted) answers the call 404
// without running it: the router opens a new session and sends the call
// again, and the client gets the backend's answer as if nothing happened.
func TestBackendSessionLostReplayed(t *testing.T) {
	forBoth(t, func(t *testing.T, jsonResponse bool) {
		b := newBackend(t, jsonResponse)
		r := routerFor(t, 0, map[string]*backend{"echo": b})
		gw := codec(t).Mint("")
		if res := send(t, r, gw, "2025-06-18", call(1, "echo_x", "a")); ran(res.body) != "ran x:a" || res.replayed {
			t.Fatalf("first call: %d %s (replayed %v)", res.status, res.body, res.replayed)
		}
		old, _ := r.Sessions().Get(gw, "echo")
		b.restart()
		res := send(t, r, gw, "2025-06-18", call(2, "echo_x", "b"))
		if res.status != 200 || ran(res.body) != "ran x:b" || !res.replayed {
			t.Fatalf("after restart: %d %s (replayed %v)", res.status, res.body, res.replayed)
		}
		wantType := "text/event-stream"
		if jsonResponse {
			wantType = "application/json"
		}
		if want := []string{"set content-type: " + wantType, "set mcp-session-id: " + gw}; !slices.Equal(res.response.ops, want) {
			t.Errorf("answer headers %q, want %q", res.response.ops, want)
		}
		cur, _ := r.Sessions().Get(gw, "echo")
		if cur == old || cur == "" || b.initCount() != 2 {
			t.Fatalf("no new session stored (%q, was %q; %d inits)", cur, old, b.initCount())
		}
		// The call ran once on each session: the lost one never ran it.
		if calls := b.callSessions(); !slices.Equal(calls, []string{old, cur}) {
			t.Errorf("calls ran on sessions %q, want [%q %q]", calls, old, cur)
		}
		m := &r.Metrics
		if m.SessionsLost.Load() != 1 || m.Replays.Load() != 1 || m.ReplaysSucceeded.Load() != 1 ||
			m.Rejected[RejectBackendSessionLost].Load() != 0 {
			t.Errorf("metrics lost=%d replays=%d succeeded=%d rejected=%d", m.SessionsLost.Load(), m.Replays.Load(),
				m.ReplaysSucceeded.Load(), m.Rejected[RejectBackendSessionLost].Load())
		}
		if res := send(t, r, gw, "2025-06-18", call(3, "echo_x", "c")); ran(res.body) != "ran x:c" || res.replayed {
			t.Fatalf("next call: %d %s (replayed %v)", res.status, res.body, res.replayed)
		}
	})
}

// A 404 on the replay too: the client gets today's retryable error (no
// second replay), and its next call opens a session and runs.
func TestReplayLostAgain(t *testing.T) {
	b := newBackend(t, false)
	r := routerFor(t, 0, map[string]*backend{"echo": b})
	gw := codec(t).Mint("")
	r.Sessions().Put(gw, "echo", "stale")
	b.lose.Store(2) // the call, then its replay
	res := send(t, r, gw, "2025-06-18", call(2, "echo_x", "b"))
	want := `{"jsonrpc":"2.0","id":2,"error":{"code":-32603,"message":"Backend MCP server lost its session; it will be re-initialized on the next call, please retry"}}`
	if res.status != 200 || res.body != want || res.replayed {
		t.Fatalf("lost twice: %d %s", res.status, res.body)
	}
	if _, ok := r.Sessions().Get(gw, "echo"); ok {
		t.Error("the replay's lost session still stored")
	}
	m := &r.Metrics
	if m.SessionsLost.Load() != 2 || m.Replays.Load() != 1 || m.ReplaysSucceeded.Load() != 0 ||
		m.Rejected[RejectBackendSessionLost].Load() != 1 {
		t.Errorf("metrics lost=%d replays=%d succeeded=%d rejected=%d", m.SessionsLost.Load(), m.Replays.Load(),
			m.ReplaysSucceeded.Load(), m.Rejected[RejectBackendSessionLost].Load())
	}
	if calls := b.callSessions(); len(calls) != 0 {
		t.Errorf("the call ran: %q", calls)
	}
	if res := send(t, r, gw, "2025-06-18", call(3, "echo_x", "c")); ran(res.body) != "ran x:c" {
		t.Fatalf("next call: %d %s", res.status, res.body)
	}
}

// A replayed answer gets the rewriting of any routed answer: the SSE event
// ids of a backend with an event store become gateway event ids, which
// lead a resuming GET to the new backend session.
func TestReplayRewritesAnswer(t *testing.T) {
	b := newBackend(t, false)
	b.events = true
	b.restart()
	r := routerFor(t, 0, map[string]*backend{"echo": b})
	gw := codec(t).Mint("")
	r.Sessions().Put(gw, "echo", "stale")
	res := send(t, r, gw, "2025-06-18", call(2, "echo_x", "b"))
	if !res.replayed || ran(res.body) != "ran x:b" {
		t.Fatalf("replay: %d %s", res.status, res.body)
	}
	ids := 0
	for line := range strings.Lines(res.body) {
		if id, ok := strings.CutPrefix(line, "id: "); ok {
			ids++
			if !strings.HasPrefix(id, "mcpgw:4:echoe") {
				t.Errorf("event id %q is the backend's, not a gateway event id", id)
			}
		}
	}
	if ids == 0 {
		t.Fatalf("no event ids in the answer (event store not used?): %q", res.body)
	}
}

// A backend that asks the client something during the replayed call would
// wait for an answer the client cannot give before it sees the question
// (the answer is sent whole): the replay is abandoned with the retryable
// error, and the retry streams as usual on the new session.
func TestReplayAsksClient(t *testing.T) {
	b := newBackend(t, false)
	r := routerFor(t, 0, map[string]*backend{"echo": b})
	gw := codec(t).Mint("")
	r.Sessions().setClient(gw, `{"elicitation":{}}`, "2025-06-18")
	r.Sessions().Put(gw, "echo", "stale")
	res := send(t, r, gw, "2025-06-18", call(2, "echo_ask", ""))
	if res.replayed || !strings.Contains(res.body, "please retry") {
		t.Fatalf("replay that asks the client: %d %s (replayed %v)", res.status, res.body, res.replayed)
	}
	if cur, ok := r.Sessions().Get(gw, "echo"); !ok || cur == "stale" {
		t.Errorf("the new session is not kept for the retry: %q", cur)
	}
	if r.Metrics.Replays.Load() != 1 || r.Metrics.ReplaysSucceeded.Load() != 0 {
		t.Errorf("replays=%d succeeded=%d", r.Metrics.Replays.Load(), r.Metrics.ReplaysSucceeded.Load())
	}
}

// What belongs to the lost session is not replayed: a client's answer to
// the backend's request, routed by its relay id, gets the retryable error.
func TestAnswerToLostSessionNotReplayed(t *testing.T) {
	r, gw := weatherSession(t)
	answer := []byte(`{"jsonrpc":"2.0","id":"mcpgw:15:default/weathern1","result":{}}`)
	s := r.NewStream()
	defer s.Release()
	s.RequestHeaders(post(gw, answer))
	if a := s.RequestBody(answer); a != Route {
		t.Fatalf("answer: %s", actions[a])
	}
	if got := s.ResponseHeaders(404, true); got != ResponseReply {
		t.Fatalf("404 on a routed answer: %s, want reply", responseAction[got])
	}
	checkReply(t, s, `"mcpgw:15:default/weathern1"`)
	if _, ok := r.Sessions().Get(gw, "default/weather"); ok {
		t.Error("lost session still stored")
	}
}

// The body copy kept for a replay is returned as soon as the response
// shows no replay is needed, not held for the life of a long SSE answer.
func TestReplayCopyReleasedOnAnswer(t *testing.T) {
	r, gw := weatherSession(t)
	body := []byte(`{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"now"}}`) // no rewrite
	s := r.NewStream()
	defer s.Release()
	s.RequestHeaders(post(gw, body))
	if a := s.RequestBody(body); a != Route || s.NewBody() != nil {
		t.Fatalf("prompts/get: %s (new body %q)", actions[a], s.NewBody())
	}
	if string(s.sentBody()) != string(body) {
		t.Fatalf("kept %q for a replay, want the request body", s.sentBody())
	}
	if s.ResponseHeaders(200, true) != ResponseContinue || s.replayBody != nil {
		t.Error("the copy kept for a replay outlives an answer that needs none")
	}
}
