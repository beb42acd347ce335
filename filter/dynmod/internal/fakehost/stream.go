package fakehost

/*
#cgo CFLAGS: -I${SRCDIR}/../.. -O1
#include <stdlib.h>
#include "abi.h"
*/
import "C"

import (
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Headers is a fake Envoy header map: ordered, lower-case keys, values in C
// memory.
type Headers struct {
	s       *Stream
	entries []header
}

type header struct {
	key string
	val cbuf
}

// Get returns the first value of name ("" when absent).
func (h *Headers) Get(name string) string {
	v, _ := h.Lookup(name)
	return v
}

// Lookup returns the first value of name and whether it is present.
func (h *Headers) Lookup(name string) (string, bool) {
	vs := h.Values(name)
	if len(vs) == 0 {
		return "", false
	}
	return vs[0], true
}

// Values returns every value of name.
func (h *Headers) Values(name string) []string {
	name = strings.ToLower(name)
	var out []string
	for _, e := range h.entries {
		if e.key == name {
			out = append(out, string(e.val.bytes()))
		}
	}
	return out
}

// Map returns every header, values in order.
func (h *Headers) Map() map[string][]string {
	m := map[string][]string{}
	for _, e := range h.entries {
		m[e.key] = append(m[e.key], string(e.val.bytes()))
	}
	return m
}

// Add appends a value, as a client sending the header twice would.
func (h *Headers) Add(name, value string) {
	h.entries = append(h.entries, header{strings.ToLower(name), h.s.keep(newCBuf([]byte(value)))})
}

// Set replaces every value of name; an empty value removes it (Envoy's
// set_header semantics).
func (h *Headers) Set(name, value string) {
	name = strings.ToLower(name)
	kept := h.entries[:0]
	for _, e := range h.entries {
		if e.key == name {
			e.val.poison() // a stale read of it now shows "XXX"
			continue
		}
		kept = append(kept, e)
	}
	h.entries = kept
	if value != "" {
		h.Add(name, value)
	}
}

func (h *Headers) nth(name string, i int) (cbuf, int) {
	var found cbuf
	n := 0
	for _, e := range h.entries {
		if e.key == name {
			if n == i {
				found = e.val
			}
			n++
		}
	}
	return found, n
}

// Reply is a local reply the module sent (send_response).
type Reply struct {
	Status  int
	Headers map[string]string
	Body    string
	Details string
}

// Stream is a fake Envoy HTTP filter instance (one stream).
type Stream struct {
	id     uintptr
	module C.uintptr_t
	cfg    *Config

	Request  *Headers
	Response *Headers

	// ChunkSize splits request bodies into chunks of at most this size
	// (0: one chunk per RequestBody call), like Envoy's buffer slices.
	ChunkSize int
	// PreviousFilterBuffered makes the body hook see the received chunk as
	// the decoding buffer itself, as after an earlier buffering filter.
	PreviousFilterBuffered bool
	// PanicOn names a callback ("get_header", "get_body_chunks", ...) that
	// panics when called, to test the module's recovery.
	PanicOn string

	Replies           []Reply
	RouteCacheClears  int
	ContinueDecodings int
	SchedulersCreated int
	SchedulersDeleted atomic.Int32
	// Events receives the event ids committed to this stream's schedulers
	// (from any goroutine), for the test to deliver with Scheduled.
	Events chan uint64

	received       []cbuf
	buffered       []cbuf
	responseChunk  []cbuf // the response body hook's received data
	inResponseBody bool
	hasBuffered    bool
	inBody         bool
	headersStopped bool
	attrs          map[int32]cbuf
	inHook         atomic.Bool
	completed      bool // stream_complete ran
	destroyed      atomic.Bool

	mu         sync.Mutex // violations and arena: also touched off-hook
	violations []string
	arena      []unsafe.Pointer
}

// NewStream creates a stream and calls on_http_filter_new.
func (c *Config) NewStream() *Stream {
	s := &Stream{cfg: c, Events: make(chan uint64, 8), attrs: map[int32]cbuf{}}
	s.Request, s.Response = &Headers{s: s}, &Headers{s: s}
	registry.Lock()
	s.id = newID()
	registry.streams[s.id] = s
	registry.Unlock()
	s.module = C.envoy_dynamic_module_on_http_filter_new(c.module, C.uintptr_t(s.id))
	return s
}

// Module returns what filter_new returned (0: the module refused).
func (s *Stream) Module() uintptr { return uintptr(s.module) }

// SetModule overrides the module pointer passed to hooks (to test handles
// the module never gave out).
func (s *Stream) SetModule(m uintptr) { s.module = C.uintptr_t(m) }

func (s *Stream) keep(c cbuf) cbuf {
	s.mu.Lock()
	s.arena = append(s.arena, c.p)
	s.mu.Unlock()
	return c
}

func (s *Stream) violate(msg string) {
	s.mu.Lock()
	s.violations = append(s.violations, msg)
	s.mu.Unlock()
}

// Violations returns the ABI rules the module broke, e.g. a callback made
// outside a hook (from a goroutine).
func (s *Stream) Violations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.violations...)
}

