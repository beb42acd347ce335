package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgw/mcpgw/broker/upstream"
	"github.com/mcpgw/mcpgw/filter/config"
	"github.com/mcpgw/mcpgw/tests/mcptest"
)

func TestApplyAddRemoveRename(t *testing.T) {
	echo := config.Server{Name: "echo", URL: serveBackend(t, mcptest.NewEchoServer("e1")), Prefix: "echo_"}
	math := config.Server{Name: "math", URL: serveBackend(t, mcptest.NewMathServer("m1")), Prefix: "math_"}
	h := newHarness(t, testConfig(t, echo))
	h.waitState(t, "echo", upstream.StateReady)
	notified := make(chan struct{}, 10)
	c := connect(t, h.url, &mcp.ClientOptions{
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) { notified <- struct{}{} },
	})
	<-c.streamUp

	// Added: connected and its tools exposed.
	if err := h.b.Apply(testConfig(t, echo, math)); err != nil {
		t.Fatal(err)
	}
	waitNotified(t, notified)
	c.waitTools(t, "math added", func(n []string) bool { return slices.Contains(n, "math_add") })

	// Renamed: same connection, new names.
	before := h.b.upstream("math")
	math.Prefix = "calc_"
	if err := h.b.Apply(testConfig(t, echo, math)); err != nil {
		t.Fatal(err)
	}
	c.waitTools(t, "math renamed", func(n []string) bool {
		return slices.Contains(n, "calc_add") && !slices.Contains(n, "math_add")
	})
	if h.b.upstream("math") != before {
		t.Error("a prefix change reconnected the server")
	}
	if s := h.serverState("math"); s.Prefix != "calc_" {
		t.Errorf("status prefix = %q", s.Prefix)
	}

	// Removed: its tools go, and it leaves /status.
	if err := h.b.Apply(testConfig(t, echo)); err != nil {
		t.Fatal(err)
	}
	c.waitTools(t, "math removed", func(n []string) bool { return !slices.Contains(n, "calc_add") })
	if st := h.b.Status(); len(st.Servers) != 1 || st.Servers[0].Name != "echo" {
		t.Errorf("status after removal = %+v", st)
	}
}

func TestApplyURLChangeReconnects(t *testing.T) {
	srv := config.Server{Name: "svc", URL: serveBackend(t, mcptest.NewEchoServer("first")), Prefix: "svc_"}
	h := newHarness(t, testConfig(t, srv))
	h.waitState(t, "svc", upstream.StateReady)
	c := connect(t, h.url, nil)

	srv.URL = serveBackend(t, mcptest.NewMathServer("second"))
	if err := h.b.Apply(testConfig(t, srv)); err != nil {
		t.Fatal(err)
	}
	c.waitTools(t, "the new backend's tools", func(n []string) bool {
		return slices.Equal(n, []string{"svc_add", "svc_whoami"})
	})
	res, err := c.CallTool(t.Context(), &mcp.CallToolParams{Name: "svc_whoami"})
	if err != nil || textOf(t, res) != "second" {
		t.Fatalf("svc_whoami = %v, %v", res, err)
	}
}

// A session key changed with no grace period ("0s", as after a leak):
// the old sessions end at once.
func TestSessionKeyRotation(t *testing.T) {
	h := twoBackends(t)
	c := connect(t, h.url, nil)
	oldID := c.ID()

	t.Setenv(keyEnv+"_NEW", strings.Repeat("n", 32))
	cfg := testConfig(t)
	cfg.Gateway.SessionKey.Env = keyEnv + "_NEW"
	cfg.Gateway.SessionKeyGracePeriod = "0s"
	if err := h.b.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	if resp := post(t, h.url, oldID, listTools); resp.StatusCode != http.StatusNotFound {
		t.Errorf("old session after rotation: status %d, want 404", resp.StatusCode)
	}
	eventually(t, "old sessions closed", func() bool {
		for range h.b.Server().Sessions() {
			return false
		}
		return true
	})
	c2 := connect(t, h.url, nil)
	if c2.ID() == oldID || !valid(h.b.codec.Load(), c2.ID()) {
		t.Errorf("new session id %q", c2.ID())
	}

	// An unresolvable key keeps the current one and is reported.
	cfg.Gateway.SessionKey.Env = keyEnv + "_UNSET"
	if err := h.b.Apply(cfg); err == nil || !strings.Contains(err.Error(), "sessionKey") {
		t.Errorf("Apply with an unset key: %v", err)
	}
	if resp := post(t, h.url, c2.ID(), listTools); resp.StatusCode != http.StatusOK {
		t.Errorf("session after a failed rotation: status %d", resp.StatusCode)
	}
}

