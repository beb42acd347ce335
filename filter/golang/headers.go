package golang

import (
	"strings"

	"github.com/envoyproxy/envoy/contrib/golang/common/go/api"

	"github.com/mcpgw/mcpgw/filter/config"
	"github.com/mcpgw/mcpgw/filter/host"
	"github.com/mcpgw/mcpgw/filter/router"
)

// The shim's header maps copy all of Envoy's headers into a Go map on first
// read (one cgo call), then serve reads from it and write through to Envoy
// (Set, Del: one cgo call each; from a goroutine Envoy posts the write to
// the worker). So reads below are map lookups; only writes cross into C.

// stripInternal removes every client-supplied config.InternalHeaders value
// and reports whether there was any.
func stripInternal(h api.HeaderMap) (removed bool) {
	for i := range config.InternalHeaders {
		name := config.InternalHeaders[i]
		if _, ok := h.Get(name); ok {
			h.Del(name) // every value of it
			removed = true
		}
	}
	return removed
}

// readRequestHeaders reads what the router needs, after stripInternal.
// The values are Go copies (the shim's map), valid beyond this call.
func readRequestHeaders(h api.RequestHeaderMap, endStream bool) router.RequestHeaders {
	get := func(name string) string { v, _ := h.Get(name); return v }
	return router.RequestHeaders{
		Method:          get(":method"),
		ContentType:     get("content-type"),
		ContentLength:   host.ParseContentLength(get("content-length")),
		SessionID:       get(config.HeaderSessionID),
		ProtocolVersion: get(config.HeaderProtocolVersion),
		Path:            get(":path"),
		Origin:          get("origin"),
		MCPMethod:       get(config.HeaderMCPMethod),
		MCPName:         get(config.HeaderMCPName),
		LastEventID:     get(config.HeaderLastEventID),
		EndOfStream:     endStream,
	}
}

// headerWriter is the router.HeaderWriter over a golang-filter header map.
type headerWriter struct{ h api.HeaderMap }

// Set sets name to value. An empty value removes the header, as the
// dynamic module's set_header does, so both adapters write the same maps.
//
// value may point into the router's pooled memory (router.Stream.ApplyRequest):
// Envoy copies it before Set returns (inline, or into the posted write), and
// the shim's Go-side copy of the map, which keeps the string, is not read
// after the stream ends.
func (w headerWriter) Set(name, value string) {
	if value == "" {
		w.h.Del(name)
		return
	}
	w.h.Set(name, value)
}

// Remove removes every value of name.
func (w headerWriter) Remove(name string) { w.h.Del(name) }

// mapWriter is the router.HeaderWriter for the headers of a local reply
// (SendLocalReply takes a map). Values are copied: the router's may point
// into memory released with the Stream.
type mapWriter map[string][]string

func (w mapWriter) Set(name, value string) { w[name] = []string{strings.Clone(value)} }

func (w mapWriter) Remove(name string) { delete(w, name) }
