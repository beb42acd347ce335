package mcptest

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// dial connects a client with its own HTTP transport (so that no pooled
// connection outlives the test). streamUp is closed once the client's
// standalone SSE stream, which carries notifications, is open.
func dial(t *testing.T, url string, opts *mcp.ClientOptions) (cs *mcp.ClientSession, streamUp <-chan struct{}) {
	t.Helper()
	tr := &http.Transport{}
	up := make(chan struct{})
	var once sync.Once
	rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := tr.RoundTrip(r)
		if err == nil && r.Method == http.MethodGet && resp.StatusCode == http.StatusOK {
			once.Do(func() { close(up) })
		}
		return resp, err
	})
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test"}, opts).
		Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: &http.Client{Transport: rt}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close(); tr.CloseIdleConnections() })
	return cs, up
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func call(t *testing.T, cs *mcp.ClientSession, name string, args any) string {
	t.Helper()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil || res.IsError {
		t.Fatalf("%s: %v, %v", name, res, err)
	}
	return res.Content[0].(*mcp.TextContent).Text
}

func TestEchoServer(t *testing.T) {
	url, stop, err := Serve(t.Context(), "127.0.0.1:0", NewEchoServer("echo-1"))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	cs, _ := dial(t, url, nil)
	text := strings.Repeat("a", 1024)
	if got := call(t, cs, "echo", EchoInput{Text: text}); got != text {
		t.Errorf("echo returned %d bytes", len(got))
	}
	if got := call(t, cs, "whoami", nil); got != "echo-1" {
		t.Errorf("whoami = %q", got)
	}
	p, err := cs.GetPrompt(t.Context(), &mcp.GetPromptParams{Name: "greet", Arguments: map[string]string{"who": "Ada"}})
	if err != nil || !strings.Contains(p.Messages[0].Content.(*mcp.TextContent).Text, "Ada") {
		t.Errorf("greet = %v, %v", p, err)
	}
}

func TestMathServer(t *testing.T) {
	url, stop, err := Serve(t.Context(), "127.0.0.1:0", NewMathServer("math-1"))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	cs, _ := dial(t, url, nil)
	if got := call(t, cs, "add", AddInput{A: 1.5, B: 2}); got != "3.5" {
		t.Errorf("add = %q", got)
	}
	if got := call(t, cs, "whoami", nil); got != "math-1" {
		t.Errorf("whoami = %q", got)
	}
	r, err := cs.ReadResource(t.Context(), &mcp.ReadResourceParams{URI: PiURI})
	if err != nil || r.Contents[0].Text != PiText {
		t.Errorf("pi = %v, %v", r, err)
	}
}

func TestAddStaticToolNotifies(t *testing.T) {
	srv := NewEchoServer("e")
	url, stop, err := Serve(t.Context(), "127.0.0.1:0", srv)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	changed := make(chan struct{}, 10)
	cs, streamUp := dial(t, url, &mcp.ClientOptions{
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) { changed <- struct{}{} },
	})
	<-streamUp // the go-sdk drops notifications sent before the stream is open
	AddStaticTool(srv, "extra", "hi")
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("no notifications/tools/list_changed")
	}
	if got := call(t, cs, "extra", nil); got != "hi" {
		t.Errorf("extra = %q", got)
	}
}

func TestRestartForgetsSessions(t *testing.T) {
	srv := NewEchoServer("e")
	url, stop, err := Serve(t.Context(), "127.0.0.1:0", srv)
	if err != nil {
		t.Fatal(err)
	}
	cs, _ := dial(t, url, nil)
	id := cs.ID()
	stop()
	stop() // idempotent
	addr := strings.TrimSuffix(strings.TrimPrefix(url, "http://"), Path)
	url2, stop2, err := Serve(t.Context(), addr, srv)
	if err != nil {
		t.Fatal(err)
	}
	defer stop2()
	if url2 != url {
		t.Errorf("url %q, want %q", url2, url)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url2,
		strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Session-Id", id)
	// A fresh transport: a pooled connection to the stopped server is dead.
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("old session after restart: status %d, want 404", resp.StatusCode)
	}
}

func TestCountRequests(t *testing.T) {
	srv := NewEchoServer("e")
	lists, calls := CountRequests(srv, "tools/list"), CountRequests(srv, "tools/call")
	url, stop, err := Serve(t.Context(), "127.0.0.1:0", srv)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	cs, _ := dial(t, url, nil)
	for range 2 {
		if _, err := cs.ListTools(t.Context(), nil); err != nil {
			t.Fatal(err)
		}
	}
	call(t, cs, "whoami", nil)
	if lists.Load() != 2 || calls.Load() != 1 {
		t.Errorf("counted %d tools/list and %d tools/call, want 2 and 1", lists.Load(), calls.Load())
	}
}
