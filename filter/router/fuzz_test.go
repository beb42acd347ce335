package router

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tidwall/gjson"

	"github.com/mcpgw/mcpgw/filter/config"
)

// Fuzz targets of the router (`make fuzz` runs each in turn):
//
//	FuzzScanMessage          scan.go against gjson (scan_test.go)
//	FuzzRequestBody          a session-era request, decided and rewritten
//	FuzzStatelessRequestBody a stateless-era (2026-07-28) request
//	FuzzResponseBody         the SSE/JSON response rewriter (fuzz_sse_test.go)
//	FuzzRelayID              relay, event and task ids (fuzz_ids_test.go)
//
// go test ./filter/router -run '^$' -fuzz '^FuzzRequestBody$' -fuzztime 60s

// relaySeeds are answers and cancellations naming relay ids, and tasks
// requests naming gateway task ids: the bodies the router routes with an
// id restored rather than a name stripped.
var relaySeeds = []string{
	`{"jsonrpc":"2.0","id":"mcpgw:15:default/weathern7","result":{}}`,
	`{"jsonrpc":"2.0","id":"mcpgw:15:default/weathersq\"1","error":{"code":-1,"message":"no"}}`,
	`{"jsonrpc":"2.0","id":"mcpgw:14:default/githubs\u0041b","result":{"roots":[]}}`,
	`{"jsonrpc":"2.0","id":"mcpgw:+15:default/weathern7","result":{}}`,
	`{"jsonrpc":"2.0","id":"mcpgw:015:default/weathern7","result":{}}`,
	`{"jsonrpc":"2.0","id":"mcpgw:14:default/alertsn-1.5e3","result":{}}`,
	`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"mcpgw:14:default/alertsn3"}}`,
	`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"mcpgw:16:tools/everythings"}}`,
	`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7,"reason":"x"}}`,
	`{"jsonrpc":"2.0","id":3,"method":"tasks/get","params":{"taskId":"mcpgw:15:default/weatherst-1"}}`,
	`{"jsonrpc":"2.0","id":4,"method":"tasks/cancel","params":{"taskId":"mcpgw:14:default/githubs\"q\""}}`,
	`{"jsonrpc":"2.0","id":5,"method":"tasks/update","params":{"taskId":"plain"}}`,
	`{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"forecast","_meta":{"io.modelcontextprotocol/tasks":{}}}}`,
	`{"jsonrpc":"2.0","id":7,"method":"prompts/get","params":{"name":"gh_review","arguments":{"name":"x"}}}`,
	`{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"greet"}}`,
	`{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"weather_alerts_latest"}}`,
	`{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"weather_alerts_"}}`,
}

// addRequestSeeds adds the request fuzzers' seeds: the scanner's, the
// golden tests' bodies and relaySeeds.
func addRequestSeeds(f *testing.F) {
	addSeeds(f)
	for _, s := range relaySeeds {
		f.Add([]byte(s))
	}
}

// fuzzRouter returns the router of the fuzzers: testdata/router.yaml with
// a 1 MiB body limit (larger than any input, so that no event is too
// large to hold back), and its config.
func fuzzRouter(f *testing.F) (*Router, *config.Config) {
	r := newTestRouter(f, "router.yaml")
	c := loadConfig(f, "router.yaml")
	c.Gateway.MaxRequestBodyBytes = 1 << 20
	if err := r.Apply(c); err != nil {
		f.Fatal(err)
	}
	return r, c
}