// writeConfig writes a config file the way the controller does: a new file
// renamed over the old one.
func writeConfig(t *testing.T, path string, servers ...config.Server) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "version: %s\ngateway:\n  sessionKey:\n    env: %s\nservers:\n", config.Version, keyEnv)
	if len(servers) == 0 {
		b.WriteString("  []\n")
	}
	for _, s := range servers {
		fmt.Fprintf(&b, "- name: %s\n  url: %s\n  hostname: backend.test\n  prefix: %s\n", s.Name, s.URL, s.Prefix)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestRunFollowsConfigFile(t *testing.T) {
	t.Setenv(keyEnv, testKey)
	path := filepath.Join(t.TempDir(), "config.yaml")
	echo := config.Server{Name: "echo", URL: serveBackend(t, mcptest.NewEchoServer("e1")), Prefix: "echo_"}
	math := config.Server{Name: "math", URL: serveBackend(t, mcptest.NewMathServer("m1")), Prefix: "math_"}
	writeConfig(t, path, echo)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(t.Context())
	ran := make(chan error, 1)
	go func() {
		ran <- Run(ctx, Options{
			ConfigPath: path, Listener: ln, Logger: testLogger(), Upstream: fastUpstream,
			Watch: config.WatchOptions{Debounce: 10 * time.Millisecond, Resync: -1},
		})
	}()
	eventually(t, "healthz", func() bool { code, _ := get(t, base+"/healthz"); return code == http.StatusOK })
	c := connect(t, base+"/mcp", nil)
	c.waitTools(t, "echo tools", func(n []string) bool { return slices.Contains(n, "echo_echo") })

	writeConfig(t, path, echo, math)
	c.waitTools(t, "math added", func(n []string) bool { return slices.Contains(n, "math_add") })
	writeConfig(t, path, math)
	c.waitTools(t, "echo removed", func(n []string) bool {
		return slices.Contains(n, "math_add") && !slices.Contains(n, "echo_echo")
	})

	// An invalid file keeps the last good config.
	if err := os.WriteFile(path, []byte("version: nope\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, "reload error counted", func() bool {
		_, body := get(t, base+"/metrics")
		return strings.Contains(body, "mcpgw_broker_config_reload_errors_total 1\n")
	})
	if n := c.toolNames(t); !slices.Contains(n, "math_add") {
		t.Errorf("tools after a bad file = %v", n)
	}

	cancel()
	select {
	case err := <-ran:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestRunRejectsBadStart(t *testing.T) {
	if err := Run(t.Context(), Options{}); err == nil {
		t.Error("Run without a config path succeeded")
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	writeConfig(t, path) // the key's variable is not set
	err := Run(t.Context(), Options{ConfigPath: path, Addr: "127.0.0.1:0"})
	if err == nil || !strings.Contains(err.Error(), "sessionKey") {
		t.Errorf("Run with an unresolvable key = %v", err)
	}
	err = Run(t.Context(), Options{ConfigPath: filepath.Join(t.TempDir(), "missing.yaml")})
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Run with a missing file = %v", err)
	}
}

func TestSameConnection(t *testing.T) {
	cred := func(header, env string) *config.Credential {
		return &config.Credential{Header: header, SecretRef: config.SecretRef{Env: env}}
	}
	base := config.Server{Name: "s", URL: "http://a/mcp", Prefix: "p_", Hostname: "a", Credential: cred("", "TOKEN")}
	for _, tc := range []struct {
		name string
		edit func(*config.Server)
		same bool
	}{
		{"unchanged", func(*config.Server) {}, true},
		{"prefix and hostname", func(s *config.Server) { s.Prefix, s.Hostname = "q_", "b" }, true},
		{"url", func(s *config.Server) { s.URL = "http://b/mcp" }, false},
		{"credential removed", func(s *config.Server) { s.Credential = nil }, false},
		{"credential header", func(s *config.Server) { s.Credential = cred("X-Key", "TOKEN") }, false},
		{"credential source", func(s *config.Server) { s.Credential = cred("", "OTHER") }, false},
	} {
		s := base
		tc.edit(&s)
		if got := sameConnection(base, s); got != tc.same {
			t.Errorf("%s: sameConnection = %v, want %v", tc.name, got, tc.same)
		}
	}
}

// TestApplyAliases: aliases appear and go with config reloads and with the
// backend's own list, each time with list_changed; a call through the broker
// reaches the target, also when the alias takes a name of the unprefixed
// server, which is then not listed for that server.
func TestApplyAliases(t *testing.T) {
	echoSrv := mcptest.NewEchoServer("e1")
	echo := config.Server{Name: "echo", URL: serveBackend(t, echoSrv), Prefix: "echo_"}
	math := config.Server{Name: "math", URL: serveBackend(t, mcptest.NewMathServer("m1")), Prefix: ""}
	h := newHarness(t, testConfig(t, echo, math))
	h.waitState(t, "echo", upstream.StateReady)
	h.waitState(t, "math", upstream.StateReady)
	notified := make(chan struct{}, 10)
	c := connect(t, h.url, &mcp.ClientOptions{
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) { notified <- struct{}{} },
	})
	<-c.streamUp
	whoami := func(name string) string {
		t.Helper()
		res, err := c.CallTool(t.Context(), &mcp.CallToolParams{Name: name})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return textOf(t, res)
	}

	echo.Aliases = map[string]string{"who": "whoami", "whoami": "whoami", "later": "late", "hello": "greet"}
	if err := h.b.Apply(testConfig(t, echo, math)); err != nil {
		t.Fatal(err)
	}
	waitNotified(t, notified)
	c.waitTools(t, "aliases added", func(n []string) bool { return slices.Contains(n, "who") })
	if got, want := c.toolNames(t), []string{"add", "echo_echo", "echo_whoami", "who", "whoami"}; !slices.Equal(got, want) {
		t.Errorf("tools = %v, want %v", got, want)
	}
	if got := whoami("who"); got != "e1" {
		t.Errorf("who -> %q, want e1", got)
	}
	if got := whoami("whoami"); got != "e1" {
		t.Errorf("whoami, an alias of echo's -> %q, want e1", got)
	}
	prompts, err := c.ListPrompts(t.Context(), nil)
	if err != nil || len(prompts.Prompts) != 2 || prompts.Prompts[1].Name != "hello" {
		t.Errorf("prompts = %v, %v; want echo_greet and hello", prompts, err)
	}
	if res, err := c.GetPrompt(t.Context(), &mcp.GetPromptParams{Name: "hello", Arguments: map[string]string{"who": "x"}}); err != nil || res.Description != "greeting from e1" {
		t.Errorf("hello = %v, %v", res, err)
	}

	// The backend adds the target of "later".
	mcptest.AddStaticTool(echoSrv, "late", "late")
	c.waitTools(t, "alias of a new tool", func(n []string) bool { return slices.Contains(n, "later") })

	// The aliases go: math gets its name back.
	echo.Aliases = nil
	if err := h.b.Apply(testConfig(t, echo, math)); err != nil {
		t.Fatal(err)
	}
	c.waitTools(t, "aliases removed", func(n []string) bool { return !slices.Contains(n, "who") })
	if got := whoami("whoami"); got != "m1" {
		t.Errorf("whoami after the alias went -> %q, want m1", got)
	}
}