// SetAttribute sets a string attribute (see AttributeResponseCodeDetails).
func (s *Stream) SetAttribute(id int32, v string) { s.attrs[id] = s.keep(newCBuf([]byte(v))) }

// hook runs call as Envoy runs a hook on the stream's worker.
func (s *Stream) hook(call func()) {
	s.inHook.Store(true)
	defer s.inHook.Store(false)
	call()
}

// RequestHeaders calls the request headers hook.
func (s *Stream) RequestHeaders(endOfStream bool) int {
	var st C.int32_t
	s.hook(func() {
		st = C.envoy_dynamic_module_on_http_filter_request_headers(C.uintptr_t(s.id), s.module, C.bool(endOfStream))
	})
	s.headersStopped = st == StopIteration
	return int(st)
}

// RequestBody calls the request body hook with data as the received chunk
// and then does what Envoy's FilterManager does with the chunk for the
// returned status: buffer it (StopIterationAndBuffer, or Continue after a
// stop), or drop it (StopIterationNoBuffer).
func (s *Stream) RequestBody(data []byte, endOfStream bool) int {
	chunks := s.split(data)
	if s.PreviousFilterBuffered {
		s.buffered, s.hasBuffered = append(s.buffered, chunks...), true
		s.received = nil
	} else {
		s.received = chunks
	}
	s.inBody = true
	var st C.int32_t
	s.hook(func() {
		st = C.envoy_dynamic_module_on_http_filter_request_body(C.uintptr_t(s.id), s.module, C.bool(endOfStream))
	})
	s.inBody = false
	if st != StopIterationNoBuffer && !s.PreviousFilterBuffered {
		s.buffered = append(s.buffered, s.received...)
		s.hasBuffered = s.hasBuffered || st == StopIterationAndBuffer || s.headersStopped
	}
	s.received = nil
	return int(st)
}

func (s *Stream) split(data []byte) []cbuf {
	size := s.ChunkSize
	if size <= 0 {
		size = max(len(data), 1)
	}
	var out []cbuf
	for len(data) > 0 {
		n := min(size, len(data))
		out = append(out, s.keep(newCBuf(data[:n])))
		data = data[n:]
	}
	return out
}

// Body returns the request body Envoy would now send upstream.
func (s *Stream) Body() string {
	var b strings.Builder
	for _, c := range s.buffered {
		b.Write(c.bytes())
	}
	return b.String()
}

// RequestTrailers calls the request trailers hook.
func (s *Stream) RequestTrailers() int {
	var st C.int32_t
	s.hook(func() {
		st = C.envoy_dynamic_module_on_http_filter_request_trailers(C.uintptr_t(s.id), s.module)
	})
	return int(st)
}

