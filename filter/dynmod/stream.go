package dynmod

/*
#include "helpers.h"
*/
import "C"

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/mcpgw/mcpgw/filter/host"
	"github.com/mcpgw/mcpgw/filter/router"
)

// phase is where a stream's request stands, as seen by the worker thread.
type phase uint8

const (
	phasePass      phase = iota // nothing (more) to do for the request
	phaseBuffering              // collecting the body for the router
	phaseOpening                // a goroutine is opening a backend session
	phaseReplaying              // a goroutine is replaying the call; the response waits
	phaseReplied                // a local reply was sent
)

// filter is the per-stream state. It lives in slots and is reused: init
// resets every field a stream may have set.
type filter struct {
	router.Stream

	slot   uint32
	cfg    *filterConfig
	envoy  C.uintptr_t // Envoy's filter pointer, valid until destroy
	phase  phase
	routed bool // the request was routed to a backend (router action Route)
	// relaying: the response body passes through the router's SSE rewriting
	// (router.Stream.WatchResponseBody).
	relaying bool

	// Session opening and replays, shared with the goroutine (see
	// session.go).
	async    atomic.Int32
	result   router.Action         // OpenSession's
	replay   router.ResponseAction // Replay's
	panicked bool
	cancel   context.CancelFunc

	// Scratch space handed to C. It lives in this heap object rather than on
	// the stack: cgo may move goroutine stacks during a call that re-enters
	// Go (the test host does), and none of it holds Go pointers.
	hdrs          [numRead]C.envoy_dynamic_module_type_envoy_buffer
	chunks        [8]C.envoy_dynamic_module_type_envoy_buffer
	viaUpstream   C.bool
	batch         headerBatch
	counterIDs    [host.NumCounters]C.size_t
	counterDeltas [host.NumCounters]C.uint64_t
}

func (f *filter) init(fc *filterConfig, envoy C.uintptr_t) {
	f.Stream.Init(fc.shared.Router())
	f.cfg, f.envoy = fc, envoy
	f.phase, f.routed, f.relaying = phasePass, false, false
	f.async.Store(asyncIdle)
	f.result, f.replay, f.panicked, f.cancel = router.Forward, router.ResponseReply, false, nil
	f.batch.reset()
}

// finish releases the stream's resources; f must not be used afterwards.
func (f *filter) finish() {
	f.Stream.Release()
	f.cfg, f.envoy, f.cancel = nil, 0, nil
	slots.release(f)
}

func (f *filter) onRequestHeaders(endOfStream bool) C.int32_t {
	// Strip client-supplied internal headers (clearing the route cache if
	// there were any), then read what the router needs: one cgo call.
	C.mcpgw_request_headers(f.envoy, 0, C.int(numInternal), C.int(keyMethod), C.int(numRead), &f.hdrs[0])
	h := router.RequestHeaders{
		Method:          envoyString(f.hdrs[keyMethod-keyMethod]),
		ContentType:     envoyString(f.hdrs[keyContentType-keyMethod]),
		ContentLength:   host.ParseContentLength(envoyString(f.hdrs[keyContentLength-keyMethod])),
		SessionID:       envoyString(f.hdrs[keySessionID-keyMethod]),
		ProtocolVersion: envoyString(f.hdrs[keyProtocol-keyMethod]),
		Path:            envoyString(f.hdrs[keyPath-keyMethod]),
		Origin:          envoyString(f.hdrs[keyOrigin-keyMethod]),
		MCPMethod:       envoyString(f.hdrs[keyMCPMethod-keyMethod]),
		MCPName:         envoyString(f.hdrs[keyMCPName-keyMethod]),
		LastEventID:     envoyString(f.hdrs[keyLastEventID-keyMethod]),
		EndOfStream:     endOfStream,
	}
	switch f.RequestHeaders(h) {
	case router.HeadersBuffer:
		if endOfStream {
			// Never stop a request that has no body: no body hook would
			// ever resume it. (The router does not ask for this.)
			return headersContinue
		}
		f.phase = phaseBuffering
		return headersStopIteration
	case router.HeadersReply:
		f.reply()
		return headersStopIteration
	case router.HeadersRoute:
		f.route()
	}
	return headersContinue
}

