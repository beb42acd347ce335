// Package controller_test runs mcpgw's controller against a real
// kube-apiserver and etcd (controller-runtime's envtest, binaries built by
// `go run ./build/kube/cmd/fetch-kube`), with the Gateway API CRDs and ours
// installed, and a fake broker status endpoint. A missing apiserver fails
// the tests when CI=true and skips them elsewhere.
package controller_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/mcpgw/mcpgw/build/kube"
	"github.com/mcpgw/mcpgw/controller"
	"github.com/mcpgw/mcpgw/controller/crd"
	"github.com/mcpgw/mcpgw/filter/config"
	"github.com/mcpgw/mcpgw/internal/testenv"
	"github.com/mcpgw/mcpgw/tests/harness"
)

// Names the controller under test writes, as in build/deploy.
const (
	systemNS          = "mcpgw-system"
	configSecret      = "mcpgw-config"
	credentialsSecret = "mcpgw-credentials"
	sessionKeyFile    = "/var/run/secrets/mcpgw/session/session-key"
	// waitFor bounds every wait for the controller; passes take milliseconds.
	waitFor = 30 * time.Second
)

// env is one API server with the controller running against it.
type env struct {
	t       *testing.T
	testEnv *envtest.Environment
	cfg     *rest.Config
	c       client.Client
	broker  *fakeBroker
	dir     string // the controller's output file and credentials live here
	logs    *syncBuffer
	stop    context.CancelFunc
	done    chan error
}

// startAPIServer starts etcd and kube-apiserver with the CRDs installed.
// CertDir is fixed so that a restart keeps the serving certificate.
func startAPIServer(t *testing.T) (*envtest.Environment, *rest.Config) {
	t.Helper()
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	assets, err := kube.Find(root)
	testenv.Require(t, err)
	gwCRDs := gatewayAPICRDs(t, root)
	testEnv := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDInstallOptions: envtest.CRDInstallOptions{
			Paths: gwCRDs, CRDs: ourCRDs(t), ErrorIfPathMissing: true,
		},
		ControlPlane: envtest.ControlPlane{APIServer: &envtest.APIServer{CertDir: t.TempDir()}},
		// SIGKILL after this: restartAPIServer wants a prompt stop even with
		// the controller's watches open.
		ControlPlaneStopTimeout: 3 * time.Second,
	}
	start := time.Now()
	cfg, err := testEnv.Start()
	if err != nil {
		t.Fatalf("start kube-apiserver and etcd: %v", err)
	}
	t.Logf("kube-apiserver ready in %v", time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if err := testEnv.Stop(); err != nil {
			t.Errorf("stop API server: %v", err)
		}
	})
	return testEnv, cfg
}

// startEnv starts an API server and the controller, writing both the
// Secrets and a file, reading a fake broker.
func startEnv(t *testing.T) *env {
	t.Helper()
	testEnv, cfg := startAPIServer(t)
	c, err := client.New(cfg, client.Options{Scheme: controller.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, testEnv: testEnv, cfg: cfg, c: c, dir: t.TempDir(), logs: &syncBuffer{}}
	e.broker = newFakeBroker(filepath.Join(e.dir, "config.yaml"))
	t.Cleanup(e.broker.srv.Close)
	e.createNamespace(systemNS)
	e.startControllerWith(e.options(cfg, e.broker.srv.URL+"/status"))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("controller logs:\n%s", e.logs.String())
		}
	})
	return e
}

// options are the controller's options in tests: Secret and file output,
// the broker's status read at statusURL.
func (e *env) options(cfg *rest.Config, statusURL string) controller.Options {
	return controller.Options{
		RestConfig: cfg, Namespace: systemNS,
		ConfigSecret: configSecret, CredentialsSecret: credentialsSecret,
		OutputFile:     filepath.Join(e.dir, "config.yaml"),
		CredentialsDir: filepath.Join(e.dir, "credentials"),
		Gateway:        config.Gateway{SessionKey: config.SecretRef{File: sessionKeyFile}},
		// Fast enough that tests do not wait on it, slow enough to be real.
		BrokerStatusURL: statusURL, StatusInterval: 200 * time.Millisecond,
		Resync: time.Minute, MetricsAddr: "0", ProbeAddr: "0",
		Logger: newLogger(e.logs),
	}
}

