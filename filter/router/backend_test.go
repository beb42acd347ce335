package router

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/tidwall/gjson"

	"github.com/mcpgw/mcpgw/filter/config"
)

// backend is a real go-sdk MCP server on httptest, with counters, and an
// adapter simulation (send) that carries routed calls to it as Envoy would.
type backend struct {
	srv     *httptest.Server
	handler atomic.Pointer[http.Handler]
	json    bool // JSON responses instead of SSE

	mu        sync.Mutex
	inits     int
	initBody  []string // raw initialize bodies
	deletes   []string // session ids ended with DELETE
	authSeen  []string // Authorization of every request
	initGate  chan struct{}
	deleteHit chan string
	levels    []string // params.level of every logging/setLevel, with its session id
	cancels   []string // params.requestId of every notifications/cancelled, with its session id
	calls     []string // the session id of every tools/call the MCP handler ran (not 404)
	// lose makes the next tools/call requests answer 404 (a lost session)
	// without reaching the MCP handler, as many as it counts.
	lose atomic.Int32
	// events gives the MCP handler an event store: SSE events carry ids.
	events  bool
	servers []*mcp.Server // every MCP server restart made, whose sessions the test ends
	// ended is cancelled when the test ends, before the sessions are
	// closed: a tool still waiting on the client (ask) gives up.
	ended   context.Context
	endTest context.CancelFunc
}

// echoArgs is the input of the backend's tools.
type echoArgs struct {
	Text string `json:"text,omitempty"`
}

func newBackend(t *testing.T, jsonResponse bool) *backend {
	t.Helper()
	b := &backend{json: jsonResponse, deleteHit: make(chan string, 16)}
	b.ended, b.endTest = context.WithCancel(context.Background())
	b.restart()
	b.srv = httptest.NewServer(http.HandlerFunc(b.serve))
	t.Cleanup(func() {
		b.endTest()
		b.srv.Close()
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, s := range b.servers {
			for ss := range s.Sessions() {
				ss.Close() // sessions nobody DELETEd, as a backend would expire them
			}
		}
	})
	return b
}

// restart replaces the MCP handler with a fresh one: every session is lost,
// as when the backend's pod restarts.
func (b *backend) restart() {
	s := mcp.NewServer(&mcp.Implementation{Name: "echo", Version: "1"}, nil)
	for _, name := range []string{"x", "secret"} {
		mcp.AddTool(s, &mcp.Tool{Name: name}, func(_ context.Context, _ *mcp.CallToolRequest, in echoArgs) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ran " + name + ":" + in.Text}}}, nil, nil
		})
	}
	// log sends one log notification at level info: the client sees it only
	// if its session's level lets it through.
	mcp.AddTool(s, &mcp.Tool{Name: "log"}, func(ctx context.Context, req *mcp.CallToolRequest, _ echoArgs) (*mcp.CallToolResult, any, error) {
		err := req.Session.Log(ctx, &mcp.LoggingMessageParams{Level: "info", Data: "hello from the backend"})
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "logged"}}}, nil, err
	})
	// ask elicits a name from the client during the call.
	mcp.AddTool(s, &mcp.Tool{Name: "ask"}, func(ctx context.Context, req *mcp.CallToolRequest, _ echoArgs) (*mcp.CallToolResult, any, error) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(b.ended, cancel)()
		res, err := req.Session.Elicit(ctx, &mcp.ElicitParams{Message: "name?",
			RequestedSchema: map[string]any{"type": "object", "properties": map[string]any{"name": map[string]any{"type": "string"}}}})
		if err != nil {
			return nil, nil, err
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprint(res.Content["name"])}}}, nil, nil
	})
	opts := &mcp.StreamableHTTPOptions{JSONResponse: b.json}
	if b.events {
		opts.EventStore = mcp.NewMemoryEventStore(nil)
	}
	var h http.Handler = mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, opts)
	b.handler.Store(&h)
	b.mu.Lock()
	b.servers = append(b.servers, s)
	b.mu.Unlock()
}

func (b *backend) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	b.mu.Lock()
	b.authSeen = append(b.authSeen, r.Header.Get("Authorization"))
	gate := b.initGate
	if r.Method == http.MethodPost && gjson.GetBytes(body, "method").Str == "logging/setLevel" {
		b.levels = append(b.levels, r.Header.Get(config.HeaderSessionID)+" "+gjson.GetBytes(body, "params.level").Str)
	}
	if r.Method == http.MethodPost && gjson.GetBytes(body, "method").Str == "notifications/cancelled" {
		b.cancels = append(b.cancels, r.Header.Get(config.HeaderSessionID)+" "+gjson.GetBytes(body, "params.requestId").Raw)
	}
	if r.Method == http.MethodPost && gjson.GetBytes(body, "method").Str == "initialize" {
		b.inits++
		b.initBody = append(b.initBody, string(body))
	} else {
		gate = nil
	}
	isCall := r.Method == http.MethodPost && gjson.GetBytes(body, "method").Str == "tools/call"
	if isCall && b.lose.Add(-1) >= 0 {
		b.mu.Unlock()
		http.Error(w, "session not found", http.StatusNotFound)
		return
	}
	if isCall {
		b.lose.Store(0) // (under b.mu, as every Add)
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			if sw.status != http.StatusNotFound {
				b.mu.Lock()
				b.calls = append(b.calls, r.Header.Get(config.HeaderSessionID))
				b.mu.Unlock()
			}
		}()
		w = sw
	}
	b.mu.Unlock()
	if gate != nil {
		<-gate
	}
	if r.Method == http.MethodDelete {
		defer func() { b.deleteHit <- r.Header.Get(config.HeaderSessionID) }()
	}
	(*b.handler.Load()).ServeHTTP(w, r)
}

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	w.status = status
	w.ResponseWriter.WriteHeader(status)
}

