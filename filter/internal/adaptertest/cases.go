package adaptertest

import "maps"

// Cases returns the table for env: requests forwarded to the broker, local
// replies, then calls routed to env's backend, the last ones meeting a lost
// backend session.
func Cases(env *Env) []Case {
	gw := env.Codec.Mint("")
	cases := forwardCases(env, gw)
	cases = append(cases, replyCases(gw)...)
	cases = append(cases, routeCases(env, gw)...)
	return append(cases, lostSessionCases(env, gw)...)
}

const list = `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`

func call(id, name string) string {
	return `{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":{"name":"` + name + `"}}`
}

func reply(status int, code int64, id, reason string) Want {
	return Want{Reply: &WantReply{Status: status, Code: code, ID: id, Details: "mcpgw_" + reason}}
}

func forwardCases(env *Env, gw string) []Case {
	session := [2]string{"mcp-session-id", gw}
	return []Case{
		{"forward/spoofed internal headers removed", Request{Body: list, Headers: [][2]string{session,
			{"x-mcp-servername", "evil"}, {"X-MCP-Toolname", "evil"},
			{"x-mcp-upstream-host", "169.254.169.254:80"}, {"x-mcp-method", "tools/call"}}},
			Want{Continued: true, RouteCacheClears: 1, Headers: map[string]string{"x-mcp-method": "tools/list",
				"x-mcp-servername": "", "x-mcp-toolname": "", "x-mcp-upstream-host": "", "mcp-session-id": gw}}},
		{"forward/no internal headers, no route clear", Request{Body: `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`},
			Want{Continued: true, Headers: map[string]string{"x-mcp-method": "initialize"}}},
		{"forward/batch where allowed", Request{Body: `[` + list + `]`,
			Headers: [][2]string{{"mcp-protocol-version", "2025-03-26"}}},
			Want{Continued: true, Headers: map[string]string{"x-mcp-method": ""}}},
		{"forward/response to a server request", Request{Body: `{"jsonrpc":"2.0","id":"s1","result":{}}`},
			Want{Continued: true, Headers: map[string]string{"x-mcp-method": ""}}},
		{"no body/GET", Request{Method: "GET", Headers: [][2]string{session}},
			Want{Continued: true, Headers: map[string]string{"x-mcp-method": ""}}},
		{"no body/DELETE", Request{Method: "DELETE", Headers: [][2]string{{"mcp-session-id", env.Codec.Mint("")}}},
			Want{Continued: true}},
		{"no body/POST", Request{Headers: [][2]string{session}}, Want{Continued: true}},
		{"no body/spoofed header still removed", Request{Method: "GET", Headers: [][2]string{{"x-mcp-servername", "evil"}}},
			Want{Continued: true, RouteCacheClears: 1, Headers: map[string]string{"x-mcp-servername": ""}}},
		{"forward/loopback Origin allowed", Request{Body: list, Headers: [][2]string{session, {"origin", "http://localhost:6274"}}},
			Want{Continued: true, Headers: map[string]string{"x-mcp-method": "tools/list"}}},
		{"body ending with trailers", Request{Body: `{"jsonrpc":"2.0","id":1,"method":"ping"}`, Trailers: true},
			Want{Continued: true, Headers: map[string]string{"x-mcp-method": "ping"}}},
	}
}