func (e *env) startControllerWith(o controller.Options) {
	ctx, cancel := context.WithCancel(context.Background())
	e.stop, e.done = cancel, make(chan error, 1)
	go func() { e.done <- controller.Run(ctx, o) }()
	e.t.Cleanup(func() {
		cancel()
		select {
		case err := <-e.done:
			if err != nil {
				e.t.Errorf("controller: %v", err)
			}
		case <-time.After(waitFor):
			e.t.Error("controller did not stop")
		}
	})
}

// ourCRDs decodes the CRDs the controller ships (controller/crd).
func ourCRDs(t *testing.T) []*apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	var crds []*apiextensionsv1.CustomResourceDefinition
	err := fs.WalkDir(crd.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := crd.FS.ReadFile(p)
		if err != nil {
			return err
		}
		var c apiextensionsv1.CustomResourceDefinition
		if err := yaml.UnmarshalStrict(b, &c); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		crds = append(crds, &c)
		return nil
	})
	if err != nil || len(crds) == 0 {
		t.Fatalf("our CRDs: %v (found %d)", err, len(crds))
	}
	return crds
}

// gatewayAPICRDs returns the standard-channel CRD files shipped in the
// pinned sigs.k8s.io/gateway-api module.
func gatewayAPICRDs(t *testing.T, root string) []string {
	t.Helper()
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("locate sigs.k8s.io/gateway-api: %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "config", "crd", "standard")
	var paths []string
	for _, kind := range []string{"gatewayclasses", "gateways", "httproutes", "referencegrants"} {
		paths = append(paths, filepath.Join(dir, "gateway.networking.k8s.io_"+kind+".yaml"))
	}
	return paths
}

// restartAPIServer stops kube-apiserver (etcd keeps the data), waits, and
// starts it again on the same port with the same certificates, as a real
// control-plane restart or upgrade would. The stop is SIGTERM, then SIGKILL
// if the server is still draining watches after ControlPlaneStopTimeout:
// a crash is as fair a test as a clean stop.
func (e *env) restartAPIServer(down time.Duration) {
	e.t.Helper()
	api := e.testEnv.ControlPlane.APIServer
	start := time.Now()
	if err := api.Stop(); err != nil && !strings.Contains(err.Error(), "timeout waiting") {
		e.t.Fatalf("stop kube-apiserver: %v", err)
	}
	e.t.Logf("kube-apiserver stopped in %v", time.Since(start).Round(time.Millisecond))
	time.Sleep(down)
	if err := api.Start(); err != nil {
		e.t.Fatalf("restart kube-apiserver: %v", err)
	}
}

// fakeBroker serves GET /status like the broker: one entry per server of
// the config file the controller wrote, "ready" with 3 tools unless told
// otherwise.
type fakeBroker struct {
	srv        *httptest.Server
	configPath string

	mu        sync.Mutex
	overrides map[string]controller.BrokerServer // by server name; URL and prefix come from the file
	down      bool
	// polls counts the controller's status polls: a test that checks that
	// nothing happens waits for some (waitPolls) instead of sleeping.
	polls atomic.Int64
}

// waitPolls waits until the controller has polled the broker n more times
// than now, the last n of them answered (it polls one at a time).
func (e *env) waitPolls(n int64) {
	e.t.Helper()
	from := e.broker.polls.Load()
	eventually(e.t, fmt.Sprintf("%d broker polls", n), func() error {
		if got := e.broker.polls.Load() - from; got <= n {
			return fmt.Errorf("%d polls", got)
		}
		return nil
	})
}

func newFakeBroker(configPath string) *fakeBroker {
	b := &fakeBroker{configPath: configPath, overrides: map[string]controller.BrokerServer{}}
	b.srv = httptest.NewServer(http.HandlerFunc(b.serveStatus))
	return b
}

func (b *fakeBroker) set(name string, s controller.BrokerServer) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.overrides[name] = s
}

