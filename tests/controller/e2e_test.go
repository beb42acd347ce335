package controller_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mcpgw/mcpgw/controller"
	"github.com/mcpgw/mcpgw/controller/api/v1alpha1"
	"github.com/mcpgw/mcpgw/filter/config"
	"github.com/mcpgw/mcpgw/internal/testenv"
	"github.com/mcpgw/mcpgw/tests/harness"
	"github.com/mcpgw/mcpgw/tests/mcptest"
)

// TestControllerDrivesGateway runs the whole product with no fake in it: a
// real kube-apiserver and etcd, the controller writing its config file, and
// the gateway reading that file (a real Envoy with the router module, and
// the broker). A go-sdk client talks to Envoy only. Registering a server,
// adding a virtual server, rotating the server's credential, disabling and
// deleting the registration each change what the client can list and call
// (or what the backend gets), with nothing restarted, and the statuses tell
// the broker's own view.
//
// The backend is a go-sdk server on loopback. The controller maps the
// HTTPRoute's Service to it with Options.ServiceAddresses, the option for
// running a gateway outside the cluster (cluster DNS does not resolve
// here, as it does not on a developer's machine).
func TestControllerDrivesGateway(t *testing.T) {
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	envoyBin, err := harness.FindEnvoy(root)
	testenv.Require(t, err)
	moduleDir := harness.Module(t)
	_, cfg := startAPIServer(t)
	c, err := client.New(cfg, client.Options{Scheme: controller.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, cfg: cfg, c: c, dir: t.TempDir(), logs: &syncBuffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	seen := &mcptest.Initializes{}
	backendURL, stopBackend, err := mcptest.ServeRecording(ctx, "127.0.0.1:0", mcptest.NewEchoServer("weather"), seen)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stopBackend)
	backendAddr := strings.TrimSuffix(strings.TrimPrefix(backendURL, "http://"), mcptest.Path)

	// The broker's address is needed before the stack starts: the
	// controller reads its /status.
	brokerLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(e.dir, "session-key")
	if err := harness.WriteSessionKey(keyFile); err != nil {
		t.Fatal(err)
	}
	o := controller.Options{
		RestConfig:       cfg,
		OutputFile:       filepath.Join(e.dir, "config.yaml"),
		CredentialsDir:   filepath.Join(e.dir, "credentials"),
		Gateway:          config.Gateway{SessionKey: config.SecretRef{File: keyFile}},
		ServiceAddresses: map[string]string{"team-a/weather:8080": backendAddr},
		BrokerStatusURL:  "http://" + brokerLn.Addr().String() + "/status", StatusInterval: 200 * time.Millisecond,
		Resync: time.Minute, MetricsAddr: "0", ProbeAddr: "0",
		Logger: newLogger(e.logs),
	}
	e.startControllerWith(o)
	eventually(t, "first config file", func() error { _, err := os.Stat(o.OutputFile); return err })

	start := time.Now()
	stack, err := harness.StartStack(ctx, harness.StackOptions{
		Root: root, EnvoyBinary: envoyBin, ModuleDir: moduleDir, ConfigPath: o.OutputFile,
		WorkDir: e.dir, BrokerListener: brokerLn, Logger: newLogger(e.logs), EnvoyLogLevel: "info",
	})
	if err != nil {
		brokerLn.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := stack.Close(); err != nil {
			t.Errorf("stack: %v", err)
		}
		if t.Failed() {
			t.Logf("envoy output:\n%s", stack.Envoy.Logs())
			t.Logf("controller and broker logs:\n%s", e.logs.String())
		}
	})
	t.Logf("Envoy and broker up in %v", time.Since(start).Round(time.Millisecond))
	pid := stack.Envoy.PID()
	g := &gatewayClient{t: t, base: strings.TrimSuffix(stack.URL(), config.EndpointPath), envoy: stack.Envoy}
	cs := g.connect(config.EndpointPath)
	if names, err := toolNames(cs); err != nil || len(names) != 0 {
		t.Fatalf("tools before any registration: %v, %v", names, err)
	}

	// Register: the tools become listable, and callable through the router.
	e.createNamespace("team-a")
	start = time.Now()
	e.create(httpRoute("team-a", "weather", "weather.mcp.local", "weather", 8080))
	e.create(credentialSecret("team-a", "weather-token", true, map[string]string{"token": "Bearer one"}))
	reg := registration("team-a", "weather", "weather", "weather_")
	reg.Spec.CredentialRef = &v1alpha1.CredentialReference{Name: "weather-token", Key: "token"}
	e.create(reg)
	g.waitTools(cs, "registered tools listed", []string{"weather_echo", "weather_whoami"})
	routed := g.routedCalls()
	// The router may load the file a moment after the broker.
	eventually(t, "weather_whoami callable", func() error { return g.call(cs, "weather_whoami", nil, "weather") })
	t.Logf("registration listable and callable %v after it was created", time.Since(start).Round(time.Millisecond))
	if err := g.call(cs, "weather_echo", map[string]any{"text": "through envoy"}, "through envoy"); err != nil {
		t.Error(err)
	}
	if n := g.routedCalls() - routed; n < 2 {
		t.Errorf("Envoy routed %d requests to the backend, want >= 2: the calls did not take the router's path", n)
	}
	got := e.waitRegistration("team-a", "weather", accepted(metav1.ConditionTrue, v1alpha1.ReasonAccepted),
		ready(metav1.ConditionTrue, v1alpha1.ReasonBackendReady))
	if got.Status.Tools == nil || *got.Status.Tools != 2 || got.Status.URL != backendURL || got.Status.Hostname != backendAddr {
		t.Errorf("status = %+v (tools %v)", got.Status, got.Status.Tools)
	}
	t.Logf("Ready: %s", condition(got, v1alpha1.ConditionReady).Message)

	g.checkVirtualServer(e)
	g.checkCredentialRotation(e, seen, o.OutputFile)

	// Disable: the tools disappear, and the router refuses their calls.
	update(e, reg, func(r *v1alpha1.MCPServerRegistration) { r.Spec.Enabled = ptr.To(false) })
	g.waitTools(cs, "tools gone after disabling", []string{})
	eventually(t, "weather_whoami refused", func() error { return g.refused(cs, "weather_whoami", "unknown tool") })
	e.waitRegistration("team-a", "weather", accepted(metav1.ConditionFalse, v1alpha1.ReasonDisabled),
		ready(metav1.ConditionFalse, v1alpha1.ReasonNotAccepted))

	// Enable again, then delete.
	update(e, reg, func(r *v1alpha1.MCPServerRegistration) { r.Spec.Enabled = nil })
	g.waitTools(cs, "tools back after enabling", []string{"weather_echo", "weather_whoami"})
	eventually(t, "weather_whoami callable again", func() error { return g.call(cs, "weather_whoami", nil, "weather") })
	e.delete(reg)
	g.waitTools(cs, "tools gone after deleting", []string{})
	eventually(t, "weather_whoami refused after delete", func() error { return g.refused(cs, "weather_whoami", "unknown tool") })

	if stack.Envoy.PID() != pid || stack.Envoy.Exited() {
		t.Error("Envoy restarted")
	}
}

