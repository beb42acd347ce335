package e2e

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgw/mcpgw/tests/harness"
	"github.com/mcpgw/mcpgw/tests/mcptest"
)

// TestServerToClientRequests: two backends ask the client a question
// (elicitation/create) during concurrent tools/calls of one gateway session.
// Each go-sdk server numbers its requests from 1, so both requests reach
// the client with the same id unless the router rewrites them; the client
// answers only once both have asked, so neither call can finish first.
// Each answer must reach the backend that asked.
func TestServerToClientRequests(t *testing.T) {
	echoSrv, mathSrv := mcptest.NewEchoServer("echo"), mcptest.NewMathServer("math")
	mcptest.AddAskTool(echoSrv, "echo")
	mcptest.AddAskTool(mathSrv, "math")
	e := startEnv(t, &backend{name: "echo", prefix: "echo_", srv: echoSrv},
		&backend{name: "math", prefix: "math_", srv: mathSrv})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var (
		mu       sync.Mutex
		askedBy  = map[string]bool{}
		bothOnce sync.Once
		both     = make(chan struct{})
	)
	cs := e.connect(t, &mcp.ClientOptions{
		ElicitationHandler: func(ctx context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			mu.Lock()
			askedBy[req.Params.Message] = true
			if len(askedBy) == 2 {
				bothOnce.Do(func() { close(both) })
			}
			mu.Unlock()
			select {
			case <-both:
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(10 * time.Second):
				return nil, errors.New("the other backend never asked")
			}
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"answer": "for " + req.Params.Message}}, nil
		},
	}, nil)

	admin := e.stack.Envoy.AdminURL()
	relayed0, err := harness.Counter(admin, "mcpgw.requests_relayed")
	if err != nil {
		t.Fatal(err)
	}
	answers0, err := harness.Counter(admin, "mcpgw.answers_routed")
	if err != nil {
		t.Fatal(err)
	}

	results := map[string]string{}
	var wg sync.WaitGroup
	for _, tool := range []string{"echo_ask", "math_ask"} {
		wg.Go(func() {
			got := callText(ctx, t, cs, tool, nil)
			mu.Lock()
			results[tool] = got
			mu.Unlock()
		})
	}
	wg.Wait()
	for tool, want := range map[string]string{"echo_ask": "echo: for echo", "math_ask": "math: for math"} {
		if results[tool] != want {
			t.Errorf("%s = %q, want %q", tool, results[tool], want)
		}
	}
	if n, err := harness.WaitCounter(admin, "mcpgw.requests_relayed", relayed0+2); err != nil || n != relayed0+2 {
		t.Errorf("mcpgw.requests_relayed grew by %d (%v), want 2", n-relayed0, err)
	}
	if n, err := harness.WaitCounter(admin, "mcpgw.answers_routed", answers0+2); err != nil || n != answers0+2 {
		t.Errorf("mcpgw.answers_routed grew by %d (%v), want 2", n-answers0, err)
	}
}

// TestCancellationReachesBackend: a client cancelling a routed call
// (notifications/cancelled naming the call's id, as the go-sdk client sends
// when the call's context ends) stops the tool on the backend that runs it.
func TestCancellationReachesBackend(t *testing.T) {
	srv := mcptest.NewEchoServer("echo")
	started, stopped := make(chan struct{}, 1), make(chan error, 1)
	mcp.AddTool(srv, &mcp.Tool{Name: "block", Description: "Runs until cancelled."},
		func(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			started <- struct{}{}
			select {
			case <-ctx.Done():
				stopped <- ctx.Err()
				return nil, nil, ctx.Err()
			case <-time.After(20 * time.Second):
				stopped <- errors.New("never cancelled")
				return nil, nil, nil
			}
		})
	e := startEnv(t, &backend{name: "echo", prefix: "echo_", srv: srv})
	cs := e.connect(t, nil, nil)
	admin := e.stack.Envoy.AdminURL()
	cancels0, err := harness.Counter(admin, "mcpgw.cancels_relayed")
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-started
		cancel()
	}()
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo_block"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call returned %v", err)
	}
	select {
	case err := <-stopped:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("backend tool ended with %v, want its context cancelled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the backend never saw the cancellation")
	}
	if n, err := harness.WaitCounter(admin, "mcpgw.cancels_relayed", cancels0+1); err != nil || n != cancels0+1 {
		t.Errorf("mcpgw.cancels_relayed grew by %d (%v), want 1", n-cancels0, err)
	}
}

// TestStreamResumption: a backend with an event store ends a routed call's
// SSE stream early, asking the client to come back (2025-11-25, SEP-1699);
// the client resumes with a GET carrying the last event id it got, which
// the router sends to that backend session, and the call completes.
func TestStreamResumption(t *testing.T) {
	srv := mcptest.NewEchoServer("echo")
	resumed := make(chan struct{}, 1) // the backend got the client's resuming GET
	mcp.AddTool(srv, &mcp.Tool{Name: "poll", Description: "Ends its stream, then answers."},
		func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			if err := req.Session.Log(ctx, &mcp.LoggingMessageParams{Level: "info", Data: "working"}); err != nil {
				return nil, nil, err
			}
			req.Extra.CloseSSEStream(mcp.CloseSSEStreamArgs{RetryAfter: 50 * time.Millisecond})
			select { // answer on the resumed stream
			case <-resumed:
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "done"}}}, nil, nil
		})
	e := startEnv(t, &backend{name: "echo", prefix: "echo_", srv: srv,
		opts: &mcp.StreamableHTTPOptions{EventStore: mcp.NewMemoryEventStore(nil)},
		observe: func(r *http.Request) {
			if r.Method == http.MethodGet && r.Header.Get("Last-Event-ID") != "" {
				select {
				case resumed <- struct{}{}:
				default:
				}
			}
		}})
	cs := e.connect(t, nil, nil)
	admin := e.stack.Envoy.AdminURL()
	resumed0, err := harness.Counter(admin, "mcpgw.streams_resumed")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if got := callText(ctx, t, cs, "echo_poll", nil); got != "done" {
		t.Errorf("echo_poll = %q, want done", got)
	}
	if n, err := harness.WaitCounter(admin, "mcpgw.streams_resumed", resumed0+1); err != nil || n <= resumed0 {
		t.Errorf("mcpgw.streams_resumed grew by %d (%v), want at least 1", n-resumed0, err)
	}
}
