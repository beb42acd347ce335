package abuse

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/tests/harness"
	"github.com/mcpgw/mcpgw/tests/mcptest"
)

func echoAndMath() (*harness.Backend, *harness.Backend) {
	return &harness.Backend{Name: "abuse/echo", Prefix: "echo_", Server: mcptest.NewEchoServer("echo")},
		&harness.Backend{Name: "abuse/math", Prefix: "math_", Server: mcptest.NewMathServer("math")}
}

// post sends one JSON-RPC body on session sid (session era) and returns
// the answer.
func post(t *testing.T, g *harness.Gateway, sid, body string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, g.URL(), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	req.Header.Set("Mcp-Session-Id", sid)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	defer resp.Body.Close()
	return readAnswer(t, resp)
}

func callBody(tool string) string {
	return `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + tool + `"}}`
}

// wantText fails t unless the answer is a result holding text.
func wantText(t *testing.T, what string, a answer, text string) {
	t.Helper()
	m, err := a.message()
	if err != nil || a.status != http.StatusOK || len(m.Result) == 0 || !bytes.Contains(m.Result, []byte(`"text":"`+text+`"`)) {
		t.Errorf("%s: HTTP %d %.300q (%v), want a result with %q", what, a.status, a.body, err, text)
	}
}

func faultBackendKilled(t *testing.T) {
	echo, math := echoAndMath()
	hold := addGate(echo.Server, "hold")
	g := harness.StartGateway(t, echo, math)
	a, b := g.Connect(t, "/mcp", nil, nil), g.Connect(t, "/mcp", nil, nil)
	ctx := callCtx(t)
	want(ctx, t, a, "echo_whoami", "echo")
	want(ctx, t, b, "echo_whoami", "echo")

	streaming := make(chan error, 1)
	go func() { _, err := callErr(ctx, a, "echo_hold"); streaming <- err }()
	hold.waitStarted(t, 1)
	// Stop cuts the connections, then closes the server's sessions, which
	// waits for the tool: it is released once the client saw the cut.
	stopped := make(chan struct{})
	go func() { echo.Stop(); close(stopped) }()
	select {
	case err := <-streaming:
		if err == nil {
			t.Error("the call cut mid-stream succeeded")
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the call cut mid-stream hangs")
	}
	close(hold.release)
	<-stopped
	// The outage: the gateway session and the other backend serve on.
	want(ctx, t, a, "math_whoami", "math")
	want(ctx, t, b, "math_whoami", "math")
	if _, err := callErr(ctx, b, "echo_whoami"); err == nil {
		t.Error("a call to the stopped backend succeeded")
	}
	if names, err := harness.ToolNames(ctx, a); err != nil || !slices.Contains(names, "math_add") {
		t.Errorf("tools/list of the client's gateway session during the outage: %v, %v", names, err)
	}
	echo.Start(t) // same address, no sessions: both backend sessions are stale
	want(ctx, t, a, "echo_whoami", "echo")
	want(ctx, t, b, "echo_whoami", "echo")
}

func faultStorm(t *testing.T) {
	const n = 20
	echo, _ := echoAndMath()
	g := harness.StartGateway(t, echo)
	ctx := callCtx(t)
	var sessions []string
	for range n {
		cs := g.Connect(t, "/mcp", nil, nil)
		want(ctx, t, cs, "echo_whoami", "echo")
		sessions = append(sessions, cs.ID())
	}
	// Counters are exported as streams end, so the baseline is read once
	// every session's first backend session is counted (one each, on this
	// gateway of its own), not while the last first call may still be
	// ending.
	eventually(t, "one backend session per client before the storm", func() error {
		post(t, g, sessions[0], callBody("echo_whoami"))
		if inits := counter(t, g, "mcpgw.session_inits"); inits != n {
			return fmt.Errorf("session_inits %d, want %d", inits, n)
		}
		return nil
	})
	lost0, inits0 := counter(t, g, "mcpgw.sessions_lost"), counter(t, g, "mcpgw.session_inits")
	echo.Stop()
	echo.Start(t)
	var wg sync.WaitGroup
	answers := make([]answer, n)
	for i, sid := range sessions {
		wg.Go(func() { answers[i] = post(t, g, sid, callBody("echo_whoami")) })
	}
	wg.Wait()
	for i, a := range answers {
		wantText(t, "storm call "+sessions[i][:8], a, "echo")
	}
	if g.Envoy.Exited() {
		t.Fatalf("Envoy exited:\n%s", g.Envoy.Logs())
	}
	for i, sid := range sessions {
		wantText(t, "after the storm "+sessions[i][:8], post(t, g, sid, callBody("echo_whoami")), "echo")
	}
	eventually(t, "counters of the storm", func() error {
		post(t, g, sessions[0], callBody("echo_whoami")) // streams export counters as they end
		if lost, inits := counter(t, g, "mcpgw.sessions_lost")-lost0, counter(t, g, "mcpgw.session_inits")-inits0; lost != n || inits != n {
			return fmt.Errorf("sessions_lost +%d, session_inits +%d; want +%d each", lost, inits, n)
		}
		return nil
	})
}

// initGate holds the initialize requests a backend gets once armed.
type initGate struct {
	armed   atomic.Bool
	arrived chan struct{}
	release chan struct{}
}

func (ig *initGate) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && ig.armed.Load() {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			var m struct{ Method string }
			if json.Unmarshal(body, &m) == nil && m.Method == "initialize" {
				ig.arrived <- struct{}{}
				<-ig.release
			}
		}
		next.ServeHTTP(w, r)
	})
}

