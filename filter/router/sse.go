package router

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
)

// Response bodies of routed calls: the ids a client must send back are
// rewritten so that they lead to the right backend: backends' requests to
// the client and SSE event ids (relay.go, resume.go) in session-era SSE
// streams, task ids in stateless-era answers (tasks.go). Events are
// rewritten whole, so an incomplete one is held back until it ends.

// eventStream is the SSE rewriting state of a routed call's response.
type eventStream struct {
	on bool
	// span finds the id to rewrite in one message: requestID (session
	// era: the backend's requests to the client) or taskIDSpan (stateless
	// era: task ids, tasks.go).
	span func(msg []byte) (start, end int, v idVerdict)
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
	case s.method == "tools/call" && s.mayCreateTask || isTaskMethod(s.method):
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
	w := rewriter{s: s, in: in}
	for !st.whole {
		next := nextEventEnd(in, i)
		if next < 0 {
			break
		}
		w.event(i, in[i:next])
		i = next
	}
	if end && i < len(in) {
		// A last event without its blank line (or a whole JSON body)
		// still counts.
		w.event(i, in[i:])
		i = len(in)
	}
	return st.keepRest(&w, i, held)
}

// keepRest ends ResponseBody once in[:i] (whole events) went through w: it
// holds back the incomplete event in[i:] and returns the chunk to send.
func (st *eventStream) keepRest(w *rewriter, i int, held bool) (out []byte, replace bool) {
	in := w.in
	rest := in[i:]
	if len(rest) > w.s.t.maxBody {
		// Do not hold back an unbounded event (a large result streamed in
		// many chunks): pass it, unrewritten, and skip to its end.
		st.skipping = true
		i, rest = len(in), nil
	}
	if w.o == nil && !held && len(rest) == 0 {
		return nil, false // the common case: whole events, none rewritten
	}
	w.upTo(i)
	*st.out = w.o
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
	return w.o, true
}

// idVerdict is what one message of a routed response needs
// (eventStream.span).
type idVerdict uint8

const (
	idNone    idVerdict = iota // no id to rewrite: the message passes
	idRewrite                  // the id at start:end gets a gateway id
	// idRefuse: the message is ambiguous (a member the router reads occurs
	// twice, or miscased): the client may read another id than the one the
	// router would rewrite, e.g. a forged relay id naming another server,
	// so the message does not reach it.
	idRefuse
)

// rewriter builds the rewritten form of in, one event at a time.
type rewriter struct {
	s    *Stream
	in   []byte
	o    []byte // the output, from the Stream's pooled buffer; nil until used
	done int    // in[:done] is in o already
}

// upTo copies in[done:end] to the output.
func (w *rewriter) upTo(end int) {
	if w.o == nil {
		st := &w.s.sse
		if st.out == nil {
			st.out = bodyPool.Get().(*[]byte)
		}
		w.o = (*st.out)[:0]
	}
	w.o = append(w.o, w.in[w.done:end]...)
	w.done = end
}

// rewrite replaces in[start:end], an SSE event id or a message's id, with
// the gateway's id for it.
func (w *rewriter) rewrite(start, end int, eventID bool) {
	s := w.s
	w.upTo(start)
	if eventID {
		w.o = appendEventID(w.o, s.server.Name, w.in[start:end])
	} else {
		w.o = appendRelayID(w.o, s.server.Name, w.in[start:end])
		if !s.stateless {
			s.r.Metrics.RequestsRelayed.Add(1)
		}
	}
	w.done = end
}

// event rewrites one event at offset i: its SSE id (session era, for
// resumption) and the id its message carries, in the order they come; an
// ambiguous message is refused.
func (w *rewriter) event(i int, ev []byte) {
	s, st := w.s, &w.s.sse
	a, b, verdict := st.inEvent(ev)
	if verdict == idRefuse {
		w.refuse(i, i+len(ev))
		return
	}
	hasMsg := verdict == idRewrite
	ia, ib, hasID := -1, -1, false
	if !st.whole && !s.stateless && eventIDsRewritable(s.server.Name) {
		ia, ib, hasID = eventIDSpan(ev)
	}
	if hasID && (!hasMsg || ia < a) {
		w.rewrite(i+ia, i+ib, true)
		hasID = false
	}
	if hasMsg {
		w.rewrite(i+a, i+b, false)
	}
	if hasID {
		w.rewrite(i+ia, i+ib, true)
	}
}

// refuse drops the event in[start:end] (an SSE event), or replaces it with
// a JSON-RPC error for the request (a whole JSON body), and says so.
func (w *rewriter) refuse(start, end int) {
	s := w.s
	w.upTo(start)
	if s.sse.whole {
		w.o = appendErrorBody(w.o, RejectAmbiguousResponse, s.id)
	}
	w.done = end
	s.r.Metrics.Rejected[RejectAmbiguousResponse].Add(1)
	s.r.log.Warn("backend message refused: a member the router reads occurs twice or miscased",
		"server", s.server.Name, "reason", RejectAmbiguousResponse.String())
}

// release returns the pooled buffers.
func (st *eventStream) release() {
	putBuf(&st.carry)
	putBuf(&st.out)
}

func putBuf(b **[]byte) {
	if *b != nil {
		**b = (**b)[:0]
		bodyPool.Put(*b)
		*b = nil
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
func (st *eventStream) inEvent(event []byte) (start, end int, v idVerdict) {
	if st.whole {
		return st.span(event)
	}
	data, offset, ok := eventData(event)
	if !ok {
		return 0, 0, idNone
	}
	start, end, v = st.span(data)
	return offset + start, offset + end, v
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
func requestID(msg []byte) (start, end int, v idVerdict) {
	// Results and notifications are most of the traffic: only a message
	// with a "method" member needs a parse.
	if !bytes.Contains(msg, []byte(`"method"`)) {
		return 0, 0, idNone
	}
	m, valid := scanMessage(msg)
	switch {
	case !valid || m.kind != '{':
		return 0, 0, idNone
	case m.ambiguous:
		return 0, 0, idRefuse
	case m.method.Type != gjson.String || (m.id.Type != gjson.String && m.id.Type != gjson.Number):
		return 0, 0, idNone
	}
	return m.id.Index, m.id.Index + len(m.id.Raw), idRewrite
}
