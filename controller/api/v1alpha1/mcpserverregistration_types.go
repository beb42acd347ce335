package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MCPServerRegistrationSpec puts one MCP server behind the gateway.
//
// The backend is found through a Gateway API HTTPRoute: its first hostname
// is the :authority the in-Envoy router sets on calls routed to the server
// (so Envoy's route table picks the backend), and its single Service
// backendRef is where the broker connects to list the server's tools.
type MCPServerRegistrationSpec struct {
	// TargetRef is the HTTPRoute, in this registration's namespace, that
	// routes to the MCP server.
	TargetRef TargetReference `json:"targetRef"`

	// Prefix is prepended to the server's tool and prompt names in the
	// gateway's aggregated lists, and calls of names that begin with it are
	// routed to the server. Prefixes must not overlap: no registration's
	// prefix may equal or begin another's ("weather_" and "weather_alerts_"
	// overlap), nor begin another registration's alias. On a clash the
	// oldest registration keeps its names and the others are not accepted
	// (reason PrefixConflict). At most one registration may use the empty
	// prefix; it gets every name no other prefix or alias claims, so its
	// own names inside another prefix are not listed.
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_.-]*$`
	// +kubebuilder:validation:MaxLength=64
	Prefix string `json:"prefix"`

	// Aliases map extra gateway names to the server's own (unprefixed)
	// tool or prompt names, for clients that call fixed names and cannot
	// be taught a prefix: {"search": "search"} offers the server's
	// "search" under that exact name as well as under prefix+"search".
	// An alias takes precedence over any prefixed name equal to it. Alias
	// names are unique across all registrations and must not begin with
	// another registration's prefix (they would capture its names): on a
	// clash the oldest registration keeps its names and the others are not
	// accepted (reason AliasConflict).
	// +kubebuilder:validation:MaxProperties=256
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(k) >= 1 && size(k) <= 128 && size(self[k]) >= 1 && size(self[k]) <= 128)",message="alias names and their targets must be 1 to 128 characters long"
	// +optional
	Aliases map[string]string `json:"aliases,omitempty"`

	// Stateless declares that the backend serves the stateless protocol
	// revision (2026-07-28): the gateway then routes the tools/call and
	// prompts/get of stateless-era clients to it directly. Otherwise
	// (a session-era backend, the default) those calls go through the
	// gateway's own session with the backend.
	// +optional
	Stateless bool `json:"stateless,omitempty"`

	// Path is the server's Streamable HTTP endpoint path on the backend.
	// +kubebuilder:default="/mcp"
	// +kubebuilder:validation:Pattern=`^/[^\s?#]*$`
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Path string `json:"path,omitempty"`

	// CredentialRef, if set, names a Secret key (in this namespace) whose
	// value the gateway sends to the backend on every request. The Secret
	// must carry the label mcpgw.io/credential=true: the controller only
	// ever reads Secrets opted in that way, so creating a registration
	// cannot exfiltrate an arbitrary Secret of the namespace. The value is
	// copied to the gateway's credentials Secret and the config refers to
	// it by file path; it is never written into the config itself.
	// +optional
	CredentialRef *CredentialReference `json:"credentialRef,omitempty"`

	// Enabled set to false keeps the registration but leaves the server out
	// of the gateway config.
	// +kubebuilder:default=true
	// +optional
	Enabled *bool `json:"enabled,omitempty"`
}

// TargetReference names the HTTPRoute of a registration.
type TargetReference struct {
	// Group of the target; only Gateway API's is supported.
	// +kubebuilder:default="gateway.networking.k8s.io"
	// +kubebuilder:validation:Enum=gateway.networking.k8s.io
	// +optional
	Group string `json:"group,omitempty"`
	// Kind of the target; only HTTPRoute is supported.
	// +kubebuilder:default="HTTPRoute"
	// +kubebuilder:validation:Enum=HTTPRoute
	// +optional
	Kind string `json:"kind,omitempty"`
	// Name of the HTTPRoute in the registration's namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// CredentialReference selects a key of a Secret in the registration's
// namespace, and the request header its value is sent in.
type CredentialReference struct {
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// Key in the Secret's data.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key"`
	// Header the value is sent in (default Authorization). The value is
	// sent verbatim, so an Authorization value includes its scheme
	// ("Bearer ...").
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9!#$%&'*+.^_|~-]+$`
	// +kubebuilder:validation:MaxLength=128
	// +optional
	Header string `json:"header,omitempty"`
}

// MCPServerRegistrationStatus reports what the gateway made of the
// registration.
type MCPServerRegistrationStatus struct {
	// Conditions: Accepted (in the gateway config) and Ready (the broker
	// reached the backend and discovered its tools).
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// ServerName is the server's name in the gateway config
	// ("namespace/name"), set while accepted.
	// +optional
	ServerName string `json:"serverName,omitempty"`
	// URL is the backend endpoint derived from the HTTPRoute.
	// +optional
	URL string `json:"url,omitempty"`
	// Hostname is the :authority derived from the HTTPRoute.
	// +optional
	Hostname string `json:"hostname,omitempty"`
	// Tools is the number of tools the broker discovered, set while Ready.
	// +optional
	Tools *int32 `json:"tools,omitempty"`
	// LastCheckTime is when the broker's status was last read for this
	// server.
	// +optional
	LastCheckTime *metav1.Time `json:"lastCheckTime,omitempty"`
}

// MCPServerRegistration puts an MCP server, reached through an HTTPRoute,
// behind the mcpgw gateway.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=mcpreg,categories=mcpgw
// +kubebuilder:printcolumn:name="Prefix",type=string,JSONPath=`.spec.prefix`
// +kubebuilder:printcolumn:name="Route",type=string,JSONPath=`.spec.targetRef.name`
// +kubebuilder:printcolumn:name="Accepted",type=string,JSONPath=`.status.conditions[?(@.type=="Accepted")].status`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Tools",type=integer,JSONPath=`.status.tools`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type MCPServerRegistration struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   MCPServerRegistrationSpec   `json:"spec"`
	Status MCPServerRegistrationStatus `json:"status,omitempty"`
}

// IsEnabled reports whether the registration should be in the config
// (Enabled defaults to true).
func (r *MCPServerRegistration) IsEnabled() bool {
	return r.Spec.Enabled == nil || *r.Spec.Enabled
}

// MCPServerRegistrationList is a list of MCPServerRegistration.
//
// +kubebuilder:object:root=true
type MCPServerRegistrationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MCPServerRegistration `json:"items"`
}