// FuzzRequestBody drives arbitrary bodies through a Stream whose client
// holds a backend session with every server, and checks that the router
// never panics and that what it decides agrees with how a backend reads
// the body it forwards (encoding/json: the last duplicate wins, keys match
// ignoring case):
//
//   - Route of a call: the new body is valid JSON with the same id, differs
//     from the original only in params.name's value, which is the name the
//     config gives the tool on the server the headers name (checked against
//     a resolution written from the config, not the router's table), and a
//     backend decodes the method and tool name the routing headers carry.
//   - Route of an answer or cancellation: the relay id is replaced by the
//     original id it carries, nothing else changes, and the request goes to
//     the server the relay id names.
//   - Forward: a backend decodes the method x-mcp-method carries.
//   - Reply: a valid JSON-RPC error that echoes the request's id or null.
func FuzzRequestBody(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"weather_x","name":"secret"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"weather_x","Name":"secret"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/list","METHOD":"tools/call","params":{"name":"weather_x"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"weather_x\r\nx-injected: 1"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"gh_\u0000"}}`,
	} {
		f.Add([]byte(s))
	}
	addRequestSeeds(f)
	r, c := fuzzRouter(f)
	gw := codec(f).Mint("")
	for _, srv := range c.Servers {
		r.Sessions().Put(gw, srv.Name, "b-"+srv.Name)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		orig := string(body) // the router must not modify the host's body
		s := r.NewStream()
		defer s.Release()
		if ha := s.RequestHeaders(post(gw, body)); ha != HeadersBuffer {
			t.Fatalf("headers action %s", headersActions[ha])
		}
		decide(t, s, c, body, false)
		if string(body) != orig {
			t.Fatalf("the request body was modified in place")
		}
	})
}

// FuzzStatelessRequestBody is FuzzRequestBody for the stateless era: no
// session, MCP-Protocol-Version 2026-07-28, and the Mcp-Method and Mcp-Name
// headers a client derives from the body (so that most bodies pass the
// header checks and reach the routing decision). A routed call goes to a
// server declared stateless, with Mcp-Name the backend's name; a tasks
// request with a gateway task id goes to the server it names with the
// backend's task id in the body and in Mcp-Name.
func FuzzStatelessRequestBody(f *testing.F) {
	addRequestSeeds(f)
	r, c := fuzzRouter(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		orig := string(body)
		s := r.NewStream()
		defer s.Release()
		h := post("", body)
		h.ProtocolVersion = statelessVersion
		h.MCPMethod = gjson.GetBytes(body, "method").Str
		h.MCPName = gjson.GetBytes(body, "params.name").Str
		if isTaskMethod(h.MCPMethod) {
			h.MCPName = gjson.GetBytes(body, "params.taskId").Str
		}
		switch ha := s.RequestHeaders(h); ha {
		case HeadersRoute: // on the headers alone: the body is not read
			var w recorder
			s.ApplyRequest(&w)
			srv, bare, ok := resolve(c, h.MCPName)
			if !ok || !srv.Stateless || bare != h.MCPName || s.NewBody() != nil {
				t.Fatalf("routed on headers %q/%q: owner %v %q", h.MCPMethod, h.MCPName, ok, bare)
			}
			checkHeader(t, &w, config.HeaderServerName, srv.Name)
			checkHeader(t, &w, config.HeaderMCPName, h.MCPName)
		case HeadersBuffer:
			decide(t, s, c, body, true)
		default:
			t.Fatalf("headers action %s", headersActions[ha])
		}
		if string(body) != orig {
			t.Fatalf("the request body was modified in place")
		}
	})
}

// decide runs RequestBody and checks the decision (see FuzzRequestBody).
func decide(t *testing.T, s *Stream, c *config.Config, body []byte, stateless bool) {
	t.Helper()
	a := s.RequestBody(body)
	var w recorder
	switch a {
	case Route:
		s.ApplyRequest(&w)
		out := body
		if nb := s.NewBody(); nb != nil {
			out = nb
		}
		if !json.Valid(out) {
			t.Fatalf("routed body is not valid JSON: %q", out)
		}
		checkSameID(t, body, out)
		checkRoutedTo(t, c, body, out, &w, stateless)
		checkBackendReads(t, out, &w, true)
	case Forward:
		s.ApplyRequest(&w)
		checkBackendReads(t, body, &w, false)
	case Reply:
		_, reply := s.Reply()
		var msg struct {
			ID    json.RawMessage `json:"id"`
			Error struct{ Code int }
		}
		if err := json.Unmarshal(reply, &msg); err != nil || msg.Error.Code != s.Rejection().Code() {
			t.Fatalf("reply %s: %v", reply, err)
		}
		if id := string(msg.ID); id != "null" && id != gjson.GetBytes(body, "id").Raw {
			t.Fatalf("reply id %s, request id %s", id, gjson.GetBytes(body, "id").Raw)
		}
	default:
		t.Fatalf("action %s with every backend session stored", actions[a])
	}
}

