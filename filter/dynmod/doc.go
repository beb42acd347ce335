// Package dynmod is mcpgw's Envoy dynamic-module adapter: the cgo layer
// that runs the host-agnostic router (filter/router) as an Envoy HTTP filter
// loaded from a shared object (see filter/cmd/libmcpgw-dynmod).
//
// It implements the Envoy dynamic-modules ABI directly, declaring only the
// hooks and callbacks it uses (abi.h). One shared object serves Envoy 1.39
// (ABI "v0.1.0") and 1.40 ("v0.2.0"): both look up the same hooks and provide
// the same callbacks, and the module reports the ABI version of the Envoy
// that loaded it (abiversion.go).
//
// Envoy filter configuration:
//
//	http_filters:
//	- name: mcpgw
//	  typed_config:
//	    "@type": type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter
//	    dynamic_module_config: {name: mcpgw-dynmod, do_not_close: true}
//	    filter_name: mcpgw
//	    filter_config:
//	      "@type": type.googleapis.com/google.protobuf.StringValue
//	      value: '{"config_path": "/etc/mcpgw/config.yaml"}'
//	- name: envoy.filters.http.router  # after mcpgw
//
// (a google.protobuf.Struct with the same field works too). Filter configs
// naming the same config_path share one router.Router and one config.Watch.
//
// Per request: the request-headers hook strips config.InternalHeaders
// (clearing the route cache if any was present) and asks the router whether
// to buffer the body; the body hook hands the complete body to the router
// and applies its decision (headers, body rewrite, route cache clear, local
// JSON-RPC reply), or opens a backend session on a goroutine and resumes the
// request through Envoy's scheduler (session.go). On a backend's 404 for a
// routed call (a lost backend session, recognized by the response code
// details "via_upstream", read through the ResponseCodeDetails attribute),
// the response-headers hook stops the response, the call is replayed on a
// goroutine, and the scheduled hook sends the backend's answer, or a
// JSON-RPC error, as a local reply in its place.
//
// Router metrics are exported as Envoy counters named mcpgw.* (metrics.go);
// slog records go to Envoy's dynamic_modules logger (log.go).
package dynmod
