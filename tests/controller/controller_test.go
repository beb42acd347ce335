package controller_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/mcpgw/mcpgw/controller"
	"github.com/mcpgw/mcpgw/controller/api/v1alpha1"
	"github.com/mcpgw/mcpgw/filter/config"
)

// TestRegistrationLifecycle: create, update and delete a registration and
// its HTTPRoute, and check the Secrets, the file and the status at each step.
func TestRegistrationLifecycle(t *testing.T) {
	e := startEnv(t)
	e.createNamespace("team-a")
	route := httpRoute("team-a", "weather", "weather.mcp.local", "weather", 8080)
	e.create(route)
	e.create(credentialSecret("team-a", "weather-token", true, map[string]string{"token": "Bearer s3cr3t"}))
	reg := registration("team-a", "weather", "weather", "weather_")
	reg.Spec.CredentialRef = &v1alpha1.CredentialReference{Name: "weather-token", Key: "token"}
	e.create(reg)

	cfg := e.waitConfig(hasServers("team-a/weather"))
	credFile := filepath.Join(e.dir, "credentials", "team-a_weather-token_token")
	wantServer := config.Server{
		Name: "team-a/weather", URL: "http://weather.team-a.svc.cluster.local:8080/mcp",
		Hostname: "weather.mcp.local", Prefix: "weather_",
		Credential: &config.Credential{SecretRef: config.SecretRef{File: credFile}},
	}
	if s := cfg.Servers[0]; s.URL != wantServer.URL || s.Hostname != wantServer.Hostname || s.Prefix != wantServer.Prefix ||
		s.Credential == nil || s.Credential.File != credFile {
		t.Errorf("server = %+v (credential %+v), want %+v", s, s.Credential, wantServer)
	}
	if cfg.Gateway.SessionKey.File != sessionKeyFile {
		t.Errorf("session key ref = %+v", cfg.Gateway.SessionKey)
	}
	e.checkOutputs("Bearer s3cr3t")

	got := e.waitRegistration("team-a", "weather",
		accepted(metav1.ConditionTrue, v1alpha1.ReasonAccepted), ready(metav1.ConditionTrue, v1alpha1.ReasonBackendReady))
	if got.Status.Tools == nil || *got.Status.Tools != 3 || got.Status.ServerName != "team-a/weather" ||
		got.Status.URL != wantServer.URL || got.Status.Hostname != wantServer.Hostname {
		t.Errorf("status = %+v", got.Status)
	}

	e.checkIdempotent()
	e.checkUpdates(reg, route)
	e.checkDisableAndDelete(reg, credFile)
}

// checkUpdates: edits of the registration and of its route reach the
// config, and the status follows the new generation.
func (e *env) checkUpdates(reg *v1alpha1.MCPServerRegistration, route *gatewayv1.HTTPRoute) {
	e.t.Helper()
	update(e, reg, func(r *v1alpha1.MCPServerRegistration) { r.Spec.Prefix = "wx_"; r.Spec.Path = "/v2/mcp" })
	e.waitConfig(func(c *config.Config) error {
		if len(c.Servers) != 1 || c.Servers[0].Prefix != "wx_" || !strings.HasSuffix(c.Servers[0].URL, ":8080/v2/mcp") {
			return fmt.Errorf("servers %+v", c.Servers)
		}
		return nil
	})
	e.waitRegistration("team-a", "weather", accepted(metav1.ConditionTrue, v1alpha1.ReasonAccepted),
		ready(metav1.ConditionTrue, v1alpha1.ReasonBackendReady))

	// Update the route: a new first hostname and backend port.
	update(e, route, func(r *gatewayv1.HTTPRoute) {
		r.Spec.Hostnames = []gatewayv1.Hostname{"forecast.mcp.local"}
		r.Spec.Rules[0].BackendRefs[0].Port = ptr.To[int32](9090)
	})
	e.waitConfig(func(c *config.Config) error {
		if len(c.Servers) != 1 || c.Servers[0].Hostname != "forecast.mcp.local" || !strings.Contains(c.Servers[0].URL, ":9090/") {
			return fmt.Errorf("servers %+v", c.Servers)
		}
		return nil
	})
}