// checkVirtualServer: an MCPVirtualServer becomes an endpoint of its own on
// the gateway, listing and allowing only its tools.
func (g *gatewayClient) checkVirtualServer(e *env) {
	t := g.t
	t.Helper()
	e.create(&v1alpha1.MCPVirtualServer{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "echo-only"},
		Spec:       v1alpha1.MCPVirtualServerSpec{Description: "Echoes.", Tools: []string{"weather_echo"}},
	})
	vs := e.waitVirtualServer("team-a", "echo-only", want{v1alpha1.ConditionAccepted, metav1.ConditionTrue, v1alpha1.ReasonAccepted},
		want{v1alpha1.ConditionResolvedRefs, metav1.ConditionTrue, v1alpha1.ReasonResolved})
	if vs.Status.Path != "/mcp/team-a/echo-only" {
		t.Fatalf("status.path = %q", vs.Status.Path)
	}
	// The broker may serve the path a moment after the status says so.
	var vcs *mcp.ClientSession
	eventually(t, "virtual server endpoint", func() (err error) { vcs, err = g.tryConnect(vs.Status.Path); return err })
	t.Cleanup(func() { vcs.Close() })
	if d := vcs.InitializeResult().Instructions; d != "Echoes." {
		t.Errorf("instructions %q", d)
	}
	g.waitTools(vcs, "the virtual server's tools", []string{"weather_echo"})
	if err := g.call(vcs, "weather_echo", map[string]any{"text": "hi"}, "hi"); err != nil {
		t.Error(err)
	}
	if err := g.refused(vcs, "weather_whoami", "does not offer"); err != nil {
		t.Errorf("a tool outside the virtual server: %v", err)
	}
	if _, err := g.tryConnect("/mcp/team-a/nope"); err == nil || !strings.Contains(err.Error(), `virtual server "team-a/nope" not found`) {
		t.Errorf("unknown virtual server: %v", err)
	}
}

