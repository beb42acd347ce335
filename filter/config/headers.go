package config

// Header names the router sets and Envoy's route table matches on. Clients
// may not set the internal ones: the router removes any client-supplied
// value before it decides, so a client cannot steer routing.
const (
	// HeaderMethod carries the JSON-RPC method of the request.
	HeaderMethod = "x-mcp-method"
	// HeaderServerName carries the Server.Name a call is routed to. Envoy
	// routes requests that carry it to the backends, all others to the broker.
	HeaderServerName = "x-mcp-servername"
	// HeaderToolName carries the unprefixed tool or prompt name.
	HeaderToolName = "x-mcp-toolname"
	// HeaderUpstreamHost carries host:port of the server's URL, for Envoy
	// setups that route by address (an ORIGINAL_DST cluster) instead of by
	// :authority, such as the local stack.
	HeaderUpstreamHost = "x-mcp-upstream-host"
	// HeaderSessionID is MCP's session header. Clients send the gateway
	// session; the router replaces it with the backend session on routed calls.
	HeaderSessionID = "mcp-session-id"
	// HeaderProtocolVersion is MCP's protocol version header.
	HeaderProtocolVersion = "mcp-protocol-version"
	// HeaderMCPMethod is the JSON-RPC method, which clients of the
	// stateless era (2026-07-28) send on every POST.
	HeaderMCPMethod = "mcp-method"
	// HeaderMCPName is the tool or prompt name (resource URI), which
	// stateless-era clients send on tools/call, prompts/get and
	// resources/read. The router rewrites it to the unprefixed name.
	HeaderMCPName = "mcp-name"
	// HeaderLastEventID is SSE's resumption header: a session-era client
	// resuming a stream with GET sends the last event id it received. The
	// router rewrites a gateway event id to the backend's.
	HeaderLastEventID = "last-event-id"
)

// InternalHeaders are removed from every client request.
var InternalHeaders = [...]string{HeaderMethod, HeaderServerName, HeaderToolName, HeaderUpstreamHost}
