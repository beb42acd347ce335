package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgw/mcpgw/broker"
	"github.com/mcpgw/mcpgw/filter/config"
	"github.com/mcpgw/mcpgw/internal/testenv"
	"github.com/mcpgw/mcpgw/tests/harness"
	"github.com/mcpgw/mcpgw/tests/mcptest"
)

// Environment: MCPGW_ENVOY, MCPGW_DYNMOD_DIR, CI as for tests/e2e.

// variant is one client.mjs configuration (see its header).
type variant struct {
	name string
	// wantProtocol is the protocol version the client must end up with;
	// 2026-07-28 and later are the stateless era (no session, no GET stream).
	wantProtocol string
	// gap, if set, says why the variant does not work through the gateway
	// yet: its problems are logged, not reported, and the test fails when
	// there are none left (the gap is closed: drop this field).
	gap string
}

var variants = []variant{
	// @modelcontextprotocol/sdk 1.x: always offers its latest session-era
	// revision (2025-11-25); it has no option to choose another one and
	// knows nothing of 2026-07-28.
	{name: "v1", wantProtocol: "2025-11-25"},
	// @modelcontextprotocol/client 2.x, default negotiation ("legacy":
	// initialize with its latest session-era revision).
	{name: "v2", wantProtocol: "2025-11-25"},
	// ... with the session era pinned to an older revision
	// (supportedProtocolVersions).
	{name: "v2-session", wantProtocol: "2025-06-18"},
	// ... versionNegotiation auto: probes server/discover, which the
	// gateway answers with 2026-07-28, so the client goes stateless. The
	// stateless variants run against backends that serve that era
	// (config.Server.Stateless), so that the router routes their calls:
	// to session-era backends they would go through the broker's own
	// backend sessions (see README, "both eras").
	{name: "v2-auto", wantProtocol: "2026-07-28"},
	// ... versionNegotiation pinned to 2026-07-28.
	{name: "v2-2026", wantProtocol: "2026-07-28"},
}

func TestTypeScriptClient(t *testing.T) {
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	envoyBin, err := harness.FindEnvoy(root)
	testenv.Require(t, err)
	npm, err := install(root)
	testenv.Require(t, err)
	moduleDir := harness.Module(t)
	script := filepath.Join(root, "tests", "interop", "client.mjs")

	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			g := startGateway(t, root, envoyBin, moduleDir, v.stateless())
			start := time.Now()
			s := runClient(t, npm, script, g, v.name)
			t.Logf("%s: %s %s, protocol %s, %s", v.name, s.SDK, s.SDKVersion, s.ProtocolVersion, time.Since(start).Round(time.Millisecond))
			problems := checkSummary(s, v)
			problems = append(problems, checkRouted(g, s)...)
			switch {
			case v.gap == "":
				for _, p := range problems {
					t.Error(p)
				}
			case len(problems) == 0:
				t.Errorf("known gap closed (%s): make %s a required variant (drop its gap)", v.gap, v.name)
			default:
				t.Logf("known gap: %s; %d problems:\n  %s", v.gap, len(problems), strings.Join(problems, "\n  "))
			}
		})
	}
}

// stateless reports whether the variant's client speaks the stateless era.
func (v variant) stateless() bool { return v.wantProtocol >= "2026-07-28" }

// checkRouted returns a problem unless the client's tools/call and
// prompts/get took the router's path (harness.Stack.CheckRouted): the
// broker's fallback would give the client the same answers.
func checkRouted(g *gateway, s *summary) []string {
	var calls int64
	for _, made := range []bool{s.Echo != nil, s.Add != nil, s.Prompt != nil} {
		if made {
			calls++
		}
	}
	if calls == 0 {
		return []string{"the client made no tools/call or prompts/get"}
	}
	if _, err := g.stack.CheckRouted(calls); err != nil {
		return []string{err.Error()}
	}
	return nil
}

// gateway is Envoy + router + broker in front of an echo and a math server.
type gateway struct {
	url        string
	echo, math *mcp.Server
	stack      *harness.Stack
}

