package controller_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mcpgw/mcpgw/broker"
	"github.com/mcpgw/mcpgw/broker/upstream"
	"github.com/mcpgw/mcpgw/controller"
	"github.com/mcpgw/mcpgw/controller/api/v1alpha1"
	"github.com/mcpgw/mcpgw/tests/mcptest"
)

// TestReadyFromRealBroker closes the loop with no fake in it: the
// controller writes the config file, the real broker loads it and connects
// to a real MCP server, and the registration's Ready condition and tool
// count come from the broker's own GET /status. It guards the /status JSON
// contract, which the controller reads without importing the broker.
func TestReadyFromRealBroker(t *testing.T) {
	_, cfg := startAPIServer(t)
	c, err := client.New(cfg, client.Options{Scheme: controller.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, cfg: cfg, c: c, dir: t.TempDir(), logs: &syncBuffer{}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("controller and broker logs:\n%s", e.logs.String())
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	backendURL, stopBackend, err := mcptest.Serve(ctx, "127.0.0.1:0", mcptest.NewEchoServer("weather"))
	if err != nil {
		t.Fatal(err)
	}
	defer stopBackend()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := e.options(cfg, "http://"+ln.Addr().String()+"/status")
	o.Gateway.SessionKey.File = filepath.Join(e.dir, "session-key")
	if err := os.WriteFile(o.Gateway.SessionKey.File, []byte(strings.Repeat("k", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	e.createNamespace(systemNS)
	e.startControllerWith(o)
	eventually(t, "first config file", func() error { _, err := os.Stat(o.OutputFile); return err })
	startBroker(t, ctx, o.OutputFile, ln, backendURL, e.logs)

	e.createNamespace("team-a")
	e.create(httpRoute("team-a", "weather", "weather.mcp.local", "weather", 8080))
	e.create(registration("team-a", "weather", "weather", "weather_"))
	got := e.waitRegistration("team-a", "weather", accepted(metav1.ConditionTrue, v1alpha1.ReasonAccepted),
		ready(metav1.ConditionTrue, v1alpha1.ReasonBackendReady))
	if got.Status.Tools == nil || *got.Status.Tools != 2 { // echo and whoami
		t.Errorf("tools = %v, want 2", got.Status.Tools)
	}
	t.Logf("Ready: %s", condition(got, v1alpha1.ConditionReady).Message)

	// The broker notices the lost session (connecting), then fails to
	// reconnect (unreachable); either is a truthful not-ready.
	stopBackend()
	eventually(t, "Ready false after the backend stopped", func() error {
		if err := c.Get(ctx, client.ObjectKeyFromObject(got), got); err != nil {
			return err
		}
		r := condition(got, v1alpha1.ConditionReady)
		if r.Status != metav1.ConditionFalse || (r.Reason != v1alpha1.ReasonBackendConnecting && r.Reason != v1alpha1.ReasonBackendUnreachable) {
			return fmt.Errorf("Ready is %s/%s", r.Status, r.Reason)
		}
		return nil
	})
	t.Logf("backend stopped: %s", condition(got, v1alpha1.ConditionReady).Message)
}

// startBroker runs the real broker on ln. Cluster DNS is simulated: every
// request to a *.svc.cluster.local URL goes to the test backend, with the
// backend's own host (the go-sdk refuses foreign Host headers on loopback,
// as DNS-rebinding protection).
func startBroker(t *testing.T, ctx context.Context, configPath string, ln net.Listener, backendURL string, logs *syncBuffer) {
	t.Helper()
	u, err := url.Parse(backendURL)
	if err != nil {
		t.Fatal(err)
	}
	base := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(base.CloseIdleConnections)
	tr := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		if strings.HasSuffix(r.URL.Hostname(), ".svc.cluster.local") {
			r = r.Clone(r.Context())
			r.URL.Host, r.Host = u.Host, ""
		}
		return base.RoundTrip(r)
	})
	done := make(chan error, 1)
	go func() {
		done <- broker.Run(ctx, broker.Options{
			ConfigPath: configPath, Listener: ln, Logger: newLogger(logs),
			Upstream: upstream.Options{Transport: tr, PingInterval: 200 * time.Millisecond, BackoffMax: time.Second},
		})
	}()
	t.Cleanup(func() {
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("broker: %v", err)
			}
		case <-time.After(waitFor):
			t.Error("broker did not stop")
		}
	})
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
