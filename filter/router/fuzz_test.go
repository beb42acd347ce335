package router

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// FuzzRequestBody drives arbitrary bodies through a Stream whose client
// holds a backend session with every server, and checks that the router
// never panics and that what it decides agrees with how a backend reads
// the body it forwards (encoding/json: the last duplicate wins, keys match
// ignoring case):
//
//   - Route: the new body is valid JSON, differs from the original only in
//     params.name's value, and a backend decodes the method and tool name
//     the routing headers carry.
//   - Forward: a backend decodes the method x-mcp-method carries.
//   - Reply: a valid JSON-RPC error that echoes the request's id or null.
//
// go test ./filter/router -run '^$' -fuzz FuzzRequestBody -fuzztime 60s
func FuzzRequestBody(f *testing.F) {
	addSeeds(f)
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"weather_x","name":"secret"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"weather_x","Name":"secret"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/list","METHOD":"tools/call","params":{"name":"weather_x"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"weather_x\r\nx-injected: 1"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"gh_\u0000"}}`,
	} {
		f.Add([]byte(s))
	}
	r := newTestRouter(f, "router.yaml")
	c := loadConfig(f, "router.yaml")
	c.Gateway.MaxRequestBodyBytes = 1 << 20
	if err := r.Apply(c); err != nil {
		f.Fatal(err)
	}
	gw := codec(f).Mint("")
	for _, srv := range []string{"default/weather", "default/github", "default/alerts", "tools/everything"} {
		r.Sessions().Put(gw, srv, "b-"+srv)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		orig := string(body) // the router must not modify the host's body
		s := r.NewStream()
		defer s.Release()
		if ha := s.RequestHeaders(post(gw, body)); ha != HeadersBuffer {
			t.Fatalf("headers action %s", headersActions[ha])
		}
		a := s.RequestBody(body)
		var w recorder
		switch a {
		case Route:
			s.ApplyRequest(&w)
			nb := s.NewBody()
			out := body
			if nb != nil {
				out = nb
				checkSurgical(t, body, nb, s.toolName)
			}
			if !json.Valid(out) {
				t.Fatalf("routed body is not valid JSON: %q", out)
			}
			checkRouted(t, body, nb, &w)
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
		if string(body) != orig {
			t.Fatalf("the request body was modified in place")
		}
	})
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
	if !routed {
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