func faultSlowBackend(t *testing.T) {
	echo, math := echoAndMath()
	block := addGate(echo.Server, "block")
	ig := &initGate{arrived: make(chan struct{}, 8), release: make(chan struct{})}
	sluggish := &harness.Backend{Name: "abuse/sluggish", Prefix: "sluggish_", Server: mcptest.NewEchoServer("sluggish"), Wrap: ig.wrap}
	g := harness.StartGateway(t, echo, math, sluggish)
	a, b := g.Connect(t, "/mcp", nil, nil), g.Connect(t, "/mcp", nil, nil)
	ctx := callCtx(t)
	eventually(t, "the broker lists sluggish", func() error {
		if names, err := harness.ToolNames(ctx, a); err != nil || !slices.Contains(names, "sluggish_whoami") {
			return fmt.Errorf("tools %v, %v", names, err)
		}
		return nil
	})
	ig.armed.Store(true) // from now on the backend holds initialize: a's first call opens a session
	slow := make(chan string, 1)
	go func() { text, _ := callErr(ctx, a, "sluggish_whoami"); slow <- text }()
	held := make(chan string, 3)
	for range 3 {
		go func() { text, _ := callErr(ctx, b, "echo_block"); held <- text }()
	}
	select {
	case <-ig.arrived:
	case <-time.After(15 * time.Second):
		t.Fatal("the router never asked sluggish to initialize")
	}
	block.waitStarted(t, 3)
	// Both held: every other call completes, on the one Envoy worker.
	for range 5 {
		want(ctx, t, b, "echo_whoami", "echo")
		want(ctx, t, a, "math_whoami", "math")
		want(ctx, t, a, "echo_whoami", "echo")
	}
	if n := block.returned.Load(); n != 0 || len(slow) != 0 {
		t.Fatalf("held calls returned before their release (%d, %d)", n, len(slow))
	}
	close(block.release)
	close(ig.release)
	for range 3 {
		if got := <-held; got != "released" {
			t.Errorf("held call = %q, want released", got)
		}
	}
	if got := <-slow; got != "sluggish" {
		t.Errorf("call through a slow initialize = %q, want sluggish", got)
	}
}

func faultBackendDown(t *testing.T) {
	echo, _ := echoAndMath()
	g := harness.StartGateway(t, echo)
	cs := g.Connect(t, "/mcp", nil, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there until ghost starts
	ghost := &harness.Backend{Name: "abuse/ghost", Prefix: "ghost_", Server: mcptest.NewEchoServer("ghost"),
		Addr: addr, URL: "http://" + addr + mcptest.Path}
	g.Backends = append(g.Backends, ghost)
	g.WriteConfig(t)
	fails0 := counter(t, g, "mcpgw.session_init_failures")
	eventually(t, "calls for the down server get backend unavailable", func() error {
		a := post(t, g, cs.ID(), callBody("ghost_whoami"))
		if m, err := a.message(); err != nil || a.status != 200 || m.Error == nil || m.Error.Code != -32603 {
			return fmt.Errorf("HTTP %d %.200q (%v), want 200 with -32603", a.status, a.body, err)
		}
		return nil
	})
	eventually(t, "session_init_failures moves", func() error {
		post(t, g, cs.ID(), callBody("echo_whoami"))
		if n := counter(t, g, "mcpgw.session_init_failures"); n <= fails0 {
			return fmt.Errorf("still %d", n)
		}
		return nil
	})
	want(callCtx(t), t, cs, "echo_whoami", "echo")
	ghost.Start(t)
	eventually(t, "the server, once up, serves", func() error {
		if a := post(t, g, cs.ID(), callBody("ghost_whoami")); !bytes.Contains(a.body, []byte(`"text":"ghost"`)) {
			return fmt.Errorf("HTTP %d %.200q", a.status, a.body)
		}
		return nil
	})
}