func replyCases(gw string) []Case {
	session := [2]string{"mcp-session-id", gw}
	return []Case{
		// DNS-rebinding protection: refused at request headers, whatever the method.
		{"reply/foreign Origin", Request{Body: list, Headers: [][2]string{session, {"origin", "http://evil.example.com"}}},
			reply(403, -32600, "null", "origin_not_allowed")},
		{"reply/foreign Origin on GET", Request{Method: "GET", Headers: [][2]string{session, {"Origin", "http://evil.example.com"}}},
			reply(403, -32600, "null", "origin_not_allowed")},
		{"reply/malformed JSON", Request{Body: `{"jsonrpc":`}, reply(400, -32700, "null", "parse_error")},
		{"reply/not JSON-RPC", Request{Body: `{"id":1}`}, reply(400, -32600, "null", "invalid_request")},
		{"reply/unknown tool", Request{Body: call("7", "nope_x"), Headers: [][2]string{session}},
			reply(200, -32602, "7", "unknown_tool")},
		{"reply/forged session", Request{Body: call(`"x"`, "weather_now"), Headers: [][2]string{{"mcp-session-id", "forged.session"}}},
			reply(404, -32600, `"x"`, "unknown_session")},
		{"reply/missing session", Request{Body: call("3", "weather_now")}, reply(400, -32600, "3", "missing_session")},
		// The stateless era (2026-07-28): Mcp-Method and Mcp-Name must match the body.
		{"reply/stateless Mcp-Name mismatch", Request{Body: call("10", "weather_now"), Headers: [][2]string{
			{"mcp-protocol-version", "2026-07-28"}, {"mcp-method", "tools/call"}, {"mcp-name", "weather_other"}}},
			reply(400, -32020, "10", "header_mismatch")},
		{"reply/stateless Mcp-Method missing", Request{Body: list, Headers: [][2]string{{"mcp-protocol-version", "2026-07-28"}}},
			reply(400, -32020, "1", "header_mismatch")},
		{"reply/missing name", Request{Body: `{"jsonrpc":"2.0","id":4,"method":"prompts/get","params":{}}`, Headers: [][2]string{session}},
			reply(200, -32602, "4", "missing_name")},
		{"reply/wrong content type", Request{Body: "hello", Headers: [][2]string{{"content-type", "text/plain"}}},
			reply(415, -32600, "null", "unsupported_content_type")},
		{"reply/body too large", Request{Body: list, Headers: [][2]string{{"content-length", "999999999"}}},
			reply(413, -32600, "null", "body_too_large")},
		{"reply/trailers, malformed", Request{Body: "{oops", Trailers: true}, reply(400, -32700, "null", "parse_error")},
		{"reply/backend unavailable", Request{Body: call("5", "dead_now"), Headers: [][2]string{session}},
			reply(200, -32603, "5", "backend_unavailable")},
		// The :path reaches the router: it selects the virtual server.
		{"reply/tool outside the virtual server", Request{Path: "/mcp/" + VirtualServer, Body: call("8", "dead_now"), Headers: [][2]string{session}},
			reply(200, -32602, "8", "not_in_virtual_server")},
		{"reply/unknown virtual server", Request{Path: "/mcp/team-a/nope", Body: call("9", "weather_now"), Headers: [][2]string{session}},
			reply(404, -32600, "9", "unknown_virtual_server")},
	}
}

// routedHeaders are the request headers of a call routed to env's backend.
func routedHeaders(env *Env) map[string]string {
	return map[string]string{
		":authority":          "weather.default.svc",
		":path":               "/mcp",
		"x-mcp-servername":    "default/weather",
		"x-mcp-toolname":      "now",
		"x-mcp-upstream-host": upstreamHost(env.Backend),
		"x-mcp-method":        "tools/call",
		"mcp-session-id":      AnyBackendSession,
	}
}