// ResponseHeaders calls the response headers hook. Like Envoy, it does not
// run once the module sent a local reply.
func (s *Stream) ResponseHeaders(endOfStream bool) int {
	if len(s.Replies) > 0 {
		return Continue
	}
	var st C.int32_t
	s.hook(func() {
		st = C.envoy_dynamic_module_on_http_filter_response_headers(C.uintptr_t(s.id), s.module, C.bool(endOfStream))
	})
	return int(st)
}

// ResponseBody calls the response body hook with data as the received
// chunk (split by ChunkSize) and returns the status and the data Envoy
// would pass on: the chunk as the module left it.
func (s *Stream) ResponseBody(data []byte, endOfStream bool) (int, string) {
	s.responseChunk, s.inResponseBody = s.split(data), true
	var st C.int32_t
	s.hook(func() {
		st = C.envoy_dynamic_module_on_http_filter_response_body(C.uintptr_t(s.id), s.module, C.bool(endOfStream))
	})
	s.inResponseBody = false
	var b strings.Builder
	for _, c := range s.responseChunk {
		b.Write(c.bytes())
	}
	s.responseChunk = nil
	return int(st), b.String()
}

// ResponseBodyAndTrailers calls the response body and trailers hooks.
func (s *Stream) ResponseBodyAndTrailers() (body, trailers int) {
	s.hook(func() {
		body = int(C.envoy_dynamic_module_on_http_filter_response_body(C.uintptr_t(s.id), s.module, false))
		trailers = int(C.envoy_dynamic_module_on_http_filter_response_trailers(C.uintptr_t(s.id), s.module))
	})
	return body, trailers
}

// Scheduled delivers a committed event. Like Envoy, it does nothing once
// the stream is destroyed.
func (s *Stream) Scheduled(event uint64) {
	if s.destroyed.Load() {
		return
	}
	s.hook(func() {
		C.envoy_dynamic_module_on_http_filter_scheduled(C.uintptr_t(s.id), s.module, C.uint64_t(event))
	})
}

// Stubs calls every hook the module only stubs, with zero arguments.
func (s *Stream) Stubs() {
	id := C.uintptr_t(s.id)
	s.hook(func() {
		C.envoy_dynamic_module_on_http_filter_http_callout_done(id, s.module, 1, 0, 0, 0, 0, 0)
		C.envoy_dynamic_module_on_http_filter_http_stream_headers(id, s.module, 1, 0, 0, true)
		C.envoy_dynamic_module_on_http_filter_http_stream_data(id, s.module, 1, 0, 0, true)
		C.envoy_dynamic_module_on_http_filter_http_stream_trailers(id, s.module, 1, 0, 0)
		C.envoy_dynamic_module_on_http_filter_http_stream_complete(id, s.module, 1)
		C.envoy_dynamic_module_on_http_filter_http_stream_reset(id, s.module, 1, 0)
		C.envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(id, s.module)
		C.envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(id, s.module)
	})
}

// Destroyed reports whether Destroy ran.
func (s *Stream) Destroyed() bool { return s.destroyed.Load() }

// Complete calls stream_complete, as Envoy does when the stream ends (once;
// Destroy calls it if the test did not). Envoy 1.40 calls destroy only later,
// after the stream is gone.
func (s *Stream) Complete() {
	if s.completed {
		return
	}
	s.completed = true
	s.hook(func() { C.envoy_dynamic_module_on_http_filter_stream_complete(C.uintptr_t(s.id), s.module) })
}

// Destroy calls stream_complete (see Complete) and destroy, as Envoy does at
// the end of a stream (destroy is skipped when filter_new returned 0), then
// frees the stream's C memory. Late scheduler commits are dropped.
func (s *Stream) Destroy() {
	if s.destroyed.Load() {
		return
	}
	s.Complete()
	s.hook(func() {
		if s.module != 0 {
			C.envoy_dynamic_module_on_http_filter_destroy(s.module)
		}
	})
	s.destroyed.Store(true)
	registry.Lock()
	delete(registry.streams, s.id)
	registry.Unlock()
	s.mu.Lock()
	for _, p := range s.arena {
		C.free(p)
	}
	s.arena = nil
	s.mu.Unlock()
}
