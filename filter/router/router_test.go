package router

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mcpgw/mcpgw/filter/config"
	"github.com/mcpgw/mcpgw/filter/sessionid"
	"github.com/mcpgw/mcpgw/internal/testenv"
)

// Test fixtures shared by the router's tests.

const (
	testKeyEnv   = "MCPGW_ROUTER_TEST_KEY"
	testKey      = "router-test-session-key-0123456789abcdef"
	testTokenEnv = "MCPGW_ROUTER_TEST_GH_TOKEN"
	testToken    = "Bearer gh-test-token"
)

// setTestEnv provides the secrets the test configs refer to.
func setTestEnv(t testing.TB) {
	t.Helper()
	if tt, ok := t.(*testing.T); ok {
		tt.Setenv(testKeyEnv, testKey)
		tt.Setenv(testTokenEnv, testToken)
		return
	}
	os.Setenv(testKeyEnv, testKey) // benchmarks and fuzzing: no Setenv
	os.Setenv(testTokenEnv, testToken)
}

// loadConfig parses a config file under testdata.
func loadConfig(t testing.TB, name string) *config.Config {
	t.Helper()
	c, err := config.Load("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newTestRouter returns a Router with testdata/name applied (none if name
// is "") whose HTTP client fails every request, so no test reaches the
// network by accident.
func newTestRouter(t testing.TB, name string) *Router {
	t.Helper()
	setTestEnv(t)
	r := New(Options{HTTPClient: &http.Client{Transport: failingTransport{}}})
	t.Cleanup(r.Close)
	if name != "" {
		if err := r.Apply(loadConfig(t, name)); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

type failingTransport struct{ calls *atomic.Int64 }

func (f failingTransport) RoundTrip(*http.Request) (*http.Response, error) {
	if f.calls != nil {
		f.calls.Add(1)
	}
	return nil, errors.New("test transport: no network")
}

// codec mints gateway session ids the router accepts.
func codec(t testing.TB) *sessionid.Codec {
	t.Helper()
	c, err := sessionid.New([]byte(testKey))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// forge returns an id of the right shape that no key signed.
func forge(valid string) string {
	b := []byte(valid)
	i := len(b) - 3
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

// recorder is a HeaderWriter that records every operation in order.
type recorder struct{ ops []string }

func (w *recorder) Set(name, value string) { w.ops = append(w.ops, "set "+name+": "+value) }
func (w *recorder) Remove(name string)     { w.ops = append(w.ops, "remove "+name) }

// get returns the last value set for name.
func (w *recorder) get(name string) (string, bool) {
	for i := len(w.ops) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(w.ops[i], "set "+name+": "); ok {
			return v, true
		}
	}
	return "", false
}

type nopWriter struct{}

func (nopWriter) Set(string, string) {}
func (nopWriter) Remove(string)      {}

var (
	headersActions = [...]string{HeadersContinue: "continue", HeadersBuffer: "buffer", HeadersReply: "reply", HeadersRoute: "route"}
	actions        = [...]string{Forward: "forward", Route: "route", Reply: "reply", OpenSession: "open-session"}
	responseAction = [...]string{ResponseContinue: "continue", ResponseReply: "reply", ResponseReplay: "replay", ResponseAnswer: "answer"}
)

// post is a JSON POST with the given session and body length.
func post(session string, body []byte) RequestHeaders {
	return RequestHeaders{Path: "/mcp", Method: "POST", ContentType: "application/json", ContentLength: int64(len(body)),
		SessionID: session, ProtocolVersion: "2025-06-18"}
}

// checkReply checks that a reply body is one JSON-RPC error with the
// rejection's code and message and the given raw id.
func checkReply(t testing.TB, s *Stream, wantID string) {
	t.Helper()
	status, body := s.Reply()
	r := s.Rejection()
	if status != r.Status() {
		t.Errorf("reply status %d, want %d", status, r.Status())
	}
	var msg struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &msg); err != nil {
		t.Fatalf("reply %s is not JSON: %v", body, err)
	}
	if msg.JSONRPC != "2.0" || msg.Error.Code != r.Code() || msg.Error.Message != r.Message() {
		t.Errorf("reply %s does not match rejection %s", body, r)
	}
	if wantID == "" {
		wantID = "null"
	}
	if string(msg.ID) != wantID {
		t.Errorf("reply id %s, want %s", msg.ID, wantID)
	}
}

// TestLookup: the router gives a name to the server config.Names gives it
// to, the rule the broker lists names by (so a listed tool never runs on
// another server), without allocating.
func TestLookup(t *testing.T) {
	setTestEnv(t)
	tab := func(file string) (*table, *config.Names) {
		c := loadConfig(t, file)
		tb, err := compile(c, nil)
		if err != nil {
			t.Fatal(err)
		}
		return tb, config.NewNames(c.Servers)
	}
	withFallback, withFallbackNames := tab("router.yaml")
	noFallback, noFallbackNames := tab("router-nofallback.yaml")
	tests := []struct {
		tab        *table
		names      *config.Names
		name       string
		wantServer string // "" means no owner
		wantBare   string
	}{
		{withFallback, withFallbackNames, "weather_now", "default/weather", "now"},
		{withFallback, withFallbackNames, "forecast", "default/weather", "get_forecast"}, // an alias
		{withFallback, withFallbackNames, "weather_today", "default/weather", "now"},     // an alias before its own prefix
		{withFallback, withFallbackNames, "alerts_active", "default/alerts", "active"},
		{withFallback, withFallbackNames, "alerts_", "tools/everything", "alerts_"}, // a prefix alone is no name of its server
		{withFallback, withFallbackNames, "gh_search", "default/github", "search"},
		{withFallback, withFallbackNames, "search", "tools/everything", "search"},
		{withFallback, withFallbackNames, "", "", ""},
		{noFallback, noFallbackNames, "search", "", ""},
		{noFallback, noFallbackNames, "Gh_search", "", ""}, // prefixes are case-sensitive
		{noFallback, noFallbackNames, "gh_", "", ""},
	}
	for _, tt := range tests {
		srv, bare := tt.tab.lookup(tt.name)
		got := ""
		if srv != nil {
			got = srv.Name
		}
		if got != tt.wantServer || bare != tt.wantBare {
			t.Errorf("lookup(%q) = %q, %q; want %q, %q", tt.name, got, bare, tt.wantServer, tt.wantBare)
		}
		i, nbare, ok := tt.names.Resolve(tt.name)
		if ok != (srv != nil) || ok && (tt.names.Server(i) != got || nbare != bare) {
			t.Errorf("lookup(%q) = %q, %q disagrees with config.Names", tt.name, got, bare)
		}
	}
	if n := testing.AllocsPerRun(100, func() { withFallback.lookup("alerts_active"); withFallback.lookup("forecast") }); n != 0 {
		t.Errorf("lookup allocates %v times", n)
	}
}

func TestRejectionTable(t *testing.T) {
	names := map[string]bool{}
	for r := RejectNone + 1; r < numRejections; r++ {
		if r.String() == "" || names[r.String()] || r.Message() == "" || r.Code() >= 0 {
			t.Errorf("rejection %d: incomplete or duplicate entry %+v", r, rejections[r])
		}
		names[r.String()] = true
		switch r.Status() {
		case 200, 400, 403, 404, 413, 415, 503:
		default:
			t.Errorf("%s: status %d", r, r.Status())
		}
		for _, id := range []string{"", "1", `"abc"`, `"\u00e9\"x"`} {
			b := appendErrorBody(nil, r, []byte(id))
			if !json.Valid(b) {
				t.Errorf("%s id %s: invalid body %s", r, id, b)
			}
		}
	}
	// A retryable, JSON-RPC-level error (200) keeps the client's gateway
	// session; 404 is reserved for sessions the gateway does not know.
	if RejectBackendSessionLost.Status() != 200 || RejectBackendUnavailable.Status() != 200 || RejectUnknownSession.Status() != 404 {
		t.Error("session-related statuses changed")
	}
}

func TestApply(t *testing.T) {
	r := newTestRouter(t, "router.yaml")
	sess := codec(t).Mint("")
	r.Sessions().Put(sess, "tools/everything", "b1")
	decide := func() Action {
		t.Helper()
		s := r.NewStream()
		defer s.Release()
		body := []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search"}}`)
		if ha := s.RequestHeaders(post(sess, body)); ha != HeadersBuffer {
			t.Fatalf("headers %s", headersActions[ha])
		}
		return s.RequestBody(body)
	}
	if a := decide(); a != Route {
		t.Fatalf("action %s", actions[a])
	}
	bad := []struct {
		name    string
		mutate  func(*config.Config)
		wantErr string
	}{
		{"unset key", func(c *config.Config) { c.Gateway.SessionKey.Env = "MCPGW_UNSET_VAR" },
			`gateway.sessionKey: environment variable "MCPGW_UNSET_VAR" is not set`},
		{"short key", func(c *config.Config) { c.Gateway.SessionKey.Env = testTokenEnv },
			"gateway.sessionKey: must be at least 32 bytes"},
		{"credential", func(c *config.Config) { c.Servers[1].Credential.Env = "MCPGW_UNSET_VAR" },
			`servers[1].credential: environment variable "MCPGW_UNSET_VAR" is not set`},
	}
	for _, b := range bad {
		c := loadConfig(t, "router.yaml")
		b.mutate(c)
		err := r.Apply(c)
		if err == nil || err.Error() != b.wantErr {
			t.Fatalf("%s: Apply error %v, want %q", b.name, err, b.wantErr)
		}
		if strings.Contains(err.Error(), testToken) || strings.Contains(err.Error(), testKey) {
			t.Errorf("%s: error leaks a secret", b.name)
		}
		// The previous configuration stays active.
		if a := decide(); a != Route {
			t.Fatalf("%s: after failed Apply, action %s", b.name, actions[a])
		}
	}
}

// A Stream keeps the table it started with while Apply swaps in another.
func TestApplyDuringStream(t *testing.T) {
	r := newTestRouter(t, "router.yaml")
	sess := codec(t).Mint("")
	r.Sessions().Put(sess, "default/github", "b1")
	s := r.NewStream()
	body := []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"gh_x"}}`)
	s.RequestHeaders(post(sess, body))
	if err := r.Apply(loadConfig(t, "router-nofallback.yaml")); err != nil {
		t.Fatal(err)
	}
	if a := s.RequestBody(body); a != Route {
		t.Fatalf("action %s", actions[a])
	}
	var w recorder
	s.ApplyRequest(&w)
	if v, _ := w.get(":authority"); v != "github.mcp.local" {
		t.Fatalf(":authority %q", v)
	}
}

func TestApplyResizesSessions(t *testing.T) {
	r := newTestRouter(t, "router.yaml")
	c := loadConfig(t, "router.yaml")
	c.Gateway.MaxSessions = 3
	if err := r.Apply(c); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		r.Sessions().Put(string(rune('a'+i)), "s", "b")
	}
	if n := r.Sessions().Len(); n != 3 {
		t.Fatalf("Len = %d, want 3", n)
	}
}

func TestMetrics(t *testing.T) {
	r := newTestRouter(t, "router.yaml")
	sess := codec(t).Mint("")
	r.Sessions().Put(sess, "default/weather", "b1")
	for _, body := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"weather_x"}}`,
		`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"gh_x"}}`,
		`{`,
	} {
		s := r.NewStream()
		s.RequestHeaders(post(sess, []byte(body)))
		s.RequestBody([]byte(body))
		s.Release()
	}
	m := &r.Metrics
	got := []int64{m.Requests.Load(), m.Forwarded.Load(), m.Routed.Load(), m.Rejected[RejectParse].Load()}
	if want := []int64{4, 1, 1, 1}; !slices.Equal(got, want) {
		t.Errorf("requests, forwarded, routed, parse errors = %v, want %v", got, want)
	}
}

func TestToolNameValidity(t *testing.T) {
	r := newTestRouter(t, "router.yaml")
	gw := codec(t).Mint("")
	r.Sessions().Put(gw, "default/weather", "b")
	r.Sessions().Put(gw, "tools/everything", "b")
	tests := []struct {
		rawName string // the JSON string, quotes included
		want    Rejection
		tool    string
	}{
		{`"weather_x"`, RejectNone, "x"},
		{`"weather_\u00e9t\u00e9"`, RejectNone, "été"},
		{`"weather_\ud83d\ude00"`, RejectNone, "😀"},
		{`"weather_\ud800"`, RejectNone, "\ufffd"}, // a lone surrogate decodes to U+FFFD
		{`"weather_x\r\nx: y"`, RejectUnknownTool, ""},
		{`"weather_x\u000a"`, RejectUnknownTool, ""},
		{`"weather_\t"`, RejectUnknownTool, ""},
		{`"weather_\u007f"`, RejectUnknownTool, ""},
		{`"\u0000"`, RejectUnknownTool, ""},                // fallback server: still checked
		{"\"weather_\xb3\"", RejectUnknownTool, ""},        // invalid UTF-8, raw
		{"\"weather_\\u00e9\xb3\"", RejectUnknownTool, ""}, // invalid UTF-8, escaped path
		{"\"caf\xc3\xa9\"", RejectNone, "café"},            // valid raw UTF-8, fallback
	}
	for _, tt := range tests {
		body := []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":` + tt.rawName + `}}`)
		s := r.NewStream()
		s.RequestHeaders(post(gw, body))
		a := s.RequestBody(body)
		if s.Rejection() != tt.want {
			t.Errorf("%s: %s (%s), want %s", tt.rawName, actions[a], s.Rejection(), tt.want)
		}
		if a == Route {
			var w recorder
			s.ApplyRequest(&w)
			if got, _ := w.get("x-mcp-toolname"); got != tt.tool {
				t.Errorf("%s: x-mcp-toolname %q, want %q", tt.rawName, got, tt.tool)
			}
			checkRouted(t, body, s.NewBody(), &w)
		}
		s.Release()
	}
}

func TestInternVersion(t *testing.T) {
	for _, v := range []string{"", "2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"} {
		if got := internVersion(v); got != v {
			t.Errorf("internVersion(%q) = %q", v, got)
		}
		if n := testing.AllocsPerRun(10, func() { internVersion(v) }); n != 0 {
			t.Errorf("internVersion(%q) allocates", v)
		}
	}
	buf := []byte("2099-01-01")
	got := internVersion(unsafeString(buf))
	copy(buf, "XXXX")
	if got != "2099-01-01" {
		t.Errorf("an unknown version aliases the host's memory: %q", got)
	}
}

// The hot paths do not allocate (see the benchmarks).
func TestHotPathAllocations(t *testing.T) {
	testenv.SkipUnderRace(t)
	r := newTestRouter(t, "router.yaml")
	gw := codec(t).Mint("")
	r.Sessions().Put(gw, "default/weather", "backend-1")
	for _, tc := range []struct {
		path string
		body string
		want Action
	}{
		{"/mcp", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"weather_x","arguments":{"a":[1,"b"]}}}`, Route},
		{"/mcp", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"forecast","arguments":{}}}`, Route}, // alias
		{"/mcp", `{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"now"}}`, Route},                    // alias, no rewrite
		{"/mcp", `{"jsonrpc":"2.0","id":"x","method":"tools/list"}`, Forward},
		{"/mcp", `{"jsonrpc":"2.0","id":2,"method":"notifications/initialized"}`, Forward},
		{"/mcp", `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{}}`, Reply},
		// Through a virtual server: the path selects it, the tool is checked.
		{"/mcp/default/forecasting?x=1", `{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"weather_get_forecast"}}`, Route},
		{"/mcp/default/forecasting", `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"weather_x"}}`, Reply},
		{"/mcp/default/nope", `{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"weather_x"}}`, Reply},
	} {
		for _, origin := range []string{"", "http://localhost:6274"} {
			body := []byte(tc.body)
			h := post(gw, body)
			h.Path = tc.path
			h.Origin = origin
			var s Stream
			n := testing.AllocsPerRun(100, func() {
				s.Init(r)
				s.RequestHeaders(h)
				if a := s.RequestBody(body); a != tc.want {
					t.Fatalf("%s: %s", tc.body, actions[a])
				}
				s.ApplyRequest(nopWriter{})
				s.Release()
			})
			if n != 0 {
				t.Errorf("%s (origin %q): %v allocations", tc.body, origin, n)
			}
		}
	}
}
