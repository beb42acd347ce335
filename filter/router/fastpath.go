package router

import "unicode/utf8"

// routeOnHeaders routes a stateless-era (2026-07-28) tools/call or
// prompts/get on its Mcp-Method and Mcp-Name headers alone, without
// buffering or parsing the body, when the headers say all the router needs:
// the named tool or prompt belongs to a server that serves the stateless
// era, under the very name the client used (no prefix to strip, no alias
// to resolve: nothing in the body to rewrite). The body then streams
// through to the backend untouched.
//
// The router does not read the body here, so it cannot compare the headers
// with it; the backend does: 2026-07-28 requires every server to reject a
// request whose Mcp-Method or Mcp-Name differs from its body (HTTP 400,
// -32020). A client that sends one tool's name in the header and another's
// in the body therefore gets that error from the backend its header chose,
// whose tools are the only ones the header can reach.
//
// Anything else (a prefixed or aliased name, a session-era backend, a name
// no server has, a name with control characters, a virtual server that
// does not offer it) takes the body path, which validates and explains.
func (s *Stream) routeOnHeaders() bool {
	method, name := s.mcpMethod, s.mcpName
	if method != "tools/call" && method != "prompts/get" || name == "" || s.noVirtual {
		return false
	}
	if !utf8.ValidString(name) || hasControl(name) {
		return false
	}
	if s.virtual != nil && !s.virtual.offers(method, name) {
		return false
	}
	srv, bare := s.t.lookup(name)
	if srv == nil || !srv.Stateless || bare != name {
		return false
	}
	s.r.Metrics.Requests.Add(1)
	s.r.Metrics.RoutedByHeaders.Add(1)
	s.method, s.server, s.toolName, s.routed = method, srv, name, true
	// The body is not read: whether it declares the tasks extension is
	// unknown, so the answer is watched for a task id (tasks.go).
	s.mayCreateTask = true
	s.routeNow()
	return true
}
