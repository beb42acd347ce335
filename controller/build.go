// Package controller is mcpgw's Kubernetes controller: it turns
// MCPServerRegistration and MCPVirtualServer resources, the HTTPRoutes they
// target and their credential Secrets into the gateway config file that the
// broker and the in-Envoy router watch, and reports in each resource's
// status what the gateway made of it.
//
// The work is split in two. Build is a pure function from the listed
// objects to the desired config and per-resource conditions (golden-tested
// without a cluster). The Reconciler loads the objects, calls Build, and
// syncs the result: the output Secret or file, then the statuses.
package controller

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/mcpgw/mcpgw/controller/api/v1alpha1"
	"github.com/mcpgw/mcpgw/filter/config"
)

// DefaultClusterDomain is the DNS suffix of in-cluster Service names.
const DefaultClusterDomain = "cluster.local"

// Input is everything Build derives the gateway config from.
type Input struct {
	// Gateway is copied into the config: the session key reference and the
	// router's limits. The controller never reads the session key itself.
	Gateway config.Gateway
	// CredentialsDir is where the broker and Envoy find credential files:
	// the mount path of the credentials Secret, or the directory the file
	// output writes them to.
	CredentialsDir string
	// ClusterDomain is the Service DNS suffix (DefaultClusterDomain if empty).
	ClusterDomain string
	// ServiceAddresses maps Service ports ("namespace/name:port") to the
	// host:port the gateway reaches them at directly; see
	// Options.ServiceAddresses.
	ServiceAddresses map[string]string

	Registrations  []v1alpha1.MCPServerRegistration
	VirtualServers []v1alpha1.MCPVirtualServer
	Routes         []gatewayv1.HTTPRoute
	// Secrets are the credential Secrets the controller may read: only
	// those labelled mcpgw.io/credential=true are ever listed.
	Secrets []corev1.Secret
}

// Output is the desired state Build computes.
type Output struct {
	// Config is the gateway config, servers and virtual servers sorted by
	// name.
	Config config.Config
	// Credentials is the data of the credentials Secret: file name → value.
	// Config credential references point at CredentialsDir/<file name>.
	Credentials map[string][]byte
	// Registrations holds the outcome for every registration.
	Registrations map[types.NamespacedName]RegistrationResult
	// VirtualServerResults holds the outcome for every virtual server.
	VirtualServerResults map[types.NamespacedName]VirtualServerResult
}

// RegistrationResult is Build's verdict on one registration.
type RegistrationResult struct {
	// Accepted has Type, Status, Reason and Message set; the status sync
	// adds the generation and transition time.
	Accepted metav1.Condition
	// Server is the registration's entry in the config; nil unless accepted.
	Server *config.Server
}

// VirtualServerResult is Build's verdict on one virtual server.
type VirtualServerResult struct {
	Accepted     metav1.Condition
	ResolvedRefs metav1.Condition
	// Path is the endpoint path clients connect to; empty unless accepted.
	Path string
}

// Build computes the gateway config and a verdict for every resource. It is
// deterministic: the same objects in any order give the same output.
func Build(in Input) Output {
	out := Output{
		Config:               config.Config{Version: config.Version, Gateway: in.Gateway, Servers: []config.Server{}},
		Credentials:          map[string][]byte{},
		Registrations:        map[types.NamespacedName]RegistrationResult{},
		VirtualServerResults: map[types.NamespacedName]VirtualServerResult{},
	}
	idx := newIndex(in)
	var owners nameOwners
	for _, reg := range oldestFirst(in.Registrations) {
		key := types.NamespacedName{Namespace: reg.Namespace, Name: reg.Name}
		srv, cred, cond := idx.resolve(reg)
		if cond.Status == metav1.ConditionTrue {
			cond = owners.claim(srv)
		}
		res := RegistrationResult{Accepted: cond}
		if cond.Status == metav1.ConditionTrue {
			res.Server = srv
			out.Config.Servers = append(out.Config.Servers, *srv)
			if cred != nil {
				out.Credentials[cred.file] = cred.value
			}
		}
		out.Registrations[key] = res
	}
	slices.SortFunc(out.Config.Servers, func(a, b config.Server) int { return strings.Compare(a.Name, b.Name) })
	out.Config.VirtualServers, out.VirtualServerResults = buildVirtualServers(in.VirtualServers, out.Config.Servers)
	return out
}

