package golang

import (
	"context"

	"github.com/envoyproxy/envoy/contrib/golang/common/go/api"

	"github.com/mcpgw/mcpgw/filter/host"
	"github.com/mcpgw/mcpgw/filter/router"
)

// Opening a backend session is network I/O and must not block Envoy's
// worker. DecodeData returns api.Running: the golang filter keeps the
// request stopped in state ProcessingData, with the body buffer and header
// map still valid, and lets any goroutine call the stream's API. A
// goroutine runs router.Stream.OpenSession, applies the decision and resumes
// the stream with Continue or SendLocalReply, the call that must come last.
//
// From a goroutine, Envoy (golang_filter.cc) posts header writes, the route
// cache clear, Continue and SendLocalReply to the worker's dispatcher, in
// call order; buf.Set writes the stopped filter's buffer directly. So the
// worker sees the routing headers, the body and the cleared route before it
// continues.
//
// The stream may be destroyed (client gone, timeout) while the goroutine
// runs; the API then panics ("golang filter has been destroyed"), and the
// Stream must be released exactly once, by whichever side finishes last,
// decided by one CAS on filter.async:
//
//	worker:    openSession: idle -> running
//	goroutine: apply, then running -> idle, then Continue/SendLocalReply
//	           (else abandoned: release the Stream)
//	worker:    OnDestroy: running -> abandoned (else: release now)
//
// After its CAS the goroutine touches nothing of the Stream: the resuming
// call carries copies. A worker EncodeHeaders that sees asyncRunning (a
// reply Envoy generated meanwhile) leaves the Stream alone.
const (
	asyncIdle int32 = iota
	asyncRunning
	asyncAbandoned
)

// openSession starts the session goroutine; it runs on the worker, in
// DecodeData. buf is the request body, valid until the stream resumes.
func (f *filter) openSession(buf api.BufferInstance) api.StatusType {
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	f.async.Store(asyncRunning)
	f.cfg.sessions.Go(func() { f.runOpenSession(ctx, buf) })
	return api.Running
}

func (f *filter) runOpenSession(ctx context.Context, buf api.BufferInstance) {
	cb := f.cb.DecoderFilterCallbacks()
	resume := f.finishOpen(ctx, buf, cb)
	if !f.async.CompareAndSwap(asyncRunning, asyncIdle) {
		f.Stream.Release() // the stream is gone; the backend session stays cached
		return
	}
	defer func() {
		if r := recover(); r != nil {
			// Destroyed between the CAS and the call: nobody waits.
			logPanic("session goroutine resume", r)
		}
	}()
	resume()
}

// finishOpen opens the session and applies the decision to the stopped
// stream; it returns the call that resumes the stream. A panic (ours, or
// the API's once the stream is gone) becomes an internal-error reply.
func (f *filter) finishOpen(ctx context.Context, buf api.BufferInstance,
	cb api.DecoderFilterCallbacks) (resume func()) {
	defer func() {
		if r := recover(); r != nil {
			logPanic("session goroutine", r)
			f.phase = phaseReplied
			resume = func() { replyInternalError(cb) }
		}
	}()
	if f.OpenSession(ctx) == router.Route {
		f.route(buf)
		return func() { cb.Continue(api.Continue) }
	}
	status, body := f.Reply()
	details := host.ReplyDetails(f.Rejection())
	f.phase = phaseReplied
	return func() { cb.SendLocalReply(status, string(body), replyHeaders, replyGrpcStatus, details) }
}
