package config

import (
	"fmt"
	"regexp"
	"strings"
)

// EndpointPath is the gateway's MCP endpoint: the broker serves it, and
// Envoy sends every request under it that the router does not route to a
// backend to the broker.
const EndpointPath = "/mcp"

// VirtualServer is a named subset of the gateway's tools, offered to
// clients as an MCP server of its own.
//
// A client selects it by its endpoint URL: the virtual server "team-a/dev"
// is served at EndpointPath + "/team-a/dev" ("http://gateway/mcp/team-a/dev"),
// next to the whole gateway at EndpointPath. The selection travels in the
// URL rather than in a request header because every MCP client lets its
// user configure the server URL, while many cannot add headers; and because
// a Streamable HTTP client sends every request of a session to that one
// URL, so the router sees the selection on each tools/call, not only on the
// initialize that chose it.
//
// Its tools/list holds only the listed tools that some server currently
// provides (the broker); a tools/call of any other tool through its
// endpoint is refused (the router). It offers tools only: no prompts and
// no resources. It narrows what a client sees and calls through that
// endpoint; it is not an access-control boundary, since the gateway's own
// endpoint still offers every tool.
type VirtualServer struct {
	// Name is unique: a lower-case DNS label, optionally followed by "/"
	// and a DNS subdomain, such as the "namespace/name" the controller
	// writes ("team-a/dev") or a bare "dev".
	Name string `json:"name"`
	// Description is sent to clients as the server's instructions.
	Description string `json:"description,omitempty"`
	// Tools are gateway tool names, i.e. prefixed ("weather_forecast").
	// A name no server provides (yet) is allowed and simply not listed.
	Tools []string `json:"tools"`
}

// virtualServerName is VirtualServer.Name's syntax: it needs no escaping in
// a URL path.
var virtualServerName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(/[a-z0-9]([-.a-z0-9]*[a-z0-9])?)?$`)

// maxVirtualServerName bounds a name: a namespace (63) and an object name
// (253) with the slash between them.
const maxVirtualServerName = 63 + 1 + 253

func (v *VirtualServer) validate(i int, names map[string]int) []error {
	var errs []error
	at := fmt.Sprintf("virtualServers[%d]", i)
	switch {
	case !virtualServerName.MatchString(v.Name) || len(v.Name) > maxVirtualServerName:
		errs = append(errs, fmt.Errorf(`%s.name: %q must be a lower-case DNS label, optionally followed by "/" and a DNS subdomain (e.g. "team-a/dev")`, at, v.Name))
	default:
		if j, dup := names[v.Name]; dup {
			errs = append(errs, fmt.Errorf("%s.name: %q already used by virtualServers[%d]", at, v.Name, j))
		} else {
			names[v.Name] = i
		}
	}
	if len(v.Tools) == 0 {
		errs = append(errs, fmt.Errorf("%s.tools: at least one tool is required", at))
	}
	seen := make(map[string]bool, len(v.Tools))
	for j, t := range v.Tools {
		switch {
		case t == "":
			errs = append(errs, fmt.Errorf("%s.tools[%d]: empty tool name", at, j))
		case seen[t]:
			errs = append(errs, fmt.Errorf("%s.tools[%d]: %q listed twice", at, j, t))
		}
		seen[t] = true
	}
	return errs
}

// VirtualServerPath returns the endpoint path of the named virtual server.
func VirtualServerPath(name string) string { return EndpointPath + "/" + name }

// VirtualServerFromPath returns the name of the virtual server a request
// path (":path", a query allowed) selects. ok is false for a path outside
// EndpointPath + "/", which selects none (the whole gateway at EndpointPath,
// or not an MCP endpoint at all). The name is not validated: an unknown or
// malformed one is for the caller to refuse. It does not allocate.
func VirtualServerFromPath(path string) (name string, ok bool) {
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	name, ok = strings.CutPrefix(path, EndpointPath+"/")
	if !ok {
		return "", false
	}
	return name, true
}

// IsEndpointPath reports whether path (a :path, with any query) is the
// gateway's endpoint or a virtual server's under it. The router acts on
// those alone: a request for any other path sharing the listener (another
// application's, or a near miss such as "/mcpx" or "/MCP") passes through
// it untouched, to whatever Envoy's route table sends it to.
func IsEndpointPath(path string) bool {
	path, _, _ = strings.Cut(path, "?")
	return path == EndpointPath || strings.HasPrefix(path, EndpointPath+"/")
}