// startGateway starts the gateway and its backends; stateless serves them
// in the go-sdk's stateless mode (the 2026-07-28 era), declared so in the
// config.
func startGateway(t *testing.T, root, envoyBin, moduleDir string, stateless bool) *gateway {
	t.Helper()
	g := &gateway{echo: mcptest.NewEchoServer("echo"), math: mcptest.NewMathServer("math")}
	var servers []config.Server
	for _, b := range []struct {
		name, prefix string
		srv          *mcp.Server
	}{{"echo", "echo_", g.echo}, {"math", "math_", g.math}} {
		url, stop, err := mcptest.ServeOptions(context.Background(), "127.0.0.1:0", b.srv,
			&mcp.StreamableHTTPOptions{Stateless: stateless})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(stop)
		// The :authority is the backend's own address: go-sdk servers bound
		// to loopback refuse other Host headers (DNS-rebinding protection).
		addr := strings.TrimSuffix(strings.TrimPrefix(url, "http://"), mcptest.Path)
		servers = append(servers, config.Server{Name: "interop/" + b.name, URL: url, Hostname: addr, Prefix: b.prefix,
			Stateless: stateless})
	}
	dir := t.TempDir()
	configPath := filepath.Join(dir, "config.yaml")
	if err := harness.WriteConfig(configPath, servers); err != nil {
		t.Fatal(err)
	}
	stack, err := harness.StartStack(context.Background(), harness.StackOptions{
		Root: root, EnvoyBinary: envoyBin, ModuleDir: moduleDir,
		ConfigPath: configPath, WorkDir: dir, EnvoyLogLevel: "info",
		WaitServers: true, // the client lists the tools first
	})
	if err != nil {
		t.Fatal(err)
	}
	g.stack, g.url = stack, stack.URL()
	t.Cleanup(func() {
		if err := stack.Close(); err != nil {
			t.Errorf("stack close: %v", err)
		}
		if t.Failed() {
			t.Logf("envoy output:\n%s", stack.Envoy.Logs())
		}
	})
	return g
}

// summary is client.mjs's last line.
type summary struct {
	Event            string          `json:"event"`
	Variant          string          `json:"variant"`
	SDK              string          `json:"sdk"`
	SDKVersion       string          `json:"sdkVersion"`
	Connected        bool            `json:"connected"`
	ProtocolVersion  string          `json:"protocolVersion"`
	ProtocolEra      string          `json:"protocolEra"` // "" for null
	SessionID        bool            `json:"sessionId"`
	ServerInfo       *implementation `json:"serverInfo"`
	ToolsListChanged bool            `json:"toolsListChanged"`
	Tools            []string        `json:"tools"`
	Echo             *toolResult     `json:"echo"`
	Add              *toolResult     `json:"add"`
	Prompts          []string        `json:"prompts"`
	Prompt           *struct {
		Description, Role, Text string
	} `json:"prompt"`
	Resources []string `json:"resources"`
	Resource  *struct {
		URI      string `json:"uri"`
		MIMEType string `json:"mimeType"`
		Text     string `json:"text"`
	} `json:"resource"`
	NotificationStreamOpen bool `json:"notificationStreamOpen"`
	ListChanged            *struct {
		Notified bool     `json:"notified"`
		Err      *string  `json:"err"`
		Tools    []string `json:"tools"`
	} `json:"listChanged"`
	ToolsAfter []string          `json:"toolsAfter"`
	HTTP       []string          `json:"http"`
	Errors     map[string]string `json:"errors"`
}

type implementation struct{ Name, Version string }

type toolResult struct {
	IsError    bool           `json:"isError"`
	Text       string         `json:"text"`
	Structured map[string]any `json:"structured"`
}

// addedTool is what the test adds to the echo server once the client is
// ready; the gateway lists it as "echo_" + addedTool.
const addedTool = "added"