// checkDisableAndDelete: a disabled registration leaves the config and says
// why; a deleted one takes its credential along.
func (e *env) checkDisableAndDelete(reg *v1alpha1.MCPServerRegistration, credFile string) {
	e.t.Helper()
	t := e.t
	update(e, reg, func(r *v1alpha1.MCPServerRegistration) { r.Spec.Enabled = ptr.To(false) })
	e.waitConfig(hasServers())
	got := e.waitRegistration("team-a", "weather", accepted(metav1.ConditionFalse, v1alpha1.ReasonDisabled),
		ready(metav1.ConditionFalse, v1alpha1.ReasonNotAccepted))
	if got.Status.Tools != nil || got.Status.URL != "" {
		t.Errorf("a disabled registration still reports %+v", got.Status)
	}

	// Re-enable, then delete: the server and its credential disappear.
	update(e, reg, func(r *v1alpha1.MCPServerRegistration) { r.Spec.Enabled = nil })
	e.waitConfig(hasServers("team-a/weather"))
	e.delete(reg)
	e.waitConfig(hasServers())
	eventually(t, "credentials Secret emptied", func() error {
		data, _, err := e.secretData(credentialsSecret)
		if err == nil && len(data) != 0 {
			err = fmt.Errorf("still holds %d keys", len(data))
		}
		return err
	})
	eventually(t, "credential file removed", func() error {
		if _, err := os.Stat(credFile); !os.IsNotExist(err) {
			return fmt.Errorf("stat: %v", err)
		}
		return nil
	})
}

// checkOutputs: the credential is in the credentials Secret and file, never
// in the config; the file output matches the Secret byte for byte.
func (e *env) checkOutputs(credential string) {
	e.t.Helper()
	cfgData, _, err := e.secretData(configSecret)
	if err != nil {
		e.t.Fatal(err)
	}
	if bytes.Contains(cfgData[controller.ConfigKey], []byte(credential)) {
		e.t.Error("the config Secret contains the credential in plaintext")
	}
	if len(cfgData) != 1 {
		e.t.Errorf("config Secret keys: %d, want %s only", len(cfgData), controller.ConfigKey)
	}
	creds, _, err := e.secretData(credentialsSecret)
	if err != nil {
		e.t.Fatal(err)
	}
	if string(creds["team-a_weather-token_token"]) != credential {
		e.t.Errorf("credentials Secret = %q", creds)
	}
	eventually(e.t, "file output", func() error {
		if b, _ := os.ReadFile(filepath.Join(e.dir, "config.yaml")); !bytes.Equal(b, cfgData[controller.ConfigKey]) {
			return fmt.Errorf("config file differs from the Secret:\n%s", b)
		}
		if b, _ := os.ReadFile(filepath.Join(e.dir, "credentials", "team-a_weather-token_token")); string(b) != credential {
			return fmt.Errorf("credential file = %q", b)
		}
		return nil
	})
}

// checkIdempotent: passes that change nothing write nothing. A disabled
// registration elsewhere forces a pass (its status appears) without
// changing the config.
func (e *env) checkIdempotent() {
	e.t.Helper()
	_, rvConfig, err1 := e.secretData(configSecret)
	_, rvCreds, err2 := e.secretData(credentialsSecret)
	if err1 != nil || err2 != nil {
		e.t.Fatal(err1, err2)
	}
	e.createNamespace("idle")
	e.create(httpRoute("idle", "r", "idle.mcp.local", "svc", 80))
	idle := registration("idle", "off", "r", "idle_")
	idle.Spec.Enabled = ptr.To(false)
	e.create(idle)
	e.waitRegistration("idle", "off", accepted(metav1.ConditionFalse, v1alpha1.ReasonDisabled))
	e.waitPolls(3) // and the passes of several broker polls
	_, rv1, _ := e.secretData(configSecret)
	_, rv2, _ := e.secretData(credentialsSecret)
	if rv1 != rvConfig || rv2 != rvCreds {
		e.t.Errorf("no-op passes rewrote the Secrets (resourceVersion %s→%s, %s→%s)", rvConfig, rv1, rvCreds, rv2)
	}
	e.delete(idle)
}

