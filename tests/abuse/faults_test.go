package abuse

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgw/mcpgw/tests/harness"
)

// fault is one way a part of the stack breaks, and what must survive it.
type fault struct {
	name  string
	does  string // what breaks (catalogue)
	keeps string // what must not be lost (catalogue)
	fix   string // the fixed defect it guards (a key of fixes; "" for none)
	// where names the test when it lives elsewhere (run is then nil).
	where string
	run   func(t *testing.T)
}

// faults are every fault, in catalogue order.
func faults() []fault {
	return []fault{
		{name: "backend-killed-mid-stream", run: faultBackendKilled, fix: "b",
			does:  "an echo backend is stopped while a call streams from it, then started again at the same address (no sessions)",
			keeps: "the streaming call ends with an error at once (no hang); the client's gateway session (tools/list, calls to math) and other sessions keep working during the outage; after the restart the first call succeeds"},
		{name: "backend-404-storm", run: faultStorm, fix: "b",
			does:  "20 sessions each hold a backend session; the backend restarts; all 20 call it at once and each meets a 404",
			keeps: "Envoy does not crash; mcpgw.sessions_lost moves by 20 and mcpgw.session_inits by 20 (sessions re-open); every call succeeds"},
		{name: "slow-backend", run: faultSlowBackend,
			does:  "3 calls hang in a tool of echo, and a backend hangs in initialize while a session opens its backend session",
			keeps: "other sessions' calls, to the same backend and to others, complete meanwhile (one Envoy worker); the held calls complete when released"},
		{name: "backend-down-at-start", run: faultBackendDown,
			does:  "a configured server is not listening when calls for it come",
			keeps: "each call gets a JSON-RPC error (backend unavailable) and mcpgw.session_init_failures moves; once it listens, the next call succeeds"},
		{name: "broker-killed-and-restarted", run: faultBroker,
			does:  "the broker stops (crash or redeploy) and starts again with the same config",
			keeps: "routed calls of existing sessions keep working during the outage (the router needs no broker); afterwards the old session gets a JSON-RPC 404 (initialize again) and a new session lists and calls"},
		{name: "config-corrupted", run: faultConfigCorrupted,
			does:  "the config file is replaced (atomically) by garbage",
			keeps: "the last good config: routing and lists unchanged; the reload error counters of the router (mcpgw.config_reload_errors) and the broker (mcpgw_broker_config_reload_errors_total) move; the next good file applies"},
		{name: "config-half-written", run: faultConfigHalfWritten,
			does:  "a new config is written in place in two steps, the first leaving half a file",
			keeps: "the last good config while the file is half written (both reload error counters move); the complete file then applies (the new server is listed and callable)"},
		{name: "server-removed-mid-call", run: faultServerRemoved,
			does:  "the config drops a server while a call to it is in flight",
			keeps: "the call in flight completes with its result; new calls to the server get -32602 and it leaves tools/list; other servers are untouched"},
		{name: "overlapping-prefixes", run: faultOverlappingPrefixes, fix: "d",
			does:  "a config whose prefixes overlap (echo_ and echo_x_) is written",
			keeps: "it is refused like any invalid config: the last good one stays (calls route as before), the reload error counters move"},
		{name: "api-server-down", where: "tests/controller: TestAPIServerDownKeepsConfig",
			does:  "the kube-apiserver stops while the controller runs, then starts again",
			keeps: "the controller keeps running and keeps the config file it wrote (byte for byte) through the outage; a change made after the restart reaches the file"},
	}
}

// TestFaults runs every fault that lives here, each on its own gateway.
func TestFaults(t *testing.T) {
	for _, f := range faults() {
		if f.run == nil {
			continue
		}
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			t.Cleanup(func() {
				if t.Failed() && f.fix != "" {
					t.Logf("this fault guards defect (%s): %s", f.fix, fixes[f.fix])
				}
			})
			f.run(t)
		})
	}
}

// gate is a tool that blocks until released, counting the calls that
// started and returned.
type gate struct {
	started  chan struct{} // one per call that began
	release  chan struct{}
	returned atomic.Int64
}

func addGate(srv *mcp.Server, name string) *gate {
	g := &gate{started: make(chan struct{}, 64), release: make(chan struct{})}
	mcp.AddTool(srv, &mcp.Tool{Name: name, Description: "Blocks until released."},
		func(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			defer g.returned.Add(1)
			g.started <- struct{}{}
			select {
			case <-g.release:
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "released"}}}, nil, nil
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			}
		})
	return g
}

// waitStarted waits until n calls of the gate began.
func (g *gate) waitStarted(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		select {
		case <-g.started:
		case <-time.After(15 * time.Second):
			t.Fatalf("only %d of %d calls reached the tool", i, n)
		}
	}
}

// eventually polls cond every 20ms until it holds, failing after 15s.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// counter reads an mcpgw counter of Envoy.
func counter(t *testing.T, g *harness.Gateway, name string) int64 {
	t.Helper()
	n, err := harness.Counter(g.Envoy.AdminURL(), name)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// brokerMetric reads one unlabelled metric of the broker's /metrics.
func brokerMetric(t *testing.T, g *harness.Gateway, name string) int64 {
	t.Helper()
	resp, err := http.Get("http://" + g.BrokerAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("broker has no metric %s", name)
	return 0
}

func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// callErr calls a tool and returns its text, or an error for a failed
// call or a tool error.
func callErr(ctx context.Context, cs *mcp.ClientSession, name string) (string, error) {
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name})
	if err != nil {
		return "", err
	}
	if res.IsError {
		return "", fmt.Errorf("tool error: %s", harness.ResultText(res))
	}
	return harness.ResultText(res), nil
}

// want fails t unless calling name gives text.
func want(ctx context.Context, t *testing.T, cs *mcp.ClientSession, name, text string) {
	t.Helper()
	if got, err := callErr(ctx, cs, name); err != nil || got != text {
		t.Errorf("%s = %q, %v; want %q", name, got, err, text)
	}
}