// checkSameID checks that a routed request keeps its id, as a backend
// decodes it, unless it is an answer (whose relay id is restored).
func checkSameID(t *testing.T, body, out []byte) {
	t.Helper()
	if !gjson.GetBytes(body, "method").Exists() {
		return // an answer: checkRestored
	}
	var in, got struct{ ID json.RawMessage }
	if json.Unmarshal(body, &in) != nil || json.Unmarshal(out, &got) != nil || !bytes.Equal(in.ID, got.ID) {
		t.Fatalf("routed body's id %s, request's %s", got.ID, in.ID)
	}
}

// checkRoutedTo checks where a routed request goes, by its kind.
func checkRoutedTo(t *testing.T, c *config.Config, body, out []byte, w *recorder, stateless bool) {
	t.Helper()
	switch method := gjson.GetBytes(body, "method"); {
	case !method.Exists():
		checkRestored(t, c, body, out, w, "id")
	case method.Str == "notifications/cancelled":
		checkRestored(t, c, body, out, w, "params.requestId")
	case isTaskMethod(method.Str):
		srv := checkRestored(t, c, body, out, w, "params.taskId")
		checkHeader(t, w, config.HeaderMCPName, gjson.GetBytes(out, "params.taskId").Str)
		if !stateless || !srv.Stateless {
			t.Fatalf("tasks request routed to %s (stateless %v) in era stateless=%v", srv.Name, srv.Stateless, stateless)
		}
	default:
		name := gjson.GetBytes(body, "params.name").Str
		srv, bare, ok := resolve(c, name)
		if !ok {
			t.Fatalf("routed %q, which the config gives no server", name)
		}
		checkHeader(t, w, config.HeaderServerName, srv.Name)
		checkHeader(t, w, config.HeaderToolName, bare)
		if stateless {
			checkHeader(t, w, config.HeaderMCPName, bare)
			if !srv.Stateless {
				t.Fatalf("stateless-era call routed to session-era server %s", srv.Name)
			}
		}
		if bytes.Equal(out, body) != (bare == name) {
			t.Fatalf("body rewritten %v for %q -> %q", !bytes.Equal(out, body), name, bare)
		}
		if !bytes.Equal(out, body) {
			checkSurgical(t, body, out, bare)
		}
		checkRouted(t, body, nilIfSame(out, body), w)
	}
}

func nilIfSame(out, body []byte) []byte {
	if bytes.Equal(out, body) {
		return nil
	}
	return out
}

// resolve finds the owner of a gateway name the slow way, from the config
// itself: an exact alias, else the server with the longest prefix that
// leaves a non-empty name.
func resolve(c *config.Config, name string) (srv *config.Server, bare string, ok bool) {
	for i := range c.Servers {
		if target, found := c.Servers[i].Aliases[name]; found {
			return &c.Servers[i], target, true
		}
	}
	for i := range c.Servers {
		p := c.Servers[i].Prefix
		if strings.HasPrefix(name, p) && len(name) > len(p) && (srv == nil || len(p) > len(srv.Prefix)) {
			srv = &c.Servers[i]
		}
	}
	if srv == nil {
		return nil, "", false
	}
	return srv, name[len(srv.Prefix):], true
}