func (b *fakeBroker) setDown(down bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.down = down
}

func (b *fakeBroker) serveStatus(w http.ResponseWriter, r *http.Request) {
	b.polls.Add(1)
	b.mu.Lock()
	defer b.mu.Unlock()
	if r.URL.Path != "/status" || b.down {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	servers := []controller.BrokerServer{}
	if cfg, err := config.Load(b.configPath); err == nil {
		for _, s := range cfg.Servers {
			st, ok := b.overrides[s.Name]
			if !ok {
				st = controller.BrokerServer{State: "ready", Tools: 3, ProtocolVersion: "2025-06-18"}
			}
			st.Name, st.URL, st.Prefix, st.Since = s.Name, s.URL, s.Prefix, time.Now()
			servers = append(servers, st)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"servers": servers})
}

// eventually retries f until it succeeds or waitFor passes.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after %v: %v", what, waitFor, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// newLogger logs to a buffer that is printed only if the test fails.
func newLogger(w *syncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// ctx is the context of API calls in tests.
func (e *env) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	e.t.Cleanup(cancel)
	return ctx
}

func (e *env) createNamespace(name string) {
	e.t.Helper()
	e.create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
}

func (e *env) create(obj client.Object) {
	e.t.Helper()
	if err := e.c.Create(e.ctx(), obj); err != nil {
		e.t.Fatalf("create %T %s/%s: %v", obj, obj.GetNamespace(), obj.GetName(), err)
	}
}

// update re-reads obj, applies mutate and updates it, retrying conflicts.
func update[T client.Object](e *env, obj T, mutate func(T)) {
	e.t.Helper()
	eventually(e.t, fmt.Sprintf("update %s/%s", obj.GetNamespace(), obj.GetName()), func() error {
		if err := e.c.Get(e.ctx(), client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		mutate(obj)
		return e.c.Update(e.ctx(), obj)
	})
}

func (e *env) delete(obj client.Object) {
	e.t.Helper()
	if err := e.c.Delete(e.ctx(), obj); err != nil {
		e.t.Fatalf("delete %s/%s: %v", obj.GetNamespace(), obj.GetName(), err)
	}
}

// secretData reads one of the controller's output Secrets.
func (e *env) secretData(name string) (map[string][]byte, string, error) {
	var s corev1.Secret
	if err := e.c.Get(e.ctx(), types.NamespacedName{Namespace: systemNS, Name: name}, &s); err != nil {
		return nil, "", err
	}
	return s.Data, s.ResourceVersion, nil
}

// waitConfig waits until the config Secret parses and check accepts it,
// and returns it.
func (e *env) waitConfig(check func(*config.Config) error) *config.Config {
	e.t.Helper()
	var cfg *config.Config
	eventually(e.t, "config Secret", func() error {
		data, _, err := e.secretData(configSecret)
		if err != nil {
			return err
		}
		if cfg, err = config.Parse(data[controller.ConfigKey]); err != nil {
			return err
		}
		return check(cfg)
	})
	return cfg
}

func serverNames(cfg *config.Config) []string {
	names := []string{}
	for _, s := range cfg.Servers {
		names = append(names, s.Name)
	}
	return names
}

// hasServers checks the config's server names, in order.
func hasServers(names ...string) func(*config.Config) error {
	return func(cfg *config.Config) error {
		if got := serverNames(cfg); strings.Join(got, ",") != strings.Join(names, ",") {
			return fmt.Errorf("servers %v, want %v", got, names)
		}
		return nil
	}
}

var errNotYet = errors.New("not yet")

// readFile is os.ReadFile for paths under the env's directory.
func (e *env) readFile(rel string) []byte {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join(e.dir, rel))
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}
