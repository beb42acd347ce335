// Package golang is mcpgw's Envoy golang-filter adapter: it runs the
// host-agnostic router (filter/router) as a plugin of contrib Envoy's
// envoy.filters.http.golang, built into a shared object by
// filter/cmd/libmcpgw-golang (the only package that imports the cgo shim).
//
// This package is plain Go over the filter API
// (github.com/envoyproxy/envoy/contrib/golang/common/go/api, v1.39.1), so it
// is tested with fakes of that API; the shared object is tested through a
// fake Envoy host (internal/fakehost). Pin the API version to the Envoy
// version: a C callback missing from the running Envoy kills it on first
// call. This one targets envoyproxy/envoy:contrib-v1.39.x.
//
// Envoy filter configuration:
//
//	http_filters:
//	- name: envoy.filters.http.golang
//	  typed_config:
//	    "@type": type.googleapis.com/envoy.extensions.filters.http.golang.v3alpha.Config
//	    library_id: mcpgw
//	    library_path: /usr/local/lib/mcpgw/libmcpgw-golang.so
//	    plugin_name: mcpgw
//	    plugin_config:
//	      "@type": type.googleapis.com/xds.type.v3.TypedStruct
//	      value: {config_path: /etc/mcpgw/config.yaml}
//	- name: envoy.filters.http.router  # after mcpgw
//
// plugin_config may also be a google.protobuf.Struct, or a
// google.protobuf.StringValue holding the JSON (as for the dynamic module).
// Plugin configs naming the same config_path share one router.Router and one
// config.Watch (filter/host).
//
// Per request, the same as the dynamic module: DecodeHeaders strips
// config.InternalHeaders (clearing the route cache if any was present) and
// asks the router whether to buffer the body (api.StopAndBuffer); DecodeData
// hands the complete body to the router and applies its decision (headers,
// body rewrite, route cache clear, local JSON-RPC reply), or opens a backend
// session on a goroutine in the filter's async mode (api.Running, then
// Continue or SendLocalReply from the goroutine; session.go). EncodeHeaders
// gives the client back its gateway session id; on a backend's 404 for a
// routed call (a lost backend session, recognized by the response code
// details "via_upstream") it returns api.Running, replays the call on a
// goroutine, and sends the backend's answer, or a JSON-RPC error, with
// SendLocalReply in place of the response.
//
// Router metrics are Envoy counters named mcpgw.* (metrics.go); slog records
// go to Envoy's golang logger (log.go).
package golang
