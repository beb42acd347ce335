package controller

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/mcpgw/mcpgw/controller/api/v1alpha1"
	"github.com/mcpgw/mcpgw/filter/config"
)

// CredentialLabel opts a Secret in as a credential source. The controller's
// cache only holds Secrets with this label set to "true".
const CredentialLabel = "mcpgw.io/credential"

// defaultPath is the CRD default, repeated for objects built without the
// API server's defaulting (tests, the file output).
const defaultPath = "/mcp"

// index looks objects up by namespace and name.
type index struct {
	in      Input
	routes  map[types.NamespacedName]*gatewayv1.HTTPRoute
	secrets map[types.NamespacedName]*corev1.Secret
}

func newIndex(in Input) *index {
	idx := &index{
		in:      in,
		routes:  map[types.NamespacedName]*gatewayv1.HTTPRoute{},
		secrets: map[types.NamespacedName]*corev1.Secret{},
	}
	for i := range in.Routes {
		r := &in.Routes[i]
		idx.routes[types.NamespacedName{Namespace: r.Namespace, Name: r.Name}] = r
	}
	for i := range in.Secrets {
		// The cache already lists only labelled Secrets; checking again keeps
		// Build's guarantee independent of how its caller lists them.
		if s := &in.Secrets[i]; s.Labels[CredentialLabel] == "true" {
			idx.secrets[types.NamespacedName{Namespace: s.Namespace, Name: s.Name}] = s
		}
	}
	return idx
}

// credential is one value to put in the credentials Secret.
type credential struct {
	file  string
	value []byte
}

// resolve derives a registration's config entry. The condition is True, or
// False with the first reason the registration cannot be served; prefix
// conflicts are Build's to decide.
func (idx *index) resolve(reg v1alpha1.MCPServerRegistration) (*config.Server, *credential, metav1.Condition) {
	if !reg.IsEnabled() {
		return nil, nil, notAccepted(v1alpha1.ReasonDisabled, "spec.enabled is false")
	}
	key := types.NamespacedName{Namespace: reg.Namespace, Name: reg.Spec.TargetRef.Name}
	route, ok := idx.routes[key]
	if !ok {
		return nil, nil, notAccepted(v1alpha1.ReasonRouteNotFound, "HTTPRoute %s not found", key)
	}
	hostname, cond := routeHostname(route)
	if cond != nil {
		return nil, nil, *cond
	}
	backend, cond := routeBackend(route)
	if cond != nil {
		return nil, nil, *cond
	}
	srv := &config.Server{
		Name:      reg.Namespace + "/" + reg.Name,
		URL:       idx.backendURL(route.Namespace, backend, reg.Spec.Path),
		Hostname:  hostname,
		Prefix:    reg.Spec.Prefix,
		Aliases:   maps.Clone(reg.Spec.Aliases),
		Stateless: reg.Spec.Stateless,
	}
	if addr, ok := idx.in.ServiceAddresses[serviceKey(route.Namespace, backend)]; ok {
		// Reached directly, outside the cluster (Options.ServiceAddresses).
		srv.URL, srv.Hostname = "http://"+addr+pathOrDefault(reg.Spec.Path), addr
	}
	var cred *credential
	if ref := reg.Spec.CredentialRef; ref != nil {
		var c metav1.Condition
		if cred, c = idx.credential(reg.Namespace, ref); c.Status != metav1.ConditionTrue {
			return nil, nil, c
		}
		srv.Credential = &config.Credential{
			Header:    ref.Header,
			SecretRef: config.SecretRef{File: path.Join(idx.in.CredentialsDir, cred.file)},
		}
	}
	// Let the contract's own validation have the last word, so the written
	// config always parses for the broker and the router.
	probe := config.Config{Version: config.Version, Gateway: config.Gateway{SessionKey: config.SecretRef{File: "k"}}, Servers: []config.Server{*srv}}
	if err := probe.Validate(); err != nil {
		return nil, nil, notAccepted(v1alpha1.ReasonInvalid, "%s", strings.ReplaceAll(err.Error(), "servers[0].", ""))
	}
	return srv, cred, accepted()
}

