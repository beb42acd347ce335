package golang

import (
	"context"

	"github.com/envoyproxy/envoy/contrib/golang/common/go/api"

	"github.com/mcpgw/mcpgw/filter/host"
	"github.com/mcpgw/mcpgw/filter/router"
)

// Opening a backend session, and replaying a call whose backend session was
// lost, are network I/O and must not block Envoy's worker. DecodeData (or,
// for a replay, EncodeHeaders) returns api.Running: the golang filter keeps
// the request stopped in state ProcessingData, with the body buffer and
// header map still valid (or the response stopped in ProcessingHeader, its
// body buffered by Envoy), and lets any goroutine call the stream's API. A
// goroutine runs router.Stream.OpenSession (or Replay), applies the decision
// and resumes the stream with Continue or SendLocalReply, the call that must
// come last; a replay's local reply, sent from the encoder, replaces the
// upstream response.
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
	f.resume(f.finishOpen(ctx, buf, cb))
}

// startReplay starts the replay goroutine; it runs on the worker, in
// EncodeHeaders.
func (f *filter) startReplay() api.StatusType {
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	f.async.Store(asyncRunning)
	f.cfg.sessions.Go(func() {
		cb := f.cb.EncoderFilterCallbacks()
		f.resume(f.finishReplay(ctx, cb))
	})
	return api.Running
}

// finishReplay replays the call and returns the call that sends its outcome
// in place of the response. A panic becomes an internal-error reply.
func (f *filter) finishReplay(ctx context.Context, cb api.EncoderFilterCallbacks) (resume func()) {
	defer func() {
		if r := recover(); r != nil {
			logPanic("replay goroutine", r)
			f.phase = phaseReplied
			resume = func() { replyInternalError(cb) }
		}
	}()
	f.phase = phaseReplied
	if f.Replay(ctx) != router.ResponseAnswer {
		status, body := f.Reply()
		details := host.ReplyDetails(f.Rejection())
		return func() { cb.SendLocalReply(status, string(body), replyHeaders, replyGrpcStatus, details) }
	}
	status, body := f.Answer()
	headers := mapWriter{}
	f.ApplyAnswer(headers)
	answer := string(body) // the Stream may be released before the call runs
	return func() { cb.SendLocalReply(status, answer, headers, replyGrpcStatus, host.ReplayedDetails) }
}

// resume ends a session goroutine: unless the stream is gone (then it
// releases the Stream), it makes call, which resumes the stream.
func (f *filter) resume(call func()) {
	if !f.async.CompareAndSwap(asyncRunning, asyncIdle) {
		f.Stream.Release() // the stream is gone; a backend session opened stays cached
		return
	}
	defer func() {
		if r := recover(); r != nil {
			// Destroyed between the CAS and the call: nobody waits.
			logPanic("session goroutine resume", r)
		}
	}()
	call()
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