// routeCases run in order: the first opens the backend session, the next
// ones reuse it.
func routeCases(env *Env, gw string) []Case {
	session := [2]string{"mcp-session-id", gw}
	routed := routedHeaders(env)
	stateless := maps.Clone(routed)
	stateless["mcp-session-id"] = ""
	stateless["mcp-name"] = "now"
	call := func(id int, trailers bool, resp *Response) Request {
		return Request{Body: ToolCall(id, "weather_now"), Headers: [][2]string{session}, Trailers: trailers, Response: resp}
	}
	first := call(2, false, &Response{Status: 200, Details: "via_upstream", SessionID: AnyBackendSession})
	first.Headers = append(first.Headers, [2]string{"x-mcp-toolname", "spoofed"})
	return []Case{
		{"route/first call opens the backend session", first,
			Want{Continued: true, Headers: routed, Body: ToolCall(2, "now"), RouteCacheClears: 2, ResponseSessionID: gw}},
		// The stateless era: no gateway session, no backend session;
		// Mcp-Name follows the unprefixed body.
		{"route/stateless era needs no session", Request{Body: ToolCall(11, "weather_now"), Headers: [][2]string{
			{"mcp-protocol-version", "2026-07-28"}, {"mcp-method", "tools/call"}, {"mcp-name", "weather_now"}},
			Response: &Response{Status: 200, Details: "via_upstream"}},
			Want{Continued: true, Headers: stateless, Body: ToolCall(11, "now"), RouteCacheClears: 1}},
		// Its tool under the backend's own name (here an alias): routed on
		// Mcp-Method/Mcp-Name alone, the body streams through unread.
		{"route/stateless call on its headers alone", Request{Body: ToolCall(12, "now"), Headers: [][2]string{
			{"mcp-protocol-version", "2026-07-28"}, {"mcp-method", "tools/call"}, {"mcp-name", "now"}},
			Response: &Response{Status: 200, Details: "via_upstream"}},
			Want{Continued: true, Headers: stateless, Body: ToolCall(12, "now"), RouteCacheClears: 1}},
		// No token passthrough: the client's credentials are the gateway's.
		{"route/client credentials stay at the gateway", Request{Body: ToolCall(13, "weather_now"), Headers: [][2]string{
			session, {"authorization", "Bearer client-token"}, {"cookie", "sid=1"}},
			Response: &Response{Status: 200, Details: "via_upstream"}},
			Want{Continued: true, Headers: withAbsent(routed, "authorization", "cookie"), Body: ToolCall(13, "now"),
				RouteCacheClears: 1, ResponseSessionID: gw}},
		{"route/next call reuses it", call(3, false, &Response{Status: 200, Details: "via_upstream"}),
			Want{Continued: true, Headers: routed, Body: ToolCall(3, "now"), RouteCacheClears: 1, ResponseSessionID: gw}},
		{"route/through the virtual server", Request{Path: "/mcp/" + VirtualServer + "?x=1", Body: ToolCall(7, "weather_now"),
			Headers: [][2]string{session}, Response: &Response{Status: 200, Details: "via_upstream"}},
			Want{Continued: true, Headers: routed, Body: ToolCall(7, "now"), RouteCacheClears: 1, ResponseSessionID: gw}},
		{"route/trailers", call(4, true, nil),
			Want{Continued: true, Headers: routed, Body: ToolCall(4, "now"), RouteCacheClears: 1}},
		{"route/Envoy's own 404 passes", call(5, false, &Response{Status: 404, Details: "route_not_found"}),
			Want{Continued: true, Headers: routed, Body: ToolCall(5, "now"), RouteCacheClears: 1, ResponseSessionID: gw}},
	}
}

// lostSessionCases run last: the backend loses the session they use.
func lostSessionCases(env *Env, gw string) []Case {
	routed := routedHeaders(env)
	call := func(id int, resp *Response) Request {
		return Request{Body: ToolCall(id, "weather_now"), Headers: [][2]string{{"mcp-session-id", gw}}, Response: resp}
	}
	lostTwice := call(8, &Response{Status: 404, Details: "via_upstream", NoBody: true})
	lostTwice.Before = func() { env.Backend.LoseCalls.Store(1) } // the replay meets a lost session too
	return []Case{
		// The backend lost the session (it restarted): the router opens a
		// new one and replays the call, and the client gets the answer.
		{"route/backend 404 replays the call on a new session", call(6, &Response{Status: 404, Details: "via_upstream"}),
			Want{Continued: true, Headers: routed, Body: ToolCall(6, "now"), RouteCacheClears: 1, NewBackendSession: true,
				Reply: &WantReply{Status: 200, ID: "6", Text: "sunny", ContentType: "text/event-stream",
					Details: "mcpgw_replayed", SessionID: gw}}},
		// Lost again on the replay (the new session too): the retryable
		// error, no second replay. (This 404 has no body: the headers end
		// the response.)
		{"route/404 on the replay gives the retryable error", lostTwice,
			Want{Continued: true, Headers: routed, Body: ToolCall(8, "now"), RouteCacheClears: 1, NewBackendSession: true,
				Reply: &WantReply{Status: 200, Code: -32603, ID: "8", Details: "mcpgw_backend_session_lost"}}},
	}
}

// withAbsent returns headers plus the names that must be absent.
func withAbsent(headers map[string]string, names ...string) map[string]string {
	out := maps.Clone(headers)
	for _, n := range names {
		out[n] = ""
	}
	return out
}
