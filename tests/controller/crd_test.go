package controller_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mcpgw/mcpgw/controller"
	"github.com/mcpgw/mcpgw/controller/api/v1alpha1"
)

// TestCRDSchema checks the CRDs' defaults and validation on the real API
// server: what the API refuses never reaches the controller.
func TestCRDSchema(t *testing.T) {
	_, cfg := startAPIServer(t)
	c, err := client.New(cfg, client.Options{Scheme: controller.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "t"}}); err != nil {
		t.Fatal(err)
	}

	reg := registration("t", "defaults", "r", "p_")
	if err := c.Create(ctx, reg); err != nil {
		t.Fatal(err)
	}
	if s := reg.Spec; s.Path != "/mcp" || s.Enabled == nil || !*s.Enabled ||
		s.TargetRef.Group != "gateway.networking.k8s.io" || s.TargetRef.Kind != "HTTPRoute" {
		t.Errorf("defaults not applied: %+v (enabled %v)", s, s.Enabled)
	}

	full := registration("t", "aliases", "r", "a_")
	full.Spec.Aliases, full.Spec.Stateless = map[string]string{"search": "search"}, true
	if err := c.Create(ctx, full); err != nil {
		t.Errorf("registration with aliases and stateless: %v", err)
	}

	for _, tc := range []struct {
		name   string
		mutate func(*v1alpha1.MCPServerRegistration)
		want   string // in the API server's message
	}{
		{"prefix charset", func(r *v1alpha1.MCPServerRegistration) { r.Spec.Prefix = "has space" }, "spec.prefix"},
		{"prefix length", func(r *v1alpha1.MCPServerRegistration) { r.Spec.Prefix = strings.Repeat("p", 65) }, "spec.prefix"},
		{"relative path", func(r *v1alpha1.MCPServerRegistration) { r.Spec.Path = "mcp" }, "spec.path"},
		{"path with query", func(r *v1alpha1.MCPServerRegistration) { r.Spec.Path = "/mcp?x=1" }, "spec.path"},
		{"target kind", func(r *v1alpha1.MCPServerRegistration) { r.Spec.TargetRef.Kind = "Service" }, "spec.targetRef.kind"},
		{"target name", func(r *v1alpha1.MCPServerRegistration) { r.Spec.TargetRef.Name = "" }, "spec.targetRef.name"},
		{"too many aliases", func(r *v1alpha1.MCPServerRegistration) {
			r.Spec.Aliases = map[string]string{}
			for i := range 257 {
				r.Spec.Aliases[fmt.Sprint("a", i)] = "t"
			}
		}, "spec.aliases"},
		{"empty alias target", func(r *v1alpha1.MCPServerRegistration) { r.Spec.Aliases = map[string]string{"a": ""} }, "spec.aliases"},
		{"long alias", func(r *v1alpha1.MCPServerRegistration) {
			r.Spec.Aliases = map[string]string{strings.Repeat("a", 129): "t"}
		}, "spec.aliases"},
		{"credential key", func(r *v1alpha1.MCPServerRegistration) {
			r.Spec.CredentialRef = &v1alpha1.CredentialReference{Name: "s", Key: "a/b"}
		}, "spec.credentialRef.key"},
		{"credential header", func(r *v1alpha1.MCPServerRegistration) {
			r.Spec.CredentialRef = &v1alpha1.CredentialReference{Name: "s", Key: "k", Header: "Bad Header:"}
		}, "spec.credentialRef.header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := registration("t", "invalid", "r", "p_")
			tc.mutate(r)
			err := c.Create(ctx, r)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("create: %v, want an error about %s", err, tc.want)
			}
		})
	}

	vs := &v1alpha1.MCPVirtualServer{ObjectMeta: metav1.ObjectMeta{Namespace: "t", Name: "empty"}}
	if err := c.Create(ctx, vs); err == nil || !strings.Contains(err.Error(), "spec.tools") {
		t.Errorf("virtual server without tools: %v, want an error about spec.tools", err)
	}
}