func (f *filter) onRequestBody(endOfStream bool) C.int32_t {
	if f.phase != phaseBuffering {
		return bodyContinue
	}
	if !endOfStream {
		// A body without Content-Length is counted as it comes: past the
		// limit, our JSON-RPC 413 goes out before Envoy's own buffer limit
		// would answer a text/plain one.
		if f.RequestBodyTooLarge(int(C.mcpgw_request_body_size(f.envoy))) {
			f.phase = phasePass
			f.reply()
			return bodyStopNoBuffer
		}
		// Envoy appends the chunk to its decoding buffer.
		return bodyStopAndBuffer
	}
	switch f.decideBody() {
	case router.Reply:
		return bodyStopNoBuffer
	case router.OpenSession:
		// Buffer this last chunk too: the scheduled hook finds the whole
		// body in the decoding buffer.
		return bodyStopAndBuffer
	}
	return bodyContinue
}

// onRequestTrailers completes a body that ended with trailers instead of an
// end_of_stream data chunk; the whole body is then in the decoding buffer.
func (f *filter) onRequestTrailers() C.int32_t {
	if f.phase != phaseBuffering {
		return trailersContinue
	}
	switch f.decideBody() {
	case router.Reply, router.OpenSession:
		return trailersStop
	}
	return trailersContinue
}

// decideBody hands the complete body to the router and applies its decision.
func (f *filter) decideBody() router.Action {
	f.phase = phasePass
	body, pooled := f.readBody()
	act := f.RequestBody(body)
	switch act {
	case router.Forward:
		f.ApplyRequest(&f.batch)
		f.apply(C.MCPGW_REQUEST_HEADER, nil, false)
	case router.Route:
		f.route()
	case router.Reply:
		f.reply()
	case router.OpenSession:
		f.openSession()
	}
	// The router copied what it keeps; the body view may go.
	putBody(pooled)
	return act
}

func putBody(pooled *[]byte) {
	if pooled != nil {
		*pooled = (*pooled)[:0]
		bodyBufs.Put(pooled)
	}
}

// bodyChunks fills chunks (all of its capacity) with views of the body data
// and returns how many chunks there are. The slice is passed to C as
// &chunks[0] so that cgo's pointer check covers only its backing array (a
// plain pointer into the filter would have it check the whole filter,
// which holds Go pointers).
func (f *filter) bodyChunks(response bool, chunks []C.envoy_dynamic_module_type_envoy_buffer) int {
	if response {
		return int(C.mcpgw_response_body(f.envoy, &chunks[0], C.size_t(len(chunks))))
	}
	return int(C.mcpgw_request_body(f.envoy, &chunks[0], C.size_t(len(chunks))))
}

var bodyBufs = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// readBody returns the complete request body (see readChunks).
func (f *filter) readBody() ([]byte, *[]byte) { return f.readChunks(false) }

// readChunks returns the request body, or the response body data of the
// current response body hook: a zero-copy view of Envoy's memory when it is
// one chunk (the common case for small JSON-RPC messages), else a
// concatenation into a pooled buffer, returned as the second value.
func (f *filter) readChunks(response bool) ([]byte, *[]byte) {
	chunks := f.chunks[:]
	n := f.bodyChunks(response, chunks)
	if n > len(chunks) {
		chunks = make([]C.envoy_dynamic_module_type_envoy_buffer, n) // > 8 slices: a large body
		n = min(n, f.bodyChunks(response, chunks))
	}
	chunks = chunks[:n]
	var single []byte
	nonEmpty := 0
	for _, c := range chunks {
		if c.length > 0 {
			nonEmpty++
			single = envoyBytes(c)
		}
	}
	if nonEmpty <= 1 {
		return single, nil
	}
	bp := bodyBufs.Get().(*[]byte)
	b := (*bp)[:0]
	for _, c := range chunks {
		b = append(b, envoyBytes(c)...)
	}
	*bp = b
	return b, bp
}

