package controller_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/mcpgw/mcpgw/controller"
	"github.com/mcpgw/mcpgw/controller/api/v1alpha1"
	"github.com/mcpgw/mcpgw/tests/harness"
)

// kustomizeBuild renders build/deploy with the kustomize pinned in
// build/tools/go.mod.
func kustomizeBuild(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "tool", "-modfile=build/tools/go.mod", "kustomize", "build", "build/deploy")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kustomize build build/deploy: %v\n%s", err, stderr.String())
	}
	var objs []*unstructured.Unstructured
	for _, doc := range strings.Split(string(out), "\n---\n") {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatalf("kustomize output: %v", err)
		}
		objs = append(objs, u)
	}
	return objs
}

// TestDeployManifests validates build/deploy against the real API server
// (server-side dry-run of every object), applies it, and then runs the
// controller as its ServiceAccount: the shipped RBAC must be enough for the
// whole job, and no more than the documented grants.
func TestDeployManifests(t *testing.T) {
	objs := kustomizeBuild(t)
	_, cfg := startAPIServer(t)
	c, err := client.New(cfg, client.Options{Scheme: controller.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	kinds := map[string]int{}
	// Namespaced objects can only be dry-run in an existing namespace.
	for _, u := range objs {
		if u.GetKind() == "Namespace" {
			if err := c.Create(ctx, u.DeepCopy()); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, u := range objs {
		kinds[u.GetKind()]++
		if err := applyObject(ctx, c, u, true); err != nil {
			t.Errorf("dry-run %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
	for _, k := range []string{"CustomResourceDefinition", "Deployment", "Service", "Gateway", "HTTPRoute", "ClusterRole", "Role", "Secret"} {
		if kinds[k] == 0 {
			t.Errorf("the manifests have no %s", k)
		}
	}
	if t.Failed() {
		return
	}
	for _, u := range objs {
		if err := applyObject(ctx, c, u, false); err != nil {
			t.Fatalf("apply %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
	checkLeastPrivilege(t, c)
	runAsServiceAccount(t, cfg, c)
}

// applyObject server-side applies u, optionally as a dry run.
func applyObject(ctx context.Context, c client.Client, u *unstructured.Unstructured, dryRun bool) error {
	opts := []client.ApplyOption{client.FieldOwner("mcpgw-deploy-test"), client.ForceOwnership}
	if dryRun {
		opts = append(opts, client.DryRunAll)
	}
	return c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u.DeepCopy()), opts...)
}

// checkLeastPrivilege asks the API server what the controller's
// ServiceAccount may do.
func checkLeastPrivilege(t *testing.T, c client.Client) {
	t.Helper()
	sa := "system:serviceaccount:" + systemNS + ":mcpgw-controller"
	for _, tc := range []struct {
		attrs authorizationv1.ResourceAttributes
		allow bool
	}{
		{authorizationv1.ResourceAttributes{Namespace: systemNS, Verb: "update", Resource: "secrets", Name: configSecret}, true},
		{authorizationv1.ResourceAttributes{Namespace: systemNS, Verb: "update", Resource: "secrets", Name: "other"}, false},
		{authorizationv1.ResourceAttributes{Namespace: systemNS, Verb: "create", Resource: "secrets"}, false},
		{authorizationv1.ResourceAttributes{Namespace: "team-a", Verb: "get", Resource: "secrets", Name: "any"}, false},
		{authorizationv1.ResourceAttributes{Namespace: "team-a", Verb: "update", Resource: "secrets", Name: configSecret}, false},
		{authorizationv1.ResourceAttributes{Namespace: "team-a", Verb: "list", Resource: "secrets"}, true},
		{authorizationv1.ResourceAttributes{Namespace: "team-a", Verb: "update", Group: "mcpgw.io", Resource: "mcpserverregistrations"}, false},
		{authorizationv1.ResourceAttributes{Namespace: "team-a", Verb: "update", Group: "mcpgw.io", Resource: "mcpserverregistrations", Subresource: "status"}, true},
		{authorizationv1.ResourceAttributes{Namespace: "team-a", Verb: "update", Group: "gateway.networking.k8s.io", Resource: "httproutes"}, false},
	} {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: sa, Groups: []string{"system:serviceaccounts"}, ResourceAttributes: &tc.attrs,
		}}
		if err := c.Create(context.Background(), sar); err != nil {
			t.Fatal(err)
		}
		if sar.Status.Allowed != tc.allow {
			t.Errorf("%s %+v: allowed = %v, want %v", sa, tc.attrs, sar.Status.Allowed, tc.allow)
		}
	}
}

// runAsServiceAccount runs the controller impersonating its ServiceAccount
// and checks it writes the shipped Secrets and the status.
func runAsServiceAccount(t *testing.T, admin *rest.Config, c client.Client) {
	t.Helper()
	cfg := rest.CopyConfig(admin)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + systemNS + ":mcpgw-controller",
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + systemNS, "system:authenticated"},
	}
	e := &env{t: t, cfg: admin, c: c, dir: t.TempDir(), logs: &syncBuffer{}}
	e.broker = newFakeBroker(filepath.Join(e.dir, "config.yaml"))
	t.Cleanup(e.broker.srv.Close)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("controller logs:\n%s", e.logs.String())
		}
	})
	e.startControllerWith(e.options(cfg, e.broker.srv.URL+"/status"))

	e.createNamespace("team-a")
	e.create(httpRoute("team-a", "r", "w.mcp.local", "svc", 80))
	e.create(credentialSecret("team-a", "tok", true, map[string]string{"token": "t"}))
	reg := registration("team-a", "w", "r", "w_")
	reg.Spec.CredentialRef = &v1alpha1.CredentialReference{Name: "tok", Key: "token"}
	e.create(reg)
	e.waitConfig(hasServers("team-a/w"))
	e.waitRegistration("team-a", "w", accepted(metav1.ConditionTrue, v1alpha1.ReasonAccepted),
		ready(metav1.ConditionTrue, v1alpha1.ReasonBackendReady))
	if strings.Contains(e.logs.String(), "forbidden") {
		t.Errorf("the controller met a forbidden request:\n%s", e.logs.String())
	}
}

// TestDeployCRDsInSync: kustomize cannot load files outside build/deploy,
// so the CRDs are copied there by `go generate`; the copies must match.
func TestDeployCRDsInSync(t *testing.T) {
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	gen, err := filepath.Glob(filepath.Join(root, "controller", "crd", "*.yaml"))
	if err != nil || len(gen) == 0 {
		t.Fatalf("no generated CRDs: %v", err)
	}
	for _, p := range gen {
		a, err1 := os.ReadFile(p)
		b, err2 := os.ReadFile(filepath.Join(root, "build", "deploy", "crd", filepath.Base(p)))
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("build/deploy/crd/%s differs from controller/crd: run `go generate ./controller/...`", filepath.Base(p))
		}
	}
}