// TestConflicts: every conflict is reported on the resource that loses and
// resolves itself when the cause goes away.
func TestConflicts(t *testing.T) {
	e := startEnv(t)
	for _, ns := range []string{"a", "b"} {
		e.createNamespace(ns)
		e.create(httpRoute(ns, "r", ns+".mcp.local", "svc", 80))
	}
	first := registration("a", "first", "r", "dup_")
	e.create(first)
	e.waitRegistration("a", "first", accepted(metav1.ConditionTrue, v1alpha1.ReasonAccepted))
	// creationTimestamp has one-second resolution; make "older" unambiguous.
	time.Sleep(1100 * time.Millisecond)
	e.create(registration("b", "second", "r", "dup_"))
	got := e.waitRegistration("b", "second", accepted(metav1.ConditionFalse, v1alpha1.ReasonPrefixConflict),
		ready(metav1.ConditionFalse, v1alpha1.ReasonNotAccepted))
	if msg := condition(got, v1alpha1.ConditionAccepted).Message; !strings.Contains(msg, "a/first") {
		t.Errorf("conflict message %q does not name the winner", msg)
	}
	e.waitConfig(hasServers("a/first"))
	// The older registration goes: the newer one takes the prefix.
	e.delete(first)
	e.waitRegistration("b", "second", accepted(metav1.ConditionTrue, v1alpha1.ReasonAccepted))
	e.waitConfig(hasServers("b/second"))

	// A prefix overlapping b/second's, and an alias inside it, would take
	// names b/second serves: neither is accepted while b/second has them.
	time.Sleep(1100 * time.Millisecond) // unambiguously newer than b/second
	overlap := registration("a", "overlap", "r", "dup_more_")
	e.create(overlap)
	inside := registration("a", "alias-inside", "r", "ai_")
	inside.Spec.Aliases = map[string]string{"dup_x": "x"}
	e.create(inside)
	for name, reason := range map[string]string{"overlap": v1alpha1.ReasonPrefixConflict, "alias-inside": v1alpha1.ReasonAliasConflict} {
		got := e.waitRegistration("a", name, accepted(metav1.ConditionFalse, reason), ready(metav1.ConditionFalse, v1alpha1.ReasonNotAccepted))
		if msg := condition(got, v1alpha1.ConditionAccepted).Message; !strings.Contains(msg, `"dup_"`) || !strings.Contains(msg, "b/second") {
			t.Errorf("%s: conflict message %q does not name the prefix and its owner", name, msg)
		}
	}
	e.waitConfig(hasServers("b/second"))
	e.delete(overlap)
	e.delete(inside)

	// Missing route, then the route appears.
	e.create(registration("a", "late-route", "later", "late_"))
	e.waitRegistration("a", "late-route", accepted(metav1.ConditionFalse, v1alpha1.ReasonRouteNotFound))
	e.create(httpRoute("a", "later", "later.mcp.local", "svc", 80))
	e.waitRegistration("a", "late-route", accepted(metav1.ConditionTrue, v1alpha1.ReasonAccepted))

	// Ambiguous route: two backends.
	amb := httpRoute("a", "two", "two.mcp.local", "v1", 80)
	amb.Spec.Rules = append(amb.Spec.Rules, httpRoute("a", "", "", "v2", 80).Spec.Rules...)
	e.create(amb)
	e.create(registration("a", "ambiguous", "two", "two_"))
	e.waitRegistration("a", "ambiguous", accepted(metav1.ConditionFalse, v1alpha1.ReasonRouteAmbiguous))

	e.checkCredentialOptIn()
	e.waitConfig(hasServers("a/late-route", "a/with-cred", "b/second"))
}

// checkCredentialOptIn: a Secret is only read once labelled
// mcpgw.io/credential=true.
func (e *env) checkCredentialOptIn() {
	e.t.Helper()
	reg := registration("a", "with-cred", "r", "cred_")
	reg.Spec.CredentialRef = &v1alpha1.CredentialReference{Name: "tok", Key: "token", Header: "X-Token"}
	e.create(reg)
	e.waitRegistration("a", "with-cred", accepted(metav1.ConditionFalse, v1alpha1.ReasonCredentialNotFound))
	sec := credentialSecret("a", "tok", false, map[string]string{"token": "t0k"})
	e.create(sec)
	e.waitPolls(2) // passes after the Secret appeared
	e.waitRegistration("a", "with-cred", accepted(metav1.ConditionFalse, v1alpha1.ReasonCredentialNotFound))
	update(e, sec, func(s *corev1.Secret) { s.Labels = map[string]string{controller.CredentialLabel: "true"} })
	e.waitRegistration("a", "with-cred", accepted(metav1.ConditionTrue, v1alpha1.ReasonAccepted))
	eventually(e.t, "credential copied", func() error {
		creds, _, err := e.secretData(credentialsSecret)
		if err == nil && string(creds["a_tok_token"]) != "t0k" {
			err = fmt.Errorf("credentials Secret keys %v", len(creds))
		}
		return err
	})
}

