package router

import (
	"bytes"
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

// splitRelayID splits "mcpgw:<len>:<server><kind><rest>".
func splitRelayID(id string) (server string, kind byte, rest string, ok bool) {
	rest, ok = strings.CutPrefix(id, relayIDPrefix)
	if !ok {
		return "", 0, "", false
	}
	colon := strings.IndexByte(rest, ':')
	if colon <= 0 || colon > 4 {
		return "", 0, "", false
	}
	n, err := strconv.Atoi(rest[:colon])
	rest = rest[colon+1:]
	if err != nil || n <= 0 || n >= len(rest) {
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
	if id.Type != gjson.String || s.gateway == "" || s.noVirtual || !s.t.codec.Valid(s.gateway) {
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

// eventStream is the SSE rewriting state of a routed call's response.
type eventStream struct {
	on bool
	// span finds the id to rewrite in one message: requestID (session
	// era: the backend's requests to the client) or taskIDSpan (stateless
	// era: task ids, tasks.go).
	span func(msg []byte) (start, end int, ok bool)
	// whole: the body is one JSON message (application/json), not SSE
	// events; it is held back until its end.
	whole bool
	// skipping is set while an event too large to hold back passes
	// unchanged, up to its end.
	skipping bool
	carry    *[]byte // the incomplete last event, held back (pooled)
	out      *[]byte // the rewritten chunk handed to the adapter (pooled)
}

// WatchResponseBody reports whether the adapter must pass the response body
// through ResponseBody: for the SSE response of a routed session-era call,
// whose requests to the client need relay ids, and for the response of a
// routed stateless-era tools/call or tasks request, whose task id needs a
// gateway task id (tasks.go). Call it after ResponseHeaders returned
// ResponseContinue.
func (s *Stream) WatchResponseBody(contentType string) bool {
	st := &s.sse
	st.on = false
	switch {
	case !s.routed || s.method == "" && s.resumeID == "":
	case !s.stateless:
		st.on, st.span = isEventStream(contentType), requestID
	case s.method == "tools/call" || isTaskMethod(s.method):
		st.whole = isJSON(contentType)
		st.on, st.span = st.whole || isEventStream(contentType), taskIDSpan
	}
	return st.on
}

func isEventStream(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.EqualFold(strings.TrimSpace(mt), "text/event-stream")
}

// ResponseBody rewrites the ids of the requests in the next chunk of an SSE
// response (see WatchResponseBody). When replace is false the chunk passes
// unchanged; otherwise the adapter replaces it with out, which is valid
// until the next call or Release (and may be empty: a chunk that only
// continues an incomplete event is held back until the event is complete,
// since a request's id cannot be rewritten before the whole message is
// there, and a client does not act on an event before its end anyway).
func (s *Stream) ResponseBody(chunk []byte, end bool) (out []byte, replace bool) {
	st := &s.sse
	if !st.on {
		return nil, false
	}
	in := chunk
	held := st.carry != nil && len(*st.carry) > 0
	if held {
		*st.carry = append(*st.carry, chunk...)
		in = *st.carry
	}
	i := 0
	if st.skipping {
		// The rest of an oversized event (or JSON body) passes as is.
		next := -1
		if !st.whole {
			next = nextEventEnd(in, 0)
		}
		if next < 0 {
			if end {
				st.skipping = false
			}
			return nil, false // (nothing is held while skipping)
		}
		st.skipping = false
		i = next
	}
	var o []byte
	done := 0 // in[:done] is in o already (when o is used)
	rewrite := func(start, end int, eventID bool) {
		if o == nil {
			if st.out == nil {
				st.out = bodyPool.Get().(*[]byte)
			}
			o = (*st.out)[:0]
		}
		o = append(o, in[done:start]...)
		if eventID {
			o = appendEventID(o, s.server.Name, in[start:end])
		} else {
			o = appendRelayID(o, s.server.Name, in[start:end])
			if !s.stateless {
				s.r.Metrics.RequestsRelayed.Add(1)
			}
		}
		done = end
	}
	// event rewrites one event at offset i: its SSE id (session era, for
	// resumption) and the id its message carries, in the order they come.
	event := func(i int, ev []byte) {
		a, b, hasMsg := st.inEvent(ev)
		ia, ib, hasID := -1, -1, false
		if !st.whole && !s.stateless && eventIDsRewritable(s.server.Name) {
			ia, ib, hasID = eventIDSpan(ev)
		}
		if hasID && (!hasMsg || ia < a) {
			rewrite(i+ia, i+ib, true)
			hasID = false
		}
		if hasMsg {
			rewrite(i+a, i+b, false)
		}
		if hasID {
			rewrite(i+ia, i+ib, true)
		}
	}
	for !st.whole {
		next := nextEventEnd(in, i)
		if next < 0 {
			break
		}
		event(i, in[i:next])
		i = next
	}
	if end && i < len(in) {
		// A last event without its blank line (or a whole JSON body)
		// still counts.
		event(i, in[i:])
		i = len(in)
	}
	rest := in[i:]
	if len(rest) > s.t.maxBody {
		// Do not hold back an unbounded event (a large result streamed in
		// many chunks): pass it, unrewritten, and skip to its end.
		st.skipping = true
		i, rest = len(in), nil
	}
	if o == nil && !held && len(rest) == 0 {
		return nil, false // the common case: whole events, none rewritten
	}
	if o == nil {
		if st.out == nil {
			st.out = bodyPool.Get().(*[]byte)
		}
		o = (*st.out)[:0]
	}
	o = append(o, in[done:i]...)
	*st.out = o
	// Keep the incomplete event (after o took what it needs from in, which
	// may be the carry buffer itself).
	if len(rest) > 0 {
		if st.carry == nil {
			st.carry = bodyPool.Get().(*[]byte)
		}
		*st.carry = append((*st.carry)[:0], rest...)
	} else if st.carry != nil {
		*st.carry = (*st.carry)[:0]
	}
	return o, true
}

// releaseEventStream returns the pooled buffers.
func (st *eventStream) release() {
	for _, b := range []**[]byte{&st.carry, &st.out} {
		if *b != nil {
			**b = (**b)[:0]
			bodyPool.Put(*b)
			*b = nil
		}
	}
}

// nextEventEnd returns the offset just past the blank line that ends the
// SSE event starting at in[i:], or -1 when the event is incomplete. Lines
// end in "\n" or "\r\n" (a lone "\r", which SSE also allows, is not
// recognized: such a stream passes unrewritten).
func nextEventEnd(in []byte, i int) int {
	for {
		nl := bytes.IndexByte(in[i:], '\n')
		if nl < 0 {
			return -1
		}
		if nl == 0 || nl == 1 && in[i] == '\r' {
			return i + nl + 1 // an empty line
		}
		i += nl + 1
	}
}

// inEvent finds the id to rewrite in one SSE event's data (or in the whole
// JSON body) and returns its offsets in event.
func (st *eventStream) inEvent(event []byte) (start, end int, ok bool) {
	if st.whole {
		return st.span(event)
	}
	data, offset, ok := eventData(event)
	if !ok {
		return 0, 0, false
	}
	start, end, ok = st.span(data)
	return offset + start, offset + end, ok
}

// eventIDSpan returns the offsets of the value of an SSE event's id field.
func eventIDSpan(event []byte) (start, end int, ok bool) {
	v, start, n := sseField(event, "id:")
	return start, start + len(v), n > 0 && len(v) > 0
}

// appendEventID appends the gateway's SSE event id for a backend's event id
// (the relay-id format with kind 'e', as plain text): a client resuming the
// stream sends it back in Last-Event-ID, and the router resumes the stream
// on that server (Stream.routeResume).
func appendEventID(dst []byte, server string, original []byte) []byte {
	dst = append(dst, relayIDPrefix...)
	dst = strconv.AppendInt(dst, int64(len(server)), 10)
	dst = append(dst, ':')
	dst = append(dst, server...)
	dst = append(dst, 'e')
	return append(dst, original...)
}

// eventIDsRewritable reports whether server's name can stand in an SSE id
// field (no line break or NUL).
func eventIDsRewritable(server string) bool {
	return !strings.ContainsAny(server, "\r\n\x00")
}

// eventData returns the data of an SSE event with one data line, and its
// offset in event. Events with several data lines are not rewritten (no
// MCP SDK splits a message).
func eventData(event []byte) (data []byte, offset int, ok bool) {
	data, offset, n := sseField(event, "data:")
	return data, offset, n == 1
}

// sseField returns the value of an SSE event's first line starting with
// name ("data:", with the colon), its offset in event, and how many such
// lines the event has.
func sseField(event []byte, name string) (value []byte, offset, count int) {
	for i := 0; i < len(event); {
		nl := bytes.IndexByte(event[i:], '\n')
		line := event[i:]
		if nl >= 0 {
			line = event[i : i+nl]
		}
		if v, found := bytes.CutPrefix(line, []byte(name)); found {
			if count == 0 {
				offset = i + len(name)
				if len(v) > 0 && v[0] == ' ' {
					v, offset = v[1:], offset+1
				}
				value = bytes.TrimSuffix(v, []byte("\r"))
			}
			count++
		}
		if nl < 0 {
			break
		}
		i += nl + 1
	}
	return value, offset, count
}

// requestID finds a JSON-RPC request (a message with a method and an id)
// and returns the offsets of its id.
func requestID(msg []byte) (start, end int, ok bool) {
	// Results and notifications are most of the traffic: only a message
	// with a "method" member needs a parse.
	if !bytes.Contains(msg, []byte(`"method"`)) {
		return 0, 0, false
	}
	m, valid := scanMessage(msg)
	if !valid || m.kind != '{' || m.ambiguous || m.method.Type != gjson.String ||
		(m.id.Type != gjson.String && m.id.Type != gjson.Number) {
		return 0, 0, false
	}
	return m.id.Index, m.id.Index + len(m.id.Raw), true
}
