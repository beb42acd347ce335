package dynmod

/*
#include "helpers.h"
*/
import "C"

import (
	"fmt"
	"log/slog"
	"runtime/cgo"
	"runtime/debug"

	"github.com/mcpgw/mcpgw/filter/host"
)

// The hooks Envoy 1.39 and 1.40 require (abi.h). Each one recovers panics: an
// unrecovered Go panic in a hook aborts the whole Envoy process. On a panic
// the request fails safe with a local 500 JSON-RPC error (request path) or
// passes through untouched (response path, stubs).
//
// Unknown filter handles (0 when filter_new failed) mean "do nothing": Envoy
// still calls the stream hooks in that case.

//export envoy_dynamic_module_on_program_init
func envoy_dynamic_module_on_program_init() *C.char {
	return programABI() // abiversion.go; never NULL (NULL is fatal)
}

//export envoy_dynamic_module_on_http_filter_config_new
func envoy_dynamic_module_on_http_filter_config_new(envoyConfig C.uintptr_t,
	name, cfg C.envoy_dynamic_module_type_envoy_buffer) (h C.uintptr_t) {
	defer func() {
		if r := recover(); r != nil {
			logPanic("config_new", r)
			h = 0 // Envoy rejects the filter config
		}
	}()
	fc, err := newFilterConfig(envoyConfig, envoyString(name), envoyBytes(cfg))
	if err != nil {
		logf(slog.LevelError, "invalid filter config, rejected", "error", err.Error())
		return 0
	}
	return C.uintptr_t(cgo.NewHandle(fc))
}

//export envoy_dynamic_module_on_http_filter_config_destroy
func envoy_dynamic_module_on_http_filter_config_destroy(h C.uintptr_t) {
	defer recoverHook("config_destroy")
	handle := cgo.Handle(h)
	handle.Value().(*filterConfig).release()
	handle.Delete()
}

//export envoy_dynamic_module_on_http_filter_new
func envoy_dynamic_module_on_http_filter_new(h C.uintptr_t, envoy C.uintptr_t) (fh C.uintptr_t) {
	defer func() {
		if r := recover(); r != nil {
			logPanic("filter_new", r)
			fh = 0 // the stream passes through untouched
		}
	}()
	fc := cgo.Handle(h).Value().(*filterConfig)
	f, handle := slots.alloc()
	if f == nil {
		logf(slog.LevelError, "too many concurrent streams; passing one through unrouted")
		return 0
	}
	f.init(fc, envoy)
	return C.uintptr_t(handle)
}

//export envoy_dynamic_module_on_http_filter_request_headers
func envoy_dynamic_module_on_http_filter_request_headers(envoy, fh C.uintptr_t, endOfStream C.bool) (st C.int32_t) {
	f := slots.get(uintptr(fh))
	if f == nil {
		return headersContinue
	}
	defer func() {
		if r := recover(); r != nil {
			f.failRequest("request_headers", r)
			st = headersStopIteration
		}
	}()
	return f.onRequestHeaders(bool(endOfStream))
}

//export envoy_dynamic_module_on_http_filter_request_body
func envoy_dynamic_module_on_http_filter_request_body(envoy, fh C.uintptr_t, endOfStream C.bool) (st C.int32_t) {
	f := slots.get(uintptr(fh))
	if f == nil {
		return bodyContinue
	}
	defer func() {
		if r := recover(); r != nil {
			f.failRequest("request_body", r)
			st = bodyStopNoBuffer
		}
	}()
	return f.onRequestBody(bool(endOfStream))
}

//export envoy_dynamic_module_on_http_filter_request_trailers
func envoy_dynamic_module_on_http_filter_request_trailers(envoy, fh C.uintptr_t) (st C.int32_t) {
	f := slots.get(uintptr(fh))
	if f == nil {
		return trailersContinue
	}
	defer func() {
		if r := recover(); r != nil {
			f.failRequest("request_trailers", r)
			st = trailersStop
		}
	}()
	return f.onRequestTrailers()
}

//export envoy_dynamic_module_on_http_filter_response_headers
func envoy_dynamic_module_on_http_filter_response_headers(envoy, fh C.uintptr_t, endOfStream C.bool) (st C.int32_t) {
	f := slots.get(uintptr(fh))
	if f == nil {
		return headersContinue
	}
	defer func() {
		if r := recover(); r != nil {
			logPanic("response_headers", r)
			st = headersContinue
		}
	}()
	return f.onResponseHeaders()
}

