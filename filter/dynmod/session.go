package dynmod

/*
#include "helpers.h"
*/
import "C"

import (
	"context"
	"log/slog"
	"runtime/debug"

	"github.com/mcpgw/mcpgw/filter/host"
	"github.com/mcpgw/mcpgw/filter/router"
)

// Opening a backend session, and replaying a call whose backend session
// was lost, are network I/O and must not block Envoy's worker. The hook
// leaves the stream stopped (the request with its body buffered, or the
// response), and a goroutine runs router.Stream.OpenSession or Replay; when
// it is done it commits an event to an Envoy scheduler, and Envoy calls
// on_http_filter_scheduled on the stream's worker thread, where the decision
// is applied: decoding resumed, or a local reply sent in place of the
// response.
//
// The stream may be destroyed (client gone, timeout) while the goroutine
// runs. Envoy then never delivers the event (commit is a no-op once the
// filter is gone, and onScheduled checks the filter is alive), so ownership
// of the stream's state goes to whichever side finishes last, decided by one
// CAS on filter.async:
//
//	worker:    goAsync: idle -> running
//	goroutine: running -> ready, then commit      (else: abandoned, so finish)
//	worker:    onScheduled: ready -> idle, apply, continue_decoding or reply
//	worker:    onDestroy: running -> abandoned    (else: finish now)
const (
	asyncIdle int32 = iota
	asyncRunning
	asyncReady
	asyncAbandoned
)

// The events we commit: which work the goroutine did.
const (
	eventSessionOpened = 1 // OpenSession, in a request hook
	eventReplayed      = 2 // Replay, in the response headers hook
)

// openSession starts opening the backend session on a goroutine. It runs on
// the worker, in the body or trailers hook.
func (f *filter) openSession() {
	f.phase = phaseOpening
	f.goAsync(eventSessionOpened)
}

// startReplay starts replaying the call on a goroutine. It runs on the
// worker, in the response headers hook, which stops the response.
func (f *filter) startReplay() {
	f.phase = phaseReplaying
	f.goAsync(eventReplayed)
}

func (f *filter) goAsync(event uint64) {
	// The scheduler keeps a weak reference to the Envoy filter; it must be
	// created here, on the worker. The goroutine commits and deletes it
	// (both are safe from any thread).
	sched := C.envoy_dynamic_module_callback_http_filter_scheduler_new(f.envoy)
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	f.async.Store(asyncRunning)
	f.cfg.sessions.Go(func() { f.runAsync(ctx, sched, event) })
}

func (f *filter) runAsync(ctx context.Context, sched C.uintptr_t, event uint64) {
	f.panicked = f.runSafely(ctx, event)
	if f.async.CompareAndSwap(asyncRunning, asyncReady) {
		C.envoy_dynamic_module_callback_http_filter_scheduler_commit(sched, C.uint64_t(event))
	} else {
		f.finish() // the stream is gone; a backend session opened stays cached
	}
	C.envoy_dynamic_module_callback_http_filter_scheduler_delete(sched)
}

// runSafely does the goroutine's work, turning a panic into a failure: a
// panic on a goroutine would abort Envoy.
func (f *filter) runSafely(ctx context.Context, event uint64) (panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			logf(slog.LevelError, "panic in a backend session goroutine", "panic", r, "stack", string(debug.Stack()))
			panicked = true
		}
	}()
	if event == eventReplayed {
		f.replay = f.Replay(ctx)
	} else {
		f.result = f.OpenSession(ctx)
	}
	return false
}

// onScheduled runs on the worker when the goroutine committed.
func (f *filter) onScheduled(event uint64) {
	if event != eventSessionOpened && event != eventReplayed || !f.async.CompareAndSwap(asyncReady, asyncIdle) {
		return
	}
	f.cancel()
	f.cancel = nil
	switch {
	case f.panicked:
		f.replyInternalError()
	case event == eventReplayed:
		f.sendReplayed()
	case f.result == router.Route:
		f.route()
		f.phase = phasePass
		C.envoy_dynamic_module_callback_http_filter_continue_decoding(f.envoy)
	default:
		f.reply()
	}
}

// sendReplayed sends what Replay decided in place of the stopped response:
// the replayed call's answer, or the router's error. Sent from the encoder
// before the response headers were encoded, Envoy's local reply goes
// straight to the codec (sendDirectLocalReply), and the upstream response
// is dropped.
func (f *filter) sendReplayed() {
	if f.replay != router.ResponseAnswer {
		f.reply()
		return
	}
	status, body := f.Answer()
	f.ApplyAnswer(&f.batch)
	f.sendResponse(status, body, host.ReplayedDetails)
	f.phase = phaseReplied
}
