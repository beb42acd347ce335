package abuse

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"slices"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/mcpgw/mcpgw/filter/config"
	"github.com/mcpgw/mcpgw/tests/harness"
	"github.com/mcpgw/mcpgw/tests/mcptest"
)

func faultBroker(t *testing.T) {
	echo, math := echoAndMath()
	g := harness.StartGateway(t, echo, math)
	old := g.Connect(t, "/mcp", nil, nil).ID()
	wantText(t, "before the outage", post(t, g, old, callBody("echo_whoami")), "echo")
	if err := g.StopBroker(); err != nil {
		t.Fatalf("broker: %v", err)
	}
	// The router verifies sessions by their signature: routed calls need
	// no broker, and backend sessions it opened stay usable.
	wantText(t, "routed call during the outage", post(t, g, old, callBody("echo_whoami")), "echo")
	wantText(t, "first routed call to another backend during the outage", post(t, g, old, callBody("math_whoami")), "math")
	if a := post(t, g, old, listTools); a.status < 500 {
		t.Errorf("tools/list with no broker: HTTP %d %.200q, want a 5xx", a.status, a.body)
	}
	if err := g.StartBroker(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the broker serves again", func() error {
		resp, err := http.Get("http://" + g.BrokerAddr + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("healthz %d", resp.StatusCode)
		}
		return nil
	})
	// The new broker does not know the old session: a JSON-RPC 404 tells
	// the client to initialize again.
	a := post(t, g, old, listTools)
	if m, err := a.message(); err != nil || a.status != http.StatusNotFound || m.Error == nil || m.Error.Code != -32600 || string(m.ID) != "2" {
		t.Errorf("old session's tools/list: HTTP %d %.200q (%v), want 404 with -32600 and id 2", a.status, a.body, err)
	}
	ctx := callCtx(t)
	cs := g.Connect(t, "/mcp", nil, nil)
	eventually(t, "a new session lists both servers (the broker reconnects to them)", func() error {
		if names, err := harness.ToolNames(ctx, cs); err != nil || !slices.Contains(names, "echo_whoami") || !slices.Contains(names, "math_add") {
			return fmt.Errorf("tools %v, %v", names, err)
		}
		return nil
	})
	want(ctx, t, cs, "math_whoami", "math")
}

// reloadErrors returns the router's and the broker's reload error counts.
func reloadErrors(t *testing.T, g *harness.Gateway) (int64, int64) {
	t.Helper()
	return counter(t, g, "mcpgw.config_reload_errors"), brokerMetric(t, g, "mcpgw_broker_config_reload_errors_total")
}

// waitReloadErrors waits until both counts passed router0 and broker0;
// sid's calls end streams, which is when Envoy's counters are exported.
func waitReloadErrors(t *testing.T, g *harness.Gateway, sid string, router0, broker0 int64) {
	t.Helper()
	eventually(t, "both reload error counters move", func() error {
		post(t, g, sid, callBody("echo_whoami"))
		if r, b := reloadErrors(t, g); r <= router0 || b <= broker0 {
			return fmt.Errorf("router %d, broker %d (were %d, %d)", r, b, router0, broker0)
		}
		return nil
	})
}

