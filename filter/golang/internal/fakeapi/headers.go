package fakeapi

import (
	"strconv"
	"strings"

	"github.com/envoyproxy/envoy/contrib/golang/common/go/api"
)

// Headers is an Envoy header map: ordered, lower-case keys.
type Headers struct {
	entries [][2]string
}

// Add appends a value, as a client sending the header twice would.
func (h *Headers) Add(name, value string) {
	h.entries = append(h.entries, [2]string{strings.ToLower(name), value})
}

// Values returns every value of name.
func (h *Headers) Values(name string) []string {
	name = strings.ToLower(name)
	var out []string
	for _, e := range h.entries {
		if e[0] == name {
			out = append(out, e[1])
		}
	}
	return out
}

// Get returns the first value of name and whether there is one.
func (h *Headers) Get(name string) (string, bool) {
	if vs := h.Values(name); len(vs) > 0 {
		return vs[0], true
	}
	return "", false
}

// Map returns a copy of every header.
func (h *Headers) Map() map[string][]string {
	m := map[string][]string{}
	for _, e := range h.entries {
		m[e[0]] = append(m[e[0]], e[1])
	}
	return m
}

func (h *Headers) set(name, value string) {
	h.remove(name)
	h.Add(name, value)
}

func (h *Headers) remove(name string) {
	name = strings.ToLower(name)
	kept := h.entries[:0]
	for _, e := range h.entries {
		if e[0] != name {
			kept = append(kept, e)
		}
	}
	h.entries = kept
}

// headerMap is what the filter gets: the shim's header map over a Headers.
// Like the shim, it copies Envoy's map into a Go map on first use and serves
// reads from that copy; writes go to both (through the CAPI rules in capi.go).
type headerMap struct {
	p     *procState
	m     *Headers
	check func(*procState) string // needHeaders or needTrailers
	cache map[string][]string
}

var (
	_ api.RequestHeaderMap   = (*headerMap)(nil)
	_ api.ResponseHeaderMap  = (*headerMap)(nil)
	_ api.RequestTrailerMap  = (*headerMap)(nil)
	_ api.ResponseTrailerMap = (*headerMap)(nil)
)

func (h *headerMap) init() {
	if h.cache == nil {
		h.p.s.capi(h.p, "CopyHeaders", h.check)
		h.p.s.mu.Lock()
		h.cache = h.m.Map()
		h.p.s.mu.Unlock()
	}
}

func (h *headerMap) GetRaw(name string) string {
	h.p.s.capi(h.p, "GetHeader", h.check)
	h.p.s.mu.Lock()
	defer h.p.s.mu.Unlock()
	v, _ := h.m.Get(name)
	return v
}

func (h *headerMap) Get(name string) (string, bool) {
	h.init()
	vs := h.cache[strings.ToLower(name)]
	if len(vs) == 0 {
		return "", false
	}
	return vs[0], true
}

func (h *headerMap) Values(name string) []string { h.init(); return h.cache[strings.ToLower(name)] }

func (h *headerMap) Set(name, value string) {
	name = strings.ToLower(name)
	h.init()
	h.cache[name] = []string{value}
	h.p.s.write(h.p, "SetHeader", h.check, func() { h.m.set(name, value) })
}

func (h *headerMap) Add(name, value string) {
	name = strings.ToLower(name)
	h.init()
	h.cache[name] = append(h.cache[name], value)
	h.p.s.write(h.p, "AddHeader", h.check, func() { h.m.Add(name, value) })
}

func (h *headerMap) Del(name string) {
	name = strings.ToLower(name)
	h.init()
	delete(h.cache, name)
	h.p.s.write(h.p, "RemoveHeader", h.check, func() { h.m.remove(name) })
}

func (h *headerMap) Range(f func(k, v string) bool) {
	h.init()
	for k, vs := range h.cache {
		for _, v := range vs {
			if !f(k, v) {
				return
			}
		}
	}
}

func (h *headerMap) RangeWithCopy(f func(k, v string) bool) { h.Range(f) }

func (h *headerMap) GetAllHeaders() map[string][]string {
	h.init()
	out := map[string][]string{}
	for k, vs := range h.cache {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

func (h *headerMap) Scheme() string     { v, _ := h.Get(":scheme"); return v }
func (h *headerMap) Method() string     { v, _ := h.Get(":method"); return v }
func (h *headerMap) Host() string       { v, _ := h.Get(":authority"); return v }
func (h *headerMap) Path() string       { v, _ := h.Get(":path"); return v }
func (h *headerMap) SetMethod(v string) { h.Set(":method", v) }
func (h *headerMap) SetHost(v string)   { h.Set(":authority", v) }
func (h *headerMap) SetPath(v string)   { h.Set(":path", v) }

// Status parses :status like the shim (strconv.Atoi, errors ignored).
func (h *headerMap) Status() (int, bool) {
	v, ok := h.Get(":status")
	if !ok {
		return 0, false
	}
	n, _ := strconv.Atoi(v)
	return n, true
}