// nameOwners holds the servers of the registrations accepted so far, whose
// prefixes and aliases are taken.
type nameOwners struct {
	servers []*config.Server
}

// claim gives srv its prefix and aliases, or returns why it cannot have
// them. Registrations claim oldest first: the oldest keeps a contested name,
// so adding a newer registration can never take a working server's names
// away. The rule is the config contract's (config.InPrefix), so the written
// config always validates: a prefix must differ from, and not overlap, an
// older one, nor begin an older alias (PrefixConflict); an alias must not
// be an older one, nor lie inside an older prefix (AliasConflict).
func (o *nameOwners) claim(srv *config.Server) metav1.Condition {
	for _, old := range o.servers {
		if c, conflict := prefixConflict(srv.Prefix, old); conflict {
			return c
		}
	}
	for _, alias := range slices.Sorted(maps.Keys(srv.Aliases)) {
		for _, old := range o.servers {
			if c, conflict := aliasConflict(alias, old); conflict {
				return c
			}
		}
	}
	o.servers = append(o.servers, srv)
	return accepted()
}

// prefixConflict reports whether prefix clashes with the names of old, an
// older registration's server.
func prefixConflict(prefix string, old *config.Server) (metav1.Condition, bool) {
	switch {
	case prefix == old.Prefix:
		return notAccepted(v1alpha1.ReasonPrefixConflict,
			"prefix %q is already used by the older registration %s", prefix, old.Name), true
	case config.InPrefix(prefix, old.Prefix) || config.InPrefix(old.Prefix, prefix):
		return notAccepted(v1alpha1.ReasonPrefixConflict,
			"prefix %q overlaps the prefix %q of the older registration %s: one begins with the other, so both would claim names such as %q",
			prefix, old.Prefix, old.Name, longer(prefix, old.Prefix)+"x"), true
	}
	for _, alias := range slices.Sorted(maps.Keys(old.Aliases)) {
		if config.InPrefix(alias, prefix) {
			return notAccepted(v1alpha1.ReasonPrefixConflict,
				"prefix %q would capture the alias %q of the older registration %s", prefix, alias, old.Name), true
		}
	}
	return metav1.Condition{}, false
}

func longer(a, b string) string {
	if len(a) > len(b) {
		return a
	}
	return b
}

// aliasConflict reports whether alias clashes with the names of old.
func aliasConflict(alias string, old *config.Server) (metav1.Condition, bool) {
	if _, taken := old.Aliases[alias]; taken {
		return notAccepted(v1alpha1.ReasonAliasConflict,
			"alias %q is already used by the older registration %s", alias, old.Name), true
	}
	if config.InPrefix(alias, old.Prefix) {
		return notAccepted(v1alpha1.ReasonAliasConflict,
			"alias %q is inside the prefix %q of the older registration %s and would capture its names", alias, old.Prefix, old.Name), true
	}
	return metav1.Condition{}, false
}

