package golang

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/envoyproxy/envoy/contrib/golang/common/go/api"

	"github.com/mcpgw/mcpgw/filter/config"
	"github.com/mcpgw/mcpgw/filter/host"
	"github.com/mcpgw/mcpgw/filter/router"
)

// phase is where a stream's request stands.
type phase uint8

const (
	phasePass      phase = iota // nothing (more) to do for the request
	phaseBuffering              // Envoy buffers the body for DecodeData
	phaseReplied                // a local reply was sent
)

// filter is the per-stream state: one per request, created by FilterFactory
// on the worker thread, dropped by the shim after OnDestroy.
//
// Threads: every method runs on the stream's Envoy worker. The session
// goroutine (session.go) owns the embedded Stream, phase and routed while
// async is asyncRunning; worker methods that run meanwhile (EncodeHeaders for
// a reply Envoy generated itself, OnDestroy) leave them alone. The CAS that
// ends asyncRunning orders the goroutine's writes before the worker's reads.
type filter struct {
	// The shim calls only the methods below, never the pass-through ones
	// for the log hooks, OnStreamComplete or EncodeTrailers.
	api.PassThroughStreamFilter
	router.Stream

	cfg *filterConfig
	cb  api.FilterCallbackHandler
	// req is the request header map DecodeHeaders received. The golang
	// filter keeps it valid while the request is stopped (state.headers is
	// only cleared when a header phase continues), so DecodeData and the
	// session goroutine write the routing headers through it.
	req    api.RequestHeaderMap
	phase  phase
	routed bool // the request was routed to a backend (router action Route)
	// relaying: the response body passes through the router's SSE rewriting
	// (router.Stream.WatchResponseBody).
	relaying bool

	async  atomic.Int32       // asyncIdle, asyncRunning, asyncAbandoned (session.go)
	cancel context.CancelFunc // aborts the session goroutine's I/O; worker only
}

var _ api.StreamFilter = (*filter)(nil)

// FilterFactory is the plugin's api.StreamFilterFactory; config is what
// Parser.Parse returned.
func FilterFactory(config interface{}, callbacks api.FilterCallbackHandler) api.StreamFilter {
	// The shim creates the filter before its panic recovery is in place
	// (createRequest in envoyGoFilterOnHttpHeader): nothing here may panic.
	fc, ok := config.(*filterConfig)
	if !ok {
		return &api.PassThroughStreamFilter{} // not ours: Parse returns only *filterConfig
	}
	f := &filter{cfg: fc, cb: callbacks}
	f.Stream.Init(fc.shared.Router())
	return f
}

// replyGrpcStatus is the gRPC status of our local replies, which Envoy only
// uses if the request was gRPC (MCP requests are not). The golang filter
// always passes one; 0 (Ok) is what the dynamic module's send_response
// passes (abi_impl.cc), so both adapters send identical replies.
const replyGrpcStatus = 0

// replyHeaders are the extra headers of every local reply. Shared, read only:
// the shim only iterates it.
var replyHeaders = map[string][]string{"content-type": {host.ReplyContentType}}

// DecodeHeaders strips client-supplied internal headers (clearing the route
// cache if there were any: Envoy may have picked the route on them), then
// asks the router whether to buffer the body.
func (f *filter) DecodeHeaders(h api.RequestHeaderMap, endStream bool) (st api.StatusType) {
	defer f.recoverRequest("DecodeHeaders", &st)
	f.req = h
	if stripInternal(h) {
		f.cb.ClearRouteCache()
	}
	switch f.RequestHeaders(readRequestHeaders(h, endStream)) {
	case router.HeadersBuffer:
		if endStream {
			// Never wait for a body that will not come: the shim panics on
			// StopAndBuffer at end of stream. (The router does not ask for it.)
			return api.Continue
		}
		f.phase = phaseBuffering
		return api.StopAndBuffer
	case router.HeadersReply:
		f.reply(f.cb.DecoderFilterCallbacks())
		return api.LocalReply
	case router.HeadersRoute:
		f.route(nil) // no body rewrite on this path
	}
	return api.Continue
}

// DecodeData receives the complete request body. After StopAndBuffer the
// golang filter buffers the body in C++ and calls DecodeData only once
// (golang_filter.cc doData/doTrailer in state WaitingAllData): at end of
// stream with endStream=true, or, when trailers follow, with the whole body
// and endStream=false just before DecodeTrailers. Either way buf is the
// whole body, so endStream is not consulted.
func (f *filter) DecodeData(buf api.BufferInstance, endStream bool) (st api.StatusType) {
	if f.phase != phaseBuffering {
		return api.Continue
	}
	defer f.recoverRequest("DecodeData", &st)
	return f.decideBody(buf)
}

// DecodeTrailers decides a request whose trailers arrived with nothing
// buffered: its body is empty (else DecodeData ran first).
func (f *filter) DecodeTrailers(api.RequestTrailerMap) (st api.StatusType) {
	if f.phase != phaseBuffering {
		return api.Continue
	}
	defer f.recoverRequest("DecodeTrailers", &st)
	return f.decideBody(nil)
}

// errNoBuffer: a body rewrite without a body buffer. The router only
// rewrites bodies it parsed, and DecodeTrailers only passes an empty one.
var errNoBuffer = errors.New("mcpgw: body rewrite without a body buffer")

