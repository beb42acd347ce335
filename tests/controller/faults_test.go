package controller_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mcpgw/mcpgw/controller"
	"github.com/mcpgw/mcpgw/filter/config"
)

// TestAPIServerDownKeepsConfig is the api-server-down fault of the abuse
// suite (tests/abuse/CATALOGUE.md): the kube-apiserver stops while the
// controller runs. The controller must keep running and keep the config it
// wrote, byte for byte, through the outage (a controller that rebuilt its
// output from an empty cache would take every server off the gateway),
// even when something makes it reconcile meanwhile; once the API server is
// back, a change reaches the config.
func TestAPIServerDownKeepsConfig(t *testing.T) {
	testEnv, cfg := startAPIServer(t)
	c, err := client.New(cfg, client.Options{Scheme: controller.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, testEnv: testEnv, cfg: cfg, c: c, dir: t.TempDir(), logs: &syncBuffer{}}
	e.broker = newFakeBroker(filepath.Join(e.dir, "config.yaml"))
	t.Cleanup(e.broker.srv.Close)
	// The controller polls the broker every StatusInterval whatever the API
	// server does: its polls are the counted events of the outage.
	var polls atomic.Int64
	counting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		polls.Add(1)
		e.broker.serveStatus(w, r)
	}))
	t.Cleanup(counting.Close)
	e.createNamespace(systemNS)
	e.startControllerWith(e.options(cfg, counting.URL+"/status"))
	e.createNamespace("team-a")
	e.create(httpRoute("team-a", "r1", "one.mcp.local", "one", 80))
	e.create(registration("team-a", "one", "r1", "one_"))
	e.waitConfig(hasServers("team-a/one"))
	var file []byte
	eventually(t, "the config file", func() error {
		file = e.readFile("config.yaml")
		c, err := config.Parse(file)
		if err != nil {
			return err
		}
		return hasServers("team-a/one")(c)
	})

	api := testEnv.ControlPlane.APIServer
	if err := api.Stop(); err != nil {
		t.Logf("stop kube-apiserver: %v", err) // SIGKILL after the stop timeout is fine
	}
	// The broker's status changes during the outage: the controller
	// reconciles, from its cache, with no API server to write to.
	e.broker.setDown(true)
	n0 := polls.Load()
	eventually(t, "10 broker polls during the outage", func() error {
		if n := polls.Load() - n0; n < 10 {
			return fmt.Errorf("%d polls", n)
		}
		return nil
	})
	select {
	case err := <-e.done:
		t.Fatalf("controller exited during the outage: %v", err)
	default:
	}
	if got := e.readFile("config.yaml"); !bytes.Equal(got, file) {
		t.Errorf("the config file changed during the outage:\n%s\nwas:\n%s", got, file)
	}

	if err := api.Start(); err != nil {
		t.Fatalf("restart kube-apiserver: %v", err)
	}
	e.broker.setDown(false)
	eventually(t, "create after restart", func() error {
		return e.c.Create(e.ctx(), httpRoute("team-a", "r2", "two.mcp.local", "two", 80))
	})
	eventually(t, "create after restart", func() error {
		return e.c.Create(e.ctx(), registration("team-a", "two", "r2", "two_"))
	})
	e.waitConfig(hasServers("team-a/one", "team-a/two"))
}