//export envoy_dynamic_module_on_http_filter_response_body
func envoy_dynamic_module_on_http_filter_response_body(envoy, fh C.uintptr_t, endOfStream C.bool) (st C.int32_t) {
	f := slots.get(uintptr(fh))
	if f == nil {
		return bodyContinue
	}
	defer func() {
		if r := recover(); r != nil {
			logPanic("response_body", r)
			f.relaying = false // the rest of the response passes untouched
			st = bodyContinue
		}
	}()
	return f.onResponseBody(bool(endOfStream))
}

//export envoy_dynamic_module_on_http_filter_response_trailers
func envoy_dynamic_module_on_http_filter_response_trailers(envoy, fh C.uintptr_t) C.int32_t {
	// Continuing would release the response a replay holds back.
	if f := slots.get(uintptr(fh)); f != nil && f.phase == phaseReplaying {
		return trailersStop
	}
	return trailersContinue
}

// Counters are flushed when the stream completes: since Envoy 1.40 the
// destroy hook runs after the stream is gone (deferred deletion), and Envoy
// asks modules to do their end-of-stream bookkeeping here instead. Destroy
// flushes again, for what a stream counts after this (nothing, normally).
//
//export envoy_dynamic_module_on_http_filter_stream_complete
func envoy_dynamic_module_on_http_filter_stream_complete(envoy, fh C.uintptr_t) {
	defer recoverHook("stream_complete")
	if f := slots.get(uintptr(fh)); f != nil {
		f.flushMetrics()
	}
}

//export envoy_dynamic_module_on_http_filter_destroy
func envoy_dynamic_module_on_http_filter_destroy(fh C.uintptr_t) {
	defer recoverHook("destroy")
	if f := slots.get(uintptr(fh)); f != nil {
		f.onDestroy()
	}
}

//export envoy_dynamic_module_on_http_filter_scheduled
func envoy_dynamic_module_on_http_filter_scheduled(envoy, fh C.uintptr_t, event C.uint64_t) {
	f := slots.get(uintptr(fh))
	if f == nil {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			f.failRequest("scheduled", r)
		}
	}()
	f.onScheduled(uint64(event))
}

// Required stubs: we start no callouts or streams, and do not react to
// downstream flow control.

//export envoy_dynamic_module_on_http_filter_http_callout_done
func envoy_dynamic_module_on_http_filter_http_callout_done(envoy, fh C.uintptr_t, id C.uint64_t,
	result C.int32_t, headers C.uintptr_t, nHeaders C.size_t, body C.uintptr_t, nBody C.size_t) {
}

//export envoy_dynamic_module_on_http_filter_http_stream_headers
func envoy_dynamic_module_on_http_filter_http_stream_headers(envoy, fh C.uintptr_t, stream C.uint64_t,
	headers C.uintptr_t, nHeaders C.size_t, endOfStream C.bool) {
}

//export envoy_dynamic_module_on_http_filter_http_stream_data
func envoy_dynamic_module_on_http_filter_http_stream_data(envoy, fh C.uintptr_t, stream C.uint64_t,
	data C.uintptr_t, nData C.size_t, endOfStream C.bool) {
}

//export envoy_dynamic_module_on_http_filter_http_stream_trailers
func envoy_dynamic_module_on_http_filter_http_stream_trailers(envoy, fh C.uintptr_t, stream C.uint64_t,
	trailers C.uintptr_t, nTrailers C.size_t) {
}

//export envoy_dynamic_module_on_http_filter_http_stream_complete
func envoy_dynamic_module_on_http_filter_http_stream_complete(envoy, fh C.uintptr_t, stream C.uint64_t) {
}

//export envoy_dynamic_module_on_http_filter_http_stream_reset
func envoy_dynamic_module_on_http_filter_http_stream_reset(envoy, fh C.uintptr_t, stream C.uint64_t, reason C.int32_t) {
}

//export envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark
func envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(envoy, fh C.uintptr_t) {
}

//export envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark
func envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(envoy, fh C.uintptr_t) {
}

// recoverHook is deferred by hooks that have nothing to fail safe to.
func recoverHook(hook string) {
	if r := recover(); r != nil {
		logPanic(hook, r)
	}
}

func logPanic(hook string, r any) {
	defer func() { _ = recover() }() // logging must not panic out of a hook
	logf(slog.LevelError, "panic recovered in Envoy hook", "hook", hook,
		"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
}

// failRequest answers a request whose hook panicked with a local 500,
// unless a reply was already sent.
func (f *filter) failRequest(hook string, r any) {
	logPanic(hook, r)
	defer func() {
		if r := recover(); r != nil {
			logPanic(hook+" (failing safe)", r)
		}
	}()
	if f.phase != phaseReplied && f.envoy != 0 {
		f.replyInternalError()
	}
}

func (f *filter) replyInternalError() {
	sendJSON(f.envoy, host.InternalErrorStatus, host.InternalErrorBody(), host.InternalErrorDetails)
	f.phase = phaseReplied
}