// routeHostname returns the route's first hostname: the :authority the
// router sets so that Envoy picks this route.
func routeHostname(route *gatewayv1.HTTPRoute) (string, *metav1.Condition) {
	if len(route.Spec.Hostnames) == 0 {
		c := notAccepted(v1alpha1.ReasonRouteNoHostname,
			"HTTPRoute %s/%s has no spec.hostnames; the gateway routes to servers by host name", route.Namespace, route.Name)
		return "", &c
	}
	h := string(route.Spec.Hostnames[0])
	if strings.HasPrefix(h, "*") {
		c := notAccepted(v1alpha1.ReasonRouteNoHostname,
			"the first hostname of HTTPRoute %s/%s is the wildcard %q; list a concrete host name first", route.Namespace, route.Name, h)
		return "", &c
	}
	return h, nil
}

// serviceRef is a Service port in the route's namespace.
type serviceRef struct {
	name string
	port int32
}

// routeBackend returns the one Service port the route sends traffic to.
// Several distinct backends are refused rather than one picked: the broker
// must list tools from the same server the router sends calls to.
func routeBackend(route *gatewayv1.HTTPRoute) (serviceRef, *metav1.Condition) {
	fail := func(reason, format string, args ...any) (serviceRef, *metav1.Condition) {
		c := notAccepted(reason, "HTTPRoute %s/%s: "+format, append([]any{route.Namespace, route.Name}, args...)...)
		return serviceRef{}, &c
	}
	var refs []serviceRef
	for _, rule := range route.Spec.Rules {
		for _, b := range rule.BackendRefs {
			if (b.Group != nil && *b.Group != "") || (b.Kind != nil && *b.Kind != "Service") {
				return fail(v1alpha1.ReasonUnsupportedBackend, "backendRef %s is not a core Service", b.Name)
			}
			if b.Namespace != nil && string(*b.Namespace) != route.Namespace {
				return fail(v1alpha1.ReasonUnsupportedBackend,
					"backendRef %s is in namespace %s; only the route's own namespace is supported", b.Name, *b.Namespace)
			}
			if b.Port == nil {
				return fail(v1alpha1.ReasonInvalid, "backendRef %s has no port", b.Name)
			}
			ref := serviceRef{name: string(b.Name), port: *b.Port}
			if !slices.Contains(refs, ref) {
				refs = append(refs, ref)
			}
		}
	}
	switch len(refs) {
	case 0:
		return fail(v1alpha1.ReasonRouteNoBackend, "no backendRefs")
	case 1:
		return refs[0], nil
	}
	names := make([]string, len(refs))
	for i, r := range refs {
		names[i] = fmt.Sprintf("%s:%d", r.name, r.port)
	}
	return fail(v1alpha1.ReasonRouteAmbiguous, "several backends (%s); a registered route must have exactly one", strings.Join(names, ", "))
}

func (idx *index) backendURL(ns string, b serviceRef, p string) string {
	domain := idx.in.ClusterDomain
	if domain == "" {
		domain = DefaultClusterDomain
	}
	return fmt.Sprintf("http://%s.%s.svc.%s:%d%s", b.name, ns, domain, b.port, pathOrDefault(p))
}

func pathOrDefault(p string) string {
	if p == "" {
		return defaultPath
	}
	return p
}

// serviceKey is a Service port as Input.ServiceAddresses keys it.
func serviceKey(ns string, b serviceRef) string {
	return fmt.Sprintf("%s/%s:%d", ns, b.name, b.port)
}

// credential reads the referenced value. Messages never contain it.
func (idx *index) credential(ns string, ref *v1alpha1.CredentialReference) (*credential, metav1.Condition) {
	key := types.NamespacedName{Namespace: ns, Name: ref.Name}
	s, ok := idx.secrets[key]
	if !ok {
		return nil, notAccepted(v1alpha1.ReasonCredentialNotFound,
			"Secret %s not found, or not labelled %s=true", key, CredentialLabel)
	}
	v := s.Data[ref.Key]
	if len(v) == 0 {
		return nil, notAccepted(v1alpha1.ReasonCredentialNotFound, "Secret %s has no (or an empty) key %q", key, ref.Key)
	}
	return &credential{file: credentialFile(ns, ref.Name, ref.Key), value: v}, accepted()
}

// credentialFile names a credential in the credentials Secret. Namespaces
// and Secret names cannot contain '_', so "ns_name_key" is unambiguous; a
// name too long for a Secret key is hashed instead.
func credentialFile(ns, name, key string) string {
	f := ns + "_" + name + "_" + key
	if len(f) <= 253 {
		return f
	}
	sum := sha256.Sum256([]byte(f))
	return ns + "_" + hex.EncodeToString(sum[:16])
}
