package router

import "strings"

// originAllowed reports whether a request carrying the Origin header o may
// pass (MCP 2025-11-25, transports, "Security Warning": servers must
// validate Origin to prevent DNS rebinding, and answer 403 when it is
// invalid). With gateway.allowedOrigins set, o must be one of them exactly;
// unset, only loopback origins pass. It does not allocate.
func (t *table) originAllowed(o string) bool {
	if t.origins != nil {
		_, ok := t.origins[o]
		return ok
	}
	return isLoopbackOrigin(o)
}

// isLoopbackOrigin reports whether o is http(s)://localhost, 127.0.0.1 or
// [::1], with an optional port, as browsers serialize origins (lowercase,
// no path).
func isLoopbackOrigin(o string) bool {
	rest, ok := strings.CutPrefix(o, "http://")
	if !ok {
		if rest, ok = strings.CutPrefix(o, "https://"); !ok {
			return false
		}
	}
	var port string
	switch {
	case strings.HasPrefix(rest, "localhost"):
		port = rest[len("localhost"):]
	case strings.HasPrefix(rest, "127.0.0.1"):
		port = rest[len("127.0.0.1"):]
	case strings.HasPrefix(rest, "[::1]"):
		port = rest[len("[::1]"):]
	default:
		return false
	}
	if port == "" {
		return true
	}
	if port[0] != ':' || len(port) < 2 || len(port) > 6 {
		return false
	}
	for i := 1; i < len(port); i++ {
		if port[i] < '0' || port[i] > '9' {
			return false
		}
	}
	return true
}