// oldestFirst orders registrations by creation time, then by namespace and
// name, which decides prefix conflicts the way Gateway API decides route
// conflicts.
func oldestFirst(regs []v1alpha1.MCPServerRegistration) []v1alpha1.MCPServerRegistration {
	s := slices.Clone(regs)
	slices.SortStableFunc(s, func(a, b v1alpha1.MCPServerRegistration) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
	return s
}

func accepted() metav1.Condition {
	return metav1.Condition{
		Type: v1alpha1.ConditionAccepted, Status: metav1.ConditionTrue,
		Reason: v1alpha1.ReasonAccepted, Message: "the server is in the gateway config",
	}
}

func notAccepted(reason, format string, args ...any) metav1.Condition {
	return metav1.Condition{
		Type: v1alpha1.ConditionAccepted, Status: metav1.ConditionFalse,
		Reason: reason, Message: fmt.Sprintf(format, args...),
	}
}

// buildVirtualServers puts every valid virtual server into the config,
// named "namespace/name" (served at /mcp/namespace/name). A tool that is
// neither an alias nor carries the prefix of an accepted server is
// reported, not dropped, since its registration may simply not have
// arrived yet; the broker lists only the tools that exist.
func buildVirtualServers(vss []v1alpha1.MCPVirtualServer, servers []config.Server) ([]config.VirtualServer, map[types.NamespacedName]VirtualServerResult) {
	out := []config.VirtualServer{}
	results := map[types.NamespacedName]VirtualServerResult{}
	for _, vs := range vss {
		tools := slices.Clone(vs.Spec.Tools)
		slices.Sort(tools)
		tools = slices.Compact(tools)
		v := config.VirtualServer{Name: vs.Namespace + "/" + vs.Name, Description: vs.Spec.Description, Tools: tools}
		key := types.NamespacedName{Namespace: vs.Namespace, Name: vs.Name}
		// The CRD's validation makes this pass; objects that bypassed it
		// (or a name the endpoint path cannot carry) must not make the
		// whole config invalid.
		probe := config.Config{Version: config.Version, Gateway: config.Gateway{SessionKey: config.SecretRef{File: "k"}},
			VirtualServers: []config.VirtualServer{v}}
		if err := probe.Validate(); err != nil {
			results[key] = VirtualServerResult{
				Accepted: metav1.Condition{Type: v1alpha1.ConditionAccepted, Status: metav1.ConditionFalse,
					Reason: v1alpha1.ReasonInvalid, Message: strings.ReplaceAll(err.Error(), "virtualServers[0].", "")},
				ResolvedRefs: metav1.Condition{Type: v1alpha1.ConditionResolvedRefs, Status: metav1.ConditionFalse,
					Reason: v1alpha1.ReasonNotAccepted, Message: "not in the gateway config"},
			}
			continue
		}
		out = append(out, v)
		res := VirtualServerResult{
			Path: config.VirtualServerPath(v.Name),
			Accepted: metav1.Condition{Type: v1alpha1.ConditionAccepted, Status: metav1.ConditionTrue,
				Reason: v1alpha1.ReasonAccepted, Message: "the virtual server is in the gateway config, served at " + config.VirtualServerPath(v.Name)},
			ResolvedRefs: metav1.Condition{Type: v1alpha1.ConditionResolvedRefs, Status: metav1.ConditionTrue,
				Reason: v1alpha1.ReasonResolved, Message: "every tool carries the prefix of, or is an alias of, an accepted server"},
		}
		if unknown := unresolvedTools(tools, servers); len(unknown) > 0 {
			res.ResolvedRefs.Status = metav1.ConditionFalse
			res.ResolvedRefs.Reason = v1alpha1.ReasonUnknownTools
			res.ResolvedRefs.Message = "no accepted server has the prefix or alias of: " + strings.Join(unknown, ", ")
		}
		results[key] = res
	}
	slices.SortFunc(out, func(a, b config.VirtualServer) int { return strings.Compare(a.Name, b.Name) })
	return out, results
}

// unresolvedTools returns the tools that no accepted server owns, by the
// rule the router routes and the broker lists by (config.Names).
func unresolvedTools(tools []string, servers []config.Server) []string {
	names := config.NewNames(servers)
	var unknown []string
	for _, t := range tools {
		if _, _, ok := names.Resolve(t); !ok {
			unknown = append(unknown, t)
		}
	}
	return unknown
}
