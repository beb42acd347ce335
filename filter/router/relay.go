package router

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// Server-to-client requests.
//
// During a routed call (tools/call, prompts/get) a session-era backend may
// send the client requests of its own on the call's SSE response stream
// (sampling/createMessage, elicitation/create, roots/list) and wait for the
// answers, which the client POSTs to the gateway as JSON-RPC responses: a
// message with the request's id and no method. Nothing else in such an
// answer says which backend asked, and the ids of different backends (and
// of the broker) collide: every go-sdk server numbers its requests 1, 2, ...
//
// So the router rewrites the id of each request in a routed call's SSE
// stream into a relay id naming the server that sent it and carrying the
// original id, and routes an answer with a relay id to that server's backend
// session of the answering client's gateway session, restoring the original
// id. An answer can therefore neither cross backends (the id names the
// server) nor sessions (the backend session is the one of the gateway
// session the answer arrives in; a relay id replayed in another gateway
// session reaches that session's own backend session, which does not know
// the id). Answers without a relay id are the broker's.
//
// A relay id is a JSON string:
//
//	"mcpgw:" <byte length of the server name> ":" <server name> <kind> <original>
//
// where kind is 'n' for a numeric original id (original: the number as the
// backend wrote it) and 's' for a string one (original: its contents). The
// length makes any server name unambiguous without escaping rules of its
// own. Example: server "team/weather", backend id 7 -> "mcpgw:12:team/weathern7".

const relayIDPrefix = "mcpgw:"

// appendRelayID appends the relay id for the raw JSON id (a number or a
// string, exactly as the backend sent it) of a request sent by server.
func appendRelayID(dst []byte, server string, raw []byte) []byte {
	dst = append(dst, '"')
	dst = append(dst, relayIDPrefix...)
	dst = strconv.AppendInt(dst, int64(len(server)), 10)
	dst = append(dst, ':')
	dst = appendJSONStringContent(dst, server)
	if raw[0] == '"' {
		// The contents of a JSON string are valid contents of ours as is.
		dst = append(dst, 's')
		dst = append(dst, raw[1:len(raw)-1]...)
	} else {
		dst = append(dst, 'n')
		dst = append(dst, raw...)
	}
	return append(dst, '"')
}

// parseRelayID splits a relay id (the decoded string) into the server name
// and the original id's kind and text. ok is false for any other string.
func parseRelayID(id string) (server string, kind byte, original string, ok bool) {
	server, kind, original, ok = splitRelayID(id)
	switch {
	case !ok:
	case kind == 's':
		return server, kind, original, true
	case kind == 'n' && isJSONNumber(original):
		// Only a JSON number may go back into the body unquoted.
		return server, kind, original, true
	}
	return "", 0, "", false
}

// splitRelayID splits "mcpgw:<len>:<server><kind><rest>". The length is
// read in its canonical form only (decimal digits, no sign, no leading
// zero), as appendRelayID writes it: one id, one spelling.
func splitRelayID(id string) (server string, kind byte, rest string, ok bool) {
	rest, ok = strings.CutPrefix(id, relayIDPrefix)
	if !ok {
		return "", 0, "", false
	}
	colon := strings.IndexByte(rest, ':')
	if colon <= 0 || colon > 4 || rest[0] == '0' {
		return "", 0, "", false
	}
	// Only the length as the router writes it (strconv.AppendInt: no sign,
	// no leading zero) and a server name a config can hold (valid UTF-8):
	// nothing the router did not hand out (FuzzRelayID).
	n := 0
	for i := range colon {
		d := rest[i]
		if d < '0' || d > '9' {
			return "", 0, "", false
		}
		n = n*10 + int(d-'0')
	}
	rest = rest[colon+1:]
	if n >= len(rest) || !utf8.ValidString(rest[:n]) {
		return "", 0, "", false
	}
	return rest[:n], rest[n], rest[n+1:], true
}

// isJSONNumber reports whether v is exactly one JSON number (RFC 8259).
func isJSONNumber(v string) bool {
	i := 0
	digits := func() bool {
		start := i
		for i < len(v) && v[i] >= '0' && v[i] <= '9' {
			i++
		}
		return i > start
	}
	if i < len(v) && v[i] == '-' {
		i++
	}
	switch {
	case i < len(v) && v[i] == '0':
		i++
	case !digits():
		return false
	}
	if i < len(v) && v[i] == '.' {
		i++
		if !digits() {
			return false
		}
	}
	if i < len(v) && (v[i] == 'e' || v[i] == 'E') {
		i++
		if i < len(v) && (v[i] == '+' || v[i] == '-') {
			i++
		}
		if !digits() {
			return false
		}
	}
	return i == len(v)
}

// appendOriginalID appends the original id a relay id carried as JSON.
func appendOriginalID(dst []byte, kind byte, original string) []byte {
	if kind == 'n' {
		return append(dst, original...)
	}
	dst, _ = appendJSONString(dst, original)
	return dst
}

// appendJSONStringContent appends s escaped as the contents of a JSON
// string. Invalid UTF-8 becomes U+FFFD, as encoding/json writes it.
func appendJSONStringContent(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, "\ufffd"...)
			} else {
				dst = append(dst, s[i:i+size]...)
			}
			i += size
			continue
		}
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			dst = append(dst, c)
		}
		i++
	}
	return dst
}

// routeAnswer routes a client's JSON-RPC response whose id is a relay id to
// the backend session that sent the request, with the original id restored
// in the body. It reports false, leaving the message to the broker, for any
// other id, or when the gateway session has no backend session with that
// server (any more).
func (s *Stream) routeAnswer(json string, id gjson.Result) bool {
	if id.Type != gjson.String || s.gateway == "" || s.noVirtual || !s.live() {
		return false
	}
	name, kind, original, ok := parseRelayID(id.Str)
	if !ok || !s.routeRelayed(json, id, s.t.byName[name], kind, original) {
		return false
	}
	s.method = ""
	s.r.Metrics.AnswersRouted.Add(1)
	return true
}

// routeRelayed routes a message that names a relay id at span (a client's
// answer to, or cancellation of, a backend's request) to srv's backend
// session of the gateway session, with the original id restored in the
// body. It reports false when there is no such session.
func (s *Stream) routeRelayed(json string, span gjson.Result, srv *Server, kind byte, original string) bool {
	if srv == nil {
		return false
	}
	backend, ok := s.r.sessions.Get(s.gateway, srv.Name)
	if !ok {
		return false
	}
	bp := bodyPool.Get().(*[]byte)
	b := append((*bp)[:0], json[:span.Index]...)
	b = appendOriginalID(b, kind, original)
	b = append(b, json[span.Index+len(span.Raw):]...)
	*bp = b
	s.body = bp
	s.server, s.backend, s.routed, s.toolName = srv, backend, true, ""
	s.method = "notifications/cancelled"
	s.routeNow()
	return true
}