// TestReadyFollowsBroker: Ready is read from the broker's status, not
// assumed from the config being written.
func TestReadyFollowsBroker(t *testing.T) {
	e := startEnv(t)
	e.createNamespace("team-a")
	e.create(httpRoute("team-a", "r", "w.mcp.local", "svc", 80))
	e.broker.set("team-a/w", controller.BrokerServer{State: "unreachable", LastError: "dial tcp: connection refused"})
	e.create(registration("team-a", "w", "r", "w_"))
	got := e.waitRegistration("team-a", "w", accepted(metav1.ConditionTrue, v1alpha1.ReasonAccepted),
		ready(metav1.ConditionFalse, v1alpha1.ReasonBackendUnreachable))
	if msg := condition(got, v1alpha1.ConditionReady).Message; !strings.Contains(msg, "connection refused") {
		t.Errorf("Ready message %q lacks the broker's error", msg)
	}
	e.broker.set("team-a/w", controller.BrokerServer{State: "ready", Tools: 7})
	got = e.waitRegistration("team-a", "w", ready(metav1.ConditionTrue, v1alpha1.ReasonBackendReady))
	if got.Status.Tools == nil || *got.Status.Tools != 7 {
		t.Errorf("tools = %v, want 7", got.Status.Tools)
	}
	e.broker.set("team-a/w", controller.BrokerServer{State: "invalid", LastError: "no tools capability"})
	e.waitRegistration("team-a", "w", ready(metav1.ConditionFalse, v1alpha1.ReasonBackendInvalid))
	e.broker.setDown(true)
	got = e.waitRegistration("team-a", "w", accepted(metav1.ConditionTrue, v1alpha1.ReasonAccepted),
		ready(metav1.ConditionUnknown, v1alpha1.ReasonBrokerUnavailable))
	if got.Status.Tools != nil {
		t.Errorf("tools still reported while the broker is unavailable: %d", *got.Status.Tools)
	}
	e.broker.setDown(false)
	e.broker.set("team-a/w", controller.BrokerServer{State: "connecting"})
	e.waitRegistration("team-a", "w", ready(metav1.ConditionFalse, v1alpha1.ReasonBackendConnecting))
}

// TestVirtualServer: written into the config, unresolved tools reported,
// the endpoint path in the status.
func TestVirtualServer(t *testing.T) {
	e := startEnv(t)
	e.createNamespace("team-a")
	e.create(httpRoute("team-a", "r", "w.mcp.local", "svc", 80))
	e.create(registration("team-a", "w", "r", "w_"))
	e.create(&v1alpha1.MCPVirtualServer{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "subset"},
		Spec:       v1alpha1.MCPVirtualServerSpec{Description: "Forecasts.", Tools: []string{"w_forecast", "gh_search"}},
	})
	got := e.waitVirtualServer("team-a", "subset", want{v1alpha1.ConditionAccepted, metav1.ConditionTrue, v1alpha1.ReasonAccepted},
		want{v1alpha1.ConditionResolvedRefs, metav1.ConditionFalse, v1alpha1.ReasonUnknownTools})
	if got.Status.Path != "/mcp/team-a/subset" {
		t.Errorf("status.path = %q", got.Status.Path)
	}
	wantVS := config.VirtualServer{Name: "team-a/subset", Description: "Forecasts.", Tools: []string{"gh_search", "w_forecast"}}
	e.waitConfig(func(c *config.Config) error {
		if len(c.VirtualServers) != 1 || !reflect.DeepEqual(c.VirtualServers[0], wantVS) {
			return fmt.Errorf("virtual servers %+v", c.VirtualServers)
		}
		return nil
	})
	eventually(t, "file output", func() error {
		c, err := config.Load(filepath.Join(e.dir, "config.yaml"))
		if err == nil && (len(c.VirtualServers) != 1 || c.VirtualServers[0].Name != wantVS.Name) {
			err = fmt.Errorf("virtual servers %+v", c.VirtualServers)
		}
		return err
	})
}

// TestAPIServerRestart: the controller survives an API server outage and
// picks up what changed once it is back.
func TestAPIServerRestart(t *testing.T) {
	e := startEnv(t)
	e.createNamespace("team-a")
	e.create(httpRoute("team-a", "r1", "one.mcp.local", "one", 80))
	e.create(registration("team-a", "one", "r1", "one_"))
	e.waitConfig(hasServers("team-a/one"))

	e.restartAPIServer(3 * time.Second)
	t.Log("kube-apiserver restarted")
	select {
	case err := <-e.done:
		t.Fatalf("controller exited during the outage: %v", err)
	default:
	}
	// Writes right after the restart may still meet a starting server.
	eventually(t, "create after restart", func() error {
		return e.c.Create(e.ctx(), httpRoute("team-a", "r2", "two.mcp.local", "two", 80))
	})
	eventually(t, "create after restart", func() error {
		return e.c.Create(e.ctx(), registration("team-a", "two", "r2", "two_"))
	})
	restarted := time.Now()
	e.waitConfig(hasServers("team-a/one", "team-a/two"))
	t.Logf("change made after the restart reached the config in %v", time.Since(restarted).Round(time.Millisecond))
	e.waitRegistration("team-a", "two", accepted(metav1.ConditionTrue, v1alpha1.ReasonAccepted),
		ready(metav1.ConditionTrue, v1alpha1.ReasonBackendReady))
}
