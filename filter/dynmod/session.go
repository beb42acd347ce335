package dynmod

/*
#include "helpers.h"
*/
import "C"

import (
	"context"
	"log/slog"
	"runtime/debug"

	"github.com/mcpgw/mcpgw/filter/router"
)

// Opening a backend session is network I/O and must not block Envoy's
// worker. The body hook leaves the request stopped (body buffered), and a
// goroutine runs router.Stream.OpenSession; when it is done it commits an
// event to an Envoy scheduler, and Envoy calls on_http_filter_scheduled on
// the stream's worker thread, where the decision is applied and decoding
// resumed.
//
// The stream may be destroyed (client gone, timeout) while the goroutine
// runs. Envoy then never delivers the event (commit is a no-op once the
// filter is gone, and onScheduled checks the filter is alive), so ownership
// of the stream's state goes to whichever side finishes last, decided by one
// CAS on filter.async:
//
//	worker:    openSession: idle -> running
//	goroutine: running -> ready, then commit      (else: abandoned, so finish)
//	worker:    onScheduled: ready -> idle, apply, continue_decoding
//	worker:    onDestroy: running -> abandoned    (else: finish now)
const (
	asyncIdle int32 = iota
	asyncRunning
	asyncReady
	asyncAbandoned
)

// eventSessionOpened is the only event id we commit.
const eventSessionOpened = 1

// openSession starts opening the backend session on a goroutine. It runs on
// the worker, in the body or trailers hook.
func (f *filter) openSession() {
	// The scheduler keeps a weak reference to the Envoy filter; it must be
	// created here, on the worker. The goroutine commits and deletes it
	// (both are safe from any thread).
	sched := C.envoy_dynamic_module_callback_http_filter_scheduler_new(f.envoy)
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	f.phase = phaseOpening
	f.async.Store(asyncRunning)
	f.cfg.sessions.Go(func() { f.runOpenSession(ctx, sched) })
}

func (f *filter) runOpenSession(ctx context.Context, sched C.uintptr_t) {
	f.result, f.panicked = f.openSafely(ctx)
	if f.async.CompareAndSwap(asyncRunning, asyncReady) {
		C.envoy_dynamic_module_callback_http_filter_scheduler_commit(sched, eventSessionOpened)
	} else {
		f.finish() // the stream is gone; the backend session stays cached
	}
	C.envoy_dynamic_module_callback_http_filter_scheduler_delete(sched)
}

// openSafely runs OpenSession, turning a panic into a failure: a panic on a
// goroutine would abort Envoy.
func (f *filter) openSafely(ctx context.Context) (act router.Action, panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			logf(slog.LevelError, "panic while opening a backend session", "panic", r, "stack", string(debug.Stack()))
			act, panicked = router.Reply, true
		}
	}()
	return f.OpenSession(ctx), false
}

// onScheduled runs on the worker when the goroutine committed.
func (f *filter) onScheduled(event uint64) {
	if event != eventSessionOpened || !f.async.CompareAndSwap(asyncReady, asyncIdle) {
		return
	}
	f.cancel()
	f.cancel = nil
	switch {
	case f.panicked:
		f.replyInternalError()
	case f.result == router.Route:
		f.route()
		f.phase = phasePass
		C.envoy_dynamic_module_callback_http_filter_continue_decoding(f.envoy)
	default:
		f.reply()
	}
}