// Flush keeps SSE streaming through the wrapper.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// callSessions returns the session id of every tools/call the MCP handler got.
func (b *backend) callSessions() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.calls...)
}

func (b *backend) initCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.inits
}

// eventually polls cond for up to 5 seconds (the router sends some messages
// to backends in the background).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
	}
}

// routerFor returns a router whose servers are the given backends, with
// prefixes "<name>_"; the first server has a credential.
func routerFor(t *testing.T, maxSessions int, backends map[string]*backend) *Router {
	t.Helper()
	setTestEnv(t)
	c := &config.Config{Version: config.Version,
		Gateway: config.Gateway{SessionKey: config.SecretRef{Env: testKeyEnv}, MaxRequestBodyBytes: 1 << 20, MaxSessions: maxSessions}}
	for name, b := range backends {
		s := config.Server{Name: name, URL: b.srv.URL + "/mcp", Hostname: name + ".local", Prefix: name + "_"}
		if name == "echo" {
			s.Credential = &config.Credential{SecretRef: config.SecretRef{Env: testTokenEnv}}
		}
		c.Servers = append(c.Servers, s)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	r := New(Options{})
	t.Cleanup(r.Close)
	if err := r.Apply(c); err != nil {
		t.Fatal(err)
	}
	return r
}

// result is what the client gets for one request through the gateway.
type result struct {
	action   Action // after OpenSession, if any
	status   int
	body     string
	response recorder // ApplyResponse's (or ApplyAnswer's) header operations
	request  recorder // ApplyRequest's header operations
	replayed bool     // the answer is a replay's (Stream.Answer)
}

// send drives one POST through a Stream as an adapter does and, when it is
// routed, carries it to the backend whose URL the config names, then
// passes the backend's response back through the Stream.
func send(t *testing.T, r *Router, gateway, version, body string) result {
	t.Helper()
	s := r.NewStream()
	defer s.Release()
	h := post(gateway, []byte(body))
	h.ProtocolVersion = version
	var res result
	if ha := s.RequestHeaders(h); ha != HeadersBuffer {
		t.Fatalf("headers action %s", headersActions[ha])
	}
	res.action = s.RequestBody([]byte(body))
	if res.action == OpenSession {
		res.action = s.OpenSession(t.Context())
	}
	switch res.action {
	case Reply:
		status, reply := s.Reply()
		res.status, res.body = status, string(reply)
		return res
	case Forward:
		s.ApplyRequest(&res.request)
		return res
	}
	s.ApplyRequest(&res.request)
	out := []byte(body)
	if nb := s.NewBody(); nb != nil {
		out = nb
	}
	srv := r.table.Load().byName[s.server.Name]
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL, bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if version != "" {
		req.Header.Set(config.HeaderProtocolVersion, version)
	}
	for _, op := range res.request.ops { // what Envoy would send upstream
		name, value, _ := strings.Cut(strings.TrimPrefix(op, "set "), ": ")
		if strings.HasPrefix(op, "set ") && !strings.HasPrefix(name, ":") && name != "content-length" {
			req.Header.Set(name, value)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	return respond(t, s, resp.StatusCode, rb, res)
}

// respond passes a backend's response to a routed call through the Stream,
// as an adapter does, and returns what the client gets.
func respond(t *testing.T, s *Stream, status int, body []byte, res result) result {
	act := s.ResponseHeaders(status, true)
	if act == ResponseReplay {
		act = s.Replay(t.Context()) // the adapter's goroutine
	}
	switch act {
	case ResponseReply:
		status, reply := s.Reply()
		res.status, res.body = status, string(reply)
		return res
	case ResponseAnswer:
		status, answer := s.Answer()
		s.ApplyAnswer(&res.response)
		res.status, res.body, res.replayed = status, string(answer), true
		return res
	}
	s.ApplyResponse(&res.response)
	res.status, res.body = status, string(body)
	return res
}

func call(id int, name, text string) string {
	return `{"jsonrpc":"2.0","id":` + strconv.Itoa(id) + `,"method":"tools/call","params":{"name":"` + name + `","arguments":{"text":"` + text + `"}}}`
}

// ran extracts the tool output from a JSON or SSE tools/call response.
func ran(body string) string {
	for line := range strings.Lines(body) {
		if d, ok := strings.CutPrefix(strings.TrimSpace(line), "data:"); ok {
			body = d
		}
	}
	return gjson.Get(body, "result.content.0.text").Str
}
