// Package v1alpha1 holds the Go types of mcpgw's custom resources:
// MCPServerRegistration (put one MCP server behind the gateway) and
// MCPVirtualServer (a named subset of the gateway's tools).
//
// The CRD YAML in controller/crd and zz_generated.deepcopy.go are generated
// from the markers here by controller-gen (`go generate ./controller/...`).
//
// +kubebuilder:object:generate=true
// +groupName=mcpgw.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the API group and version of these types.
	GroupVersion = schema.GroupVersion{Group: "mcpgw.io", Version: "v1alpha1"}

	// SchemeBuilder registers the types with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types of this group-version to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func init() {
	SchemeBuilder.Register(&MCPServerRegistration{}, &MCPServerRegistrationList{})
	SchemeBuilder.Register(&MCPVirtualServer{}, &MCPVirtualServerList{})
}