// checkRestored checks a routed message that named a relay id (or gateway
// task id) at path: the new body holds the original id there and is
// otherwise the same, and the request goes to the server the id names
// (parsed here from the format, not by parseRelayID). It returns that
// server.
func checkRestored(t *testing.T, c *config.Config, body, out []byte, w *recorder, path string) *config.Server {
	t.Helper()
	relay := gjson.GetBytes(body, path)
	name, kind, original := splitRelayIDSlowly(t, relay.Str)
	var srv *config.Server
	for i := range c.Servers {
		if c.Servers[i].Name == name {
			srv = &c.Servers[i]
		}
	}
	if relay.Type != gjson.String || srv == nil {
		t.Fatalf("routed %s %s, which names no server", path, relay.Raw)
	}
	checkHeader(t, w, config.HeaderServerName, srv.Name)
	restored := gjson.GetBytes(out, path)
	switch {
	case kind == 'n' && (restored.Type != gjson.Number || restored.Raw != original),
		kind == 's' && (restored.Type != gjson.String || restored.Str != original),
		kind != 'n' && kind != 's':
		t.Fatalf("%s %s restored as %s (kind %q, original %q)", path, relay.Raw, restored.Raw, kind, original)
	}
	if !bytes.Equal(body[:relay.Index], out[:restored.Index]) ||
		!bytes.Equal(body[relay.Index+len(relay.Raw):], out[restored.Index+len(restored.Raw):]) {
		t.Fatalf("bytes outside %s changed:\n%s\n%s", path, body, out)
	}
	return srv
}

// splitRelayIDSlowly parses "mcpgw:<len>:<server><kind><original>".
func splitRelayIDSlowly(t *testing.T, id string) (server string, kind byte, original string) {
	t.Helper()
	rest, ok := strings.CutPrefix(id, "mcpgw:")
	digits, rest, found := strings.Cut(rest, ":")
	n := 0
	for i, d := range digits {
		if d < '0' || d > '9' || i == 0 && d == '0' {
			ok = false // the encoder writes the length in decimal, as is
		}
		n = n*10 + int(d-'0')
	}
	if !ok || !found || digits == "" || n >= len(rest) {
		t.Fatalf("routed on %q, which is not a relay id", id)
	}
	return rest[:n], rest[n], rest[n+1:]
}

func checkHeader(t *testing.T, w *recorder, name, want string) {
	t.Helper()
	if got, ok := w.get(name); !ok || got != want {
		t.Fatalf("%s: %q (set %v), want %q", name, got, ok, want)
	}
}

// checkBackendReads decodes body as a Go backend would and checks that the
// routing headers say the same.
func checkBackendReads(t *testing.T, body []byte, w *recorder, routed bool) {
	t.Helper()
	var msg struct {
		Method json.RawMessage `json:"method"`
		Params json.RawMessage `json:"params"`
	}
	if json.Unmarshal(body, &msg) != nil {
		if routed {
			t.Fatalf("a backend cannot decode the routed body %q", body)
		}
		return // a batch, or a value the broker will refuse
	}
	header, set := w.get("x-mcp-method")
	var method string
	if json.Unmarshal(msg.Method, &method) != nil {
		if set {
			t.Fatalf("x-mcp-method %q but a backend finds no method in %q", header, body)
		}
		return
	}
	if utf8.ValidString(header) && header != method {
		t.Fatalf("x-mcp-method %q but a backend reads %q in %q", header, method, body)
	}
	if !routed || (method != "tools/call" && method != "prompts/get") {
		return
	}
	var params struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(msg.Params, &params); err != nil {
		t.Fatalf("a backend cannot decode the routed params %q: %v", msg.Params, err)
	}
	tool, _ := w.get("x-mcp-toolname")
	if tool != params.Name {
		t.Fatalf("x-mcp-toolname %q but a backend runs %q for %q", tool, params.Name, body)
	}
	if strings.ContainsAny(tool, "\r\n\x00") {
		t.Fatalf("x-mcp-toolname %q carries control characters", tool)
	}
}