// checkCredentialRotation: a credential Secret changed in the cluster
// reaches the backend on the router's next new backend session, with the
// config file left as it is (the controller rewrites only the credential
// file, which the gateway's config watch re-reads).
func (g *gatewayClient) checkCredentialRotation(e *env, seen *mcptest.Initializes, configFile string) {
	t := g.t
	t.Helper()
	if got := seen.Of(mcptest.RouterClient); len(got) == 0 || got[len(got)-1] != "Bearer one" {
		t.Fatalf("the router's backend sessions were opened with %q, want Bearer one", got)
	}
	before, err := os.ReadFile(configFile)
	if err != nil {
		t.Fatal(err)
	}
	reloads, err := harness.Counter(g.envoy.AdminURL(), "mcpgw.secret_reloads")
	if err != nil {
		t.Fatal(err)
	}
	update(e, credentialSecret("team-a", "weather-token", true, nil), func(s *corev1.Secret) {
		s.Data = map[string][]byte{"token": []byte("Bearer two")}
	})
	eventually(t, "the router re-read the credential", func() error {
		g.poke() // the module exports its counters when a stream ends
		n, err := harness.Counter(g.envoy.AdminURL(), "mcpgw.secret_reloads")
		if err == nil && n <= reloads {
			err = fmt.Errorf("mcpgw.secret_reloads = %d", n)
		}
		return err
	})
	cs := g.connect(config.EndpointPath)
	if err := g.call(cs, "weather_whoami", nil, "weather"); err != nil {
		t.Fatal(err)
	}
	if got := seen.Of(mcptest.RouterClient); got[len(got)-1] != "Bearer two" {
		t.Errorf("the new backend session was opened with %q, want Bearer two", got[len(got)-1])
	}
	if after, _ := os.ReadFile(configFile); !bytes.Equal(before, after) {
		t.Errorf("the config file changed for a credential change:\n%s", after)
	}
}

// poke sends one request through Envoy (the broker answers it).
func (g *gatewayClient) poke() {
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	if resp, err := hc.Get(g.base + config.EndpointPath); err == nil {
		resp.Body.Close()
	}
}

// gatewayClient talks MCP to the gateway through Envoy.
type gatewayClient struct {
	t     *testing.T
	base  string // http://127.0.0.1:<envoy port>
	envoy *harness.Envoy
	hc    *http.Client
}

// tryConnect opens a go-sdk session on the gateway's endpoint path, closed
// when the test ends. It is session-era (2025-11-25), whose calls the router
// routes: the go-sdk's default, the stateless 2026-07-28, reaches these
// session-era backends via the broker.
func (g *gatewayClient) tryConnect(path string) (*mcp.ClientSession, error) {
	if g.hc == nil {
		// Its own transport, so that no keep-alive connection outlives the
		// test (goleak).
		tr := http.DefaultTransport.(*http.Transport).Clone()
		g.hc = &http.Client{Transport: tr}
		g.t.Cleanup(tr.CloseIdleConnections) // after the sessions' cleanups
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "v0"}, nil).
		Connect(ctx, &mcp.StreamableClientTransport{Endpoint: g.base + path, HTTPClient: g.hc},
			&mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
}

func (g *gatewayClient) connect(path string) *mcp.ClientSession {
	g.t.Helper()
	cs, err := g.tryConnect(path)
	if err != nil {
		g.t.Fatalf("connect to %s through Envoy: %v", path, err)
	}
	g.t.Cleanup(func() { cs.Close() })
	return cs
}

func toolNames(cs *mcp.ClientSession) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	names := []string{}
	for tool, err := range cs.Tools(ctx, nil) {
		if err != nil {
			return nil, err
		}
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	return names, nil
}

func (g *gatewayClient) waitTools(cs *mcp.ClientSession, what string, want []string) {
	g.t.Helper()
	eventually(g.t, what, func() error {
		names, err := toolNames(cs)
		if err == nil && !slices.Equal(names, want) {
			err = fmt.Errorf("tools %v, want %v", names, want)
		}
		return err
	})
}

// call calls a tool and checks its text result.
func (g *gatewayClient) call(cs *mcp.ClientSession, name string, args map[string]any, want string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		return fmt.Errorf("tools/call %s: %w", name, err)
	}
	var text strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			text.WriteString(tc.Text)
		}
	}
	if res.IsError || text.String() != want {
		return fmt.Errorf("tools/call %s = %q (error %v), want %q", name, text.String(), res.IsError, want)
	}
	return nil
}

// refused checks that a call fails with a JSON-RPC error containing msg.
func (g *gatewayClient) refused(cs *mcp.ClientSession, name, msg string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name})
	if err == nil || !strings.Contains(err.Error(), msg) {
		return fmt.Errorf("tools/call %s = %v, %v; want an error containing %q", name, res, err, msg)
	}
	return nil
}

// routedCalls reads how many requests Envoy sent to the backends' cluster:
// calls the router routed, as opposed to requests that went to the broker.
func (g *gatewayClient) routedCalls() int {
	g.t.Helper()
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := hc.Get(g.envoy.AdminURL() + "/stats?filter=^cluster.mcp_servers.upstream_rq_total$")
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var n int
	fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(string(b), "cluster.mcp_servers.upstream_rq_total:")), "%d", &n)
	return n
}