// route applies a Route decision: routing headers, the rewritten body (if
// the prefix was stripped) and a route cache clear, so that Envoy re-picks
// the route from the new headers, in one cgo call.
func (f *filter) route() {
	f.routed = true
	f.ApplyRequest(&f.batch)
	f.apply(C.MCPGW_REQUEST_HEADER, f.NewBody(), true)
}

// reply sends the router's JSON-RPC error as a local reply.
func (f *filter) reply() {
	status, body := f.Reply()
	sendJSON(f.envoy, status, body, host.ReplyDetails(f.Rejection()))
	f.phase = phaseReplied
}

func (f *filter) onResponseHeaders() C.int32_t {
	if f.AwaitsSessionID() {
		// The response to a forwarded initialize names the new gateway
		// session, under which the router keeps the client's context.
		status := C.mcpgw_response_status(f.envoy, &f.viaUpstream, C.int(keySessionID), &f.hdrs[0])
		f.InitializeResponse(int(status), envoyString(f.hdrs[0]))
	}
	if !f.routed {
		// Only responses to routed calls concern the router (see
		// router.Stream.ResponseHeaders and ApplyResponse): skip the cgo calls.
		return headersContinue
	}
	// One cgo call: the status, its origin and the content type.
	status := C.mcpgw_response_status(f.envoy, &f.viaUpstream, C.int(keyContentType), &f.hdrs[0])
	switch f.ResponseHeaders(int(status), bool(f.viaUpstream)) {
	case router.ResponseReply:
		// Called from encodeHeaders, sendLocalReply finds response headers
		// that were not yet encoded and sends the reply directly to the
		// codec (DownstreamFilterManager::sendDirectLocalReply), aborting
		// the encoder chain; the upstream response is dropped.
		f.reply()
		return headersStopIteration
	case router.ResponseReplay:
		// The response stays stopped (its body and trailers are dropped)
		// until the replay's answer replaces it (session.go).
		f.startReplay()
		return headersStopIteration
	}
	// Before apply writes the header map (which may move its values).
	f.relaying = f.WatchResponseBody(envoyString(f.hdrs[0]))
	f.ApplyResponse(&f.batch)
	f.apply(C.MCPGW_RESPONSE_HEADER, nil, false)
	return headersContinue
}

// onResponseBody passes an SSE response of a routed call through the
// router, which gives the backend's requests to the client relay ids.
func (f *filter) onResponseBody(endOfStream bool) C.int32_t {
	if f.phase == phaseReplaying {
		return bodyStopNoBuffer // the lost session's 404 body: dropped
	}
	if !f.relaying {
		return bodyContinue
	}
	chunk, pooled := f.readChunks(true)
	if out, replace := f.ResponseBody(chunk, endOfStream); replace {
		C.mcpgw_replace_response_chunk(f.envoy, cBytes(out), C.size_t(len(out)))
	}
	putBody(pooled)
	return bodyContinue
}

// onDestroy runs in on_http_filter_destroy.
func (f *filter) onDestroy() {
	f.flushMetrics()
	// Abandon first, cancel second: the cancellation makes OpenSession
	// return at once, and a goroutine that got to its CAS before ours would
	// commit an event for a stream being destroyed. (f.cancel is read before
	// the CAS: once abandoned, f belongs to the goroutine.)
	cancel := f.cancel
	abandoned := f.async.CompareAndSwap(asyncRunning, asyncAbandoned)
	if cancel != nil {
		cancel() // abort a session init nobody waits for
	}
	if abandoned {
		return // the goroutine finishes the stream when it is done
	}
	f.finish()
}