// runClient runs client.mjs with the pinned Node against g, adds a tool to
// the echo server when the script says it is ready, and returns its summary.
func runClient(t *testing.T, npm, script string, g *gateway, name string) *summary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(npm, harness.NodeBin), script, g.url, name)
	cmd.Env = append(os.Environ(), "MCPGW_INTEROP_NODE_MODULES="+filepath.Join(npm, "node_modules"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var last []byte
	var lines []string
	sc := bufio.NewScanner(stdout)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		lines = append(lines, string(line))
		var ev struct{ Event string }
		if json.Unmarshal(line, &ev) != nil {
			continue
		}
		switch ev.Event {
		case "ready":
			mcptest.AddStaticTool(g.echo, addedTool, "added at run time")
		case "summary":
			last = slices.Clone(line)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("client.mjs %s: %v\nstdout:\n%s\nstderr:\n%s", name, err, strings.Join(lines, "\n"), stderr.String())
	}
	if last == nil {
		t.Fatalf("client.mjs %s printed no summary\nstdout:\n%s\nstderr:\n%s", name, strings.Join(lines, "\n"), stderr.String())
	}
	var s summary
	if err := json.Unmarshal(last, &s); err != nil {
		t.Fatalf("summary: %v\n%s", err, last)
	}
	t.Logf("summary: %s", last)
	if stderr.Len() > 0 {
		t.Logf("client.mjs stderr:\n%s", stderr.String())
	}
	return &s
}

// checkSummary returns what is wrong with s, one line per problem.
func checkSummary(s *summary, v variant) []string {
	var problems []string
	errorf := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	steps := slices.Sorted(maps.Keys(s.Errors))
	for _, step := range steps {
		errorf("%s failed: %s", step, s.Errors[step])
	}
	if s.Variant != v.name {
		errorf("variant %q, want %q", s.Variant, v.name)
	}
	if s.SDKVersion == "" {
		errorf("no SDK version in the summary")
	}
	if !s.Connected {
		return append(problems, "not connected")
	}
	if s.ProtocolVersion != v.wantProtocol {
		errorf("protocol version %q, want %q", s.ProtocolVersion, v.wantProtocol)
	}
	if stateless := v.wantProtocol >= "2026-07-28"; s.SessionID == stateless {
		errorf("Mcp-Session-Id present: %v, want %v (protocol %s)", s.SessionID, !stateless, v.wantProtocol)
	}
	if s.ServerInfo == nil || s.ServerInfo.Name != "mcpgw" || s.ServerInfo.Version != broker.Version {
		errorf("server info %+v, want mcpgw %s", s.ServerInfo, broker.Version)
	}
	// v2 reports the era it negotiated; v1 predates eras.
	wantEra := ""
	if strings.HasPrefix(v.name, "v2") {
		wantEra = "legacy"
		if v.wantProtocol >= "2026-07-28" {
			wantEra = "modern"
		}
	}
	if s.ProtocolEra != wantEra {
		errorf("protocol era %q, want %q", s.ProtocolEra, wantEra)
	}
	if !s.ToolsListChanged {
		errorf("the gateway does not advertise tools.listChanged")
	}
	wantTools := []string{"echo_echo", "echo_whoami", "math_add", "math_whoami"}
	if !slices.Equal(s.Tools, wantTools) {
		errorf("tools %v, want %v", s.Tools, wantTools)
	}
	const echoText = "hello from typescript"
	if e := s.Echo; e == nil || e.IsError || e.Text != echoText || e.Structured["text"] != echoText {
		errorf("echo_echo result %+v, want text %q (also structured)", e, echoText)
	}
	if a := s.Add; a == nil || a.IsError || a.Text != "5" || a.Structured["sum"] != 5.0 {
		errorf("math_add result %+v, want text \"5\" and structured sum 5", a)
	}
	if want := []string{"echo_greet"}; !slices.Equal(s.Prompts, want) {
		errorf("prompts %v, want %v", s.Prompts, want)
	}
	if p := s.Prompt; p == nil || p.Description != "greeting from echo" || p.Role != "user" || p.Text != "Say hello to gopher" {
		errorf("echo_greet prompt %+v, want description %q, role user, text %q", p, "greeting from echo", "Say hello to gopher")
	}
	if !slices.Contains(s.Resources, mcptest.PiURI) {
		errorf("resources %v, want %s among them", s.Resources, mcptest.PiURI)
	}
	if r := s.Resource; r == nil || r.URI != mcptest.PiURI || r.MIMEType != "text/plain" || r.Text != mcptest.PiText {
		errorf("resource %+v, want %s text/plain %q", r, mcptest.PiURI, mcptest.PiText)
	}
	if !s.NotificationStreamOpen {
		errorf("the client's notification stream (GET, or subscriptions/listen) was not opened")
	}
	wantAfter := slices.Clone(wantTools)
	wantAfter = append(wantAfter, "echo_"+addedTool)
	slices.Sort(wantAfter)
	if lc := s.ListChanged; lc == nil || !lc.Notified || lc.Err != nil || !slices.Equal(lc.Tools, wantAfter) {
		errorf("list_changed %+v, want a notification and the re-fetched tools %v", lc, wantAfter)
	}
	if !slices.Equal(s.ToolsAfter, wantAfter) {
		errorf("tools after list_changed %v, want %v", s.ToolsAfter, wantAfter)
	}
	return problems
}