// decideBody hands the body in buf (nil: empty) to the router and applies
// its decision.
func (f *filter) decideBody(buf api.BufferInstance) api.StatusType {
	f.phase = phasePass
	var body []byte
	if buf != nil {
		body = buf.Bytes() // a copy in Go memory (HttpGetBuffer): the router may keep views of it
	}
	switch f.RequestBody(body) {
	case router.Route:
		f.route(buf)
	case router.Reply:
		f.reply(f.cb.DecoderFilterCallbacks())
		return api.LocalReply
	case router.OpenSession:
		return f.openSession(buf)
	default: // router.Forward
		f.ApplyRequest(headerWriter{f.req})
	}
	return api.Continue
}

// route applies a Route decision: routing headers, the rewritten body (if
// the prefix was stripped; the router set content-length for it) and a route
// cache clear, so that Envoy re-picks the route from the new headers.
func (f *filter) route(buf api.BufferInstance) {
	f.routed = true
	f.ApplyRequest(headerWriter{f.req})
	if b := f.NewBody(); b != nil {
		if buf == nil {
			panic(errNoBuffer)
		}
		// Envoy copies b into its buffer before Set returns.
		if err := buf.Set(b); err != nil {
			panic(err)
		}
	}
	f.cb.ClearRouteCache()
}

// reply sends the router's JSON-RPC error as a local reply through cb (the
// decoder's or the encoder's callbacks, by phase).
func (f *filter) reply(cb api.FilterProcessCallbacks) {
	status, body := f.Reply()
	f.phase = phaseReplied
	cb.SendLocalReply(status, string(body), replyHeaders, replyGrpcStatus, host.ReplyDetails(f.Rejection()))
}

// EncodeHeaders watches the response to a routed call: a backend's 404 (a
// lost session) makes the call replayed on a new one (session.go), or a
// retryable JSON-RPC error (router.Stream.ResponseHeaders); any other
// response gets the client's gateway session id back.
func (f *filter) EncodeHeaders(h api.ResponseHeaderMap, endStream bool) (st api.StatusType) {
	// Envoy may encode its own reply (a timeout, a reset) while the session
	// goroutine owns the stream: that response concerns nobody here. Our own
	// local replies pass here too and are left alone.
	if f.async.Load() == asyncRunning || f.phase == phaseReplied {
		return api.Continue
	}
	defer func() {
		if r := recover(); r != nil {
			logPanic("EncodeHeaders", r)
			st = api.Continue // the response passes through untouched
		}
	}()
	if f.AwaitsSessionID() {
		// The response to a forwarded initialize names the new gateway
		// session, under which the router keeps the client's context.
		status, _ := h.Status()
		id, _ := h.Get(config.HeaderSessionID)
		f.InitializeResponse(status, id)
	}
	if !f.routed {
		return api.Continue
	}
	status, _ := h.Status()
	details, _ := f.cb.StreamInfo().ResponseCodeDetails()
	switch f.ResponseHeaders(status, details == "via_upstream") {
	case router.ResponseReply:
		// Sent from the encoder before the response headers were encoded,
		// Envoy's sendLocalReply replaces the response (sendDirectLocalReply)
		// and drops the upstream one.
		f.reply(f.cb.EncoderFilterCallbacks())
		return api.LocalReply
	case router.ResponseReplay:
		return f.startReplay()
	}
	ct, _ := h.Get("content-type")
	f.relaying = f.WatchResponseBody(ct)
	f.ApplyResponse(headerWriter{h})
	return api.Continue
}

// EncodeData passes an SSE response of a routed call through the router,
// which gives the backend's requests to the client relay ids.
func (f *filter) EncodeData(buf api.BufferInstance, endStream bool) (st api.StatusType) {
	if !f.relaying {
		return api.Continue
	}
	defer func() {
		if r := recover(); r != nil {
			logPanic("EncodeData", r)
			f.relaying = false // the rest of the response passes untouched
			st = api.Continue
		}
	}()
	if out, replace := f.ResponseBody(buf.Bytes(), endStream); replace {
		if err := buf.Set(out); err != nil {
			logPanic("EncodeData", err)
		}
	}
	return api.Continue
}

// OnDestroy runs when Envoy destroys the stream, on the worker.
func (f *filter) OnDestroy(api.DestroyReason) {
	defer func() {
		if r := recover(); r != nil {
			logPanic("OnDestroy", r)
		}
	}()
	f.flushMetrics()
	// Abandon first, cancel second: the cancellation makes OpenSession
	// return at once, and a goroutine that got to its CAS before ours would
	// resume a stream being destroyed (refused by Envoy, but noisy).
	abandoned := f.async.CompareAndSwap(asyncRunning, asyncAbandoned)
	if f.cancel != nil {
		f.cancel() // abort a session init nobody waits for
	}
	if abandoned {
		return // the goroutine releases the Stream when it is done
	}
	f.Stream.Release()
}

// recoverRequest is deferred by the decode methods: a panic fails the
// request with a local 500 JSON-RPC error (unless a reply went out already)
// instead of the shim's plain-text panic reply, as the dynamic module does.
func (f *filter) recoverRequest(where string, st *api.StatusType) {
	r := recover()
	if r == nil {
		return
	}
	logPanic(where, r)
	*st = api.LocalReply
	if f.phase != phaseReplied {
		f.phase = phaseReplied
		replyInternalError(f.cb.DecoderFilterCallbacks())
	}
}

// replyInternalError sends the internal-error reply; the stream may be gone
// (the CAPI then panics), which is logged and ignored.
func replyInternalError(cb api.FilterProcessCallbacks) {
	defer func() {
		if r := recover(); r != nil {
			logPanic("internal error reply", r)
		}
	}()
	cb.SendLocalReply(host.InternalErrorStatus, string(host.InternalErrorBody()), replyHeaders,
		replyGrpcStatus, host.InternalErrorDetails)
}