// writeAtomically writes b to path by renaming a temporary file over it.
func writeAtomically(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

// wantServing checks that sid's calls reach echo and math, and that its
// tools/list holds both.
func wantServing(t *testing.T, g *harness.Gateway, sid, what string) {
	t.Helper()
	wantText(t, what+": echo", post(t, g, sid, callBody("echo_whoami")), "echo")
	wantText(t, what+": math", post(t, g, sid, callBody("math_whoami")), "math")
	if a := post(t, g, sid, listTools); !containsAll(a.body, "echo_whoami", "math_add") {
		t.Errorf("%s: tools/list %.300q", what, a.body)
	}
}

func containsAll(body []byte, subs ...string) bool {
	for _, s := range subs {
		if !bytesContains(body, s) {
			return false
		}
	}
	return true
}

func bytesContains(b []byte, s string) bool { return bytes.Contains(b, []byte(s)) }

// unknownTool waits until a call of tool gets the router's -32602.
func unknownTool(t *testing.T, g *harness.Gateway, sid, tool string) {
	t.Helper()
	eventually(t, tool+" is unknown", func() error {
		a := post(t, g, sid, callBody(tool))
		if m, err := a.message(); err != nil || m.Error == nil || m.Error.Code != -32602 {
			return fmt.Errorf("HTTP %d %.200q (%v)", a.status, a.body, err)
		}
		return nil
	})
}

func faultConfigCorrupted(t *testing.T) {
	echo, math := echoAndMath()
	g := harness.StartGateway(t, echo, math)
	sid := g.Connect(t, "/mcp", nil, nil).ID()
	wantServing(t, g, sid, "before")
	r0, b0 := reloadErrors(t, g)
	writeAtomically(t, g.ConfigPath, []byte("version: mcpgw/v1\nservers: [ {{{ not yaml\n"))
	waitReloadErrors(t, g, sid, r0, b0)
	wantServing(t, g, sid, "with a corrupted file")
	g.Backends = g.Backends[:1] // the next good file, without math, applies
	g.WriteConfig(t)
	unknownTool(t, g, sid, "math_whoami")
	wantText(t, "after the good file", post(t, g, sid, callBody("echo_whoami")), "echo")
}

func faultConfigHalfWritten(t *testing.T) {
	echo, math := echoAndMath()
	third := &harness.Backend{Name: "abuse/third", Prefix: "third_", Server: mcptest.NewEchoServer("third")}
	third.Start(t)
	g := harness.StartGateway(t, echo, math)
	sid := g.Connect(t, "/mcp", nil, nil).ID()
	g.Backends = append(g.Backends, third)
	full, err := yaml.Marshal(g.Config())
	if err != nil {
		t.Fatal(err)
	}
	half := full[:len(full)/2]
	if _, err := config.Parse(half); err == nil {
		t.Fatalf("half of the file is a valid config; the fault needs an invalid one:\n%s", half)
	}
	r0, b0 := reloadErrors(t, g)
	if err := os.WriteFile(g.ConfigPath, half, 0o644); err != nil { // in place, as a careless writer would
		t.Fatal(err)
	}
	waitReloadErrors(t, g, sid, r0, b0)
	wantServing(t, g, sid, "with half a file")
	if a := post(t, g, sid, callBody("third_whoami")); bytesContains(a.body, `"text":"third"`) {
		t.Error("a server of the half-written file is routed")
	}
	if err := os.WriteFile(g.ConfigPath, full, 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the completed file applies", func() error {
		a := post(t, g, sid, callBody("third_whoami"))
		if l := post(t, g, sid, listTools); !bytesContains(a.body, `"text":"third"`) || !bytesContains(l.body, "third_whoami") {
			return fmt.Errorf("call %.200q, list %.200q", a.body, l.body)
		}
		return nil
	})
	wantServing(t, g, sid, "after the complete file")
}

func faultServerRemoved(t *testing.T) {
	echo, math := echoAndMath()
	block := addGate(echo.Server, "block")
	g := harness.StartGateway(t, echo, math)
	a := g.Connect(t, "/mcp", nil, nil)
	sid := g.Connect(t, "/mcp", nil, nil).ID()
	ctx := callCtx(t)
	want(ctx, t, a, "echo_whoami", "echo")
	inFlight := make(chan string, 1)
	go func() { text, _ := callErr(ctx, a, "echo_block"); inFlight <- text }()
	block.waitStarted(t, 1)
	g.Backends = g.Backends[1:] // math only
	g.WriteConfig(t)
	unknownTool(t, g, sid, "echo_whoami")
	eventually(t, "echo leaves tools/list", func() error {
		if l := post(t, g, sid, listTools); bytesContains(l.body, "echo_whoami") || !bytesContains(l.body, "math_add") {
			return fmt.Errorf("tools/list %.300q", l.body)
		}
		return nil
	})
	wantText(t, "math while echo is removed", post(t, g, sid, callBody("math_whoami")), "math")
	close(block.release)
	if got := <-inFlight; got != "released" {
		t.Errorf("the call in flight when its server was removed = %q, want released", got)
	}
	g.Backends = []*harness.Backend{echo, math}
	g.WriteConfig(t)
	eventually(t, "echo is back", func() error {
		if a := post(t, g, sid, callBody("echo_whoami")); !bytesContains(a.body, `"text":"echo"`) {
			return fmt.Errorf("%.200q", a.body)
		}
		return nil
	})
}

func faultOverlappingPrefixes(t *testing.T) {
	echo, math := echoAndMath()
	g := harness.StartGateway(t, echo, math)
	sid := g.Connect(t, "/mcp", nil, nil).ID()
	wantServing(t, g, sid, "before")
	c := g.Config()
	c.Servers[1].Prefix = "echo_x_" // overlaps echo_
	b, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	r0, b0 := reloadErrors(t, g)
	writeAtomically(t, g.ConfigPath, b)
	waitReloadErrors(t, g, sid, r0, b0)
	wantServing(t, g, sid, "after the overlapping config")
}
