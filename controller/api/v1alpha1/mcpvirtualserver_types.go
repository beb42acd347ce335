package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MCPVirtualServerSpec names a subset of the gateway's tools, to be offered
// as a server of its own.
//
// The virtual server <namespace>/<name> is served at the gateway's
// /mcp/<namespace>/<name> (status.path): a client connecting to that URL
// lists only these tools (those an accepted registration provides), and
// the gateway refuses its calls of any other tool. It offers no prompts or
// resources. It narrows what a client sees; it does not restrict access:
// the gateway's /mcp still offers every tool.
type MCPVirtualServerSpec struct {
	// Description is sent to clients of the virtual server (the server's
	// description and instructions in the initialize result).
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Description string `json:"description,omitempty"`
	// Tools are gateway tool names, i.e. with the registration's prefix
	// ("weather_forecast"), or aliases (MCPServerRegistrationSpec.Aliases).
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=1024
	// +listType=set
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	Tools []string `json:"tools"`
}

// MCPVirtualServerStatus reports what the gateway made of the virtual
// server.
type MCPVirtualServerStatus struct {
	// Conditions: Accepted (in the gateway config) and ResolvedRefs (every
	// tool carries the prefix of an accepted registration).
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Path is the endpoint path clients connect to, on the gateway's
	// address ("/mcp/<namespace>/<name>"), set while accepted.
	// +optional
	Path string `json:"path,omitempty"`
}

// MCPVirtualServer is a named list of the gateway's tools.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=mcpvs,categories=mcpgw
// +kubebuilder:printcolumn:name="Accepted",type=string,JSONPath=`.status.conditions[?(@.type=="Accepted")].status`
// +kubebuilder:printcolumn:name="Resolved",type=string,JSONPath=`.status.conditions[?(@.type=="ResolvedRefs")].status`
// +kubebuilder:printcolumn:name="Path",type=string,JSONPath=`.status.path`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type MCPVirtualServer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   MCPVirtualServerSpec   `json:"spec"`
	Status MCPVirtualServerStatus `json:"status,omitempty"`
}

// MCPVirtualServerList is a list of MCPVirtualServer.
//
// +kubebuilder:object:root=true
type MCPVirtualServerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MCPVirtualServer `json:"items"`
}
