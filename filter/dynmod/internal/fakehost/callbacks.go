package fakehost

/*
#cgo CFLAGS: -I${SRCDIR}/../.. -O1
#include "abi.h"
*/
import "C"

import (
	"fmt"
	"strings"
	"unsafe"
)

// The Go side of fakehost.c: one function per Envoy callback. Like Envoy,
// they trust the module's pointers.

func goString(p *C.char, n C.size_t) string {
	if p == nil || n == 0 {
		return ""
	}
	return C.GoStringN(p, C.int(n))
}

// worker returns the stream of filter pointer f, recording a violation when
// the callback runs outside one of its hooks (Envoy forbids that).
func worker(f C.uintptr_t, callback string) *Stream {
	registry.Lock()
	s := registry.streams[uintptr(f)]
	registry.Unlock()
	if s == nil {
		panic(fmt.Sprintf("fakehost: %s on unknown filter %#x", callback, uintptr(f)))
	}
	if !s.inHook.Load() {
		s.violate(callback + " called outside a hook")
	}
	if s.PanicOn == callback {
		panic("fakehost: injected panic in " + callback)
	}
	return s
}

func (s *Stream) headers(t C.int32_t) *Headers {
	switch t {
	case C.MCPGW_REQUEST_HEADER:
		return s.Request
	case C.MCPGW_RESPONSE_HEADER:
		return s.Response
	}
	return nil
}

//export fhGetHeader
func fhGetHeader(f C.uintptr_t, t C.int32_t, k *C.char, kn C.size_t,
	result *C.envoy_dynamic_module_type_envoy_buffer, index C.size_t, size *C.size_t) C.bool {
	s := worker(f, "get_header")
	*result = C.envoy_dynamic_module_type_envoy_buffer{}
	h := s.headers(t)
	if h == nil {
		if size != nil {
			*size = 0
		}
		return false
	}
	v, n := h.nth(strings.ToLower(goString(k, kn)), int(index))
	if size != nil {
		*size = C.size_t(n)
	}
	if int(index) >= n {
		return false
	}
	*result = v.envoy()
	return true
}

//export fhSetHeader
func fhSetHeader(f C.uintptr_t, t C.int32_t, k *C.char, kn C.size_t, v *C.char, vn C.size_t) C.bool {
	s := worker(f, "set_header")
	h := s.headers(t)
	if h == nil {
		return false
	}
	h.Set(goString(k, kn), goString(v, vn)) // an empty value removes
	return true
}

//export fhClearRouteCache
func fhClearRouteCache(f C.uintptr_t) {
	worker(f, "clear_route_cache").RouteCacheClears++
}

//export fhSendResponseBegin
func fhSendResponseBegin(f C.uintptr_t, status C.uint32_t, b *C.char, bn C.size_t, d *C.char, dn C.size_t) {
	s := worker(f, "send_response")
	s.Replies = append(s.Replies, Reply{Status: int(status), Headers: map[string]string{},
		Body: goString(b, bn), Details: goString(d, dn)})
}

//export fhSendResponseHeader
func fhSendResponseHeader(f C.uintptr_t, k *C.char, kn C.size_t, v *C.char, vn C.size_t) {
	s := worker(f, "send_response")
	s.Replies[len(s.Replies)-1].Headers[strings.ToLower(goString(k, kn))] = goString(v, vn)
}

// body returns the chunk list of a body type, or nil when that buffer does
// not exist (Envoy: no current chunk outside a body hook, no decoding buffer
// before something was buffered).
func (s *Stream) body(t C.int32_t) *[]cbuf {
	switch t {
	case C.MCPGW_RECEIVED_REQUEST_BODY:
		if !s.inBody {
			return nil
		}
		if s.PreviousFilterBuffered {
			return &s.buffered
		}
		return &s.received
	case C.MCPGW_BUFFERED_REQUEST_BODY:
		if !s.hasBuffered {
			return nil
		}
		return &s.buffered
	case C.MCPGW_RECEIVED_RESPONSE_BODY:
		if !s.inResponseBody {
			return nil
		}
		return &s.responseChunk
	}
	return nil
}

//export fhBodyChunksSize
func fhBodyChunksSize(f C.uintptr_t, t C.int32_t) C.size_t {
	s := worker(f, "get_body_chunks_size")
	if b := s.body(t); b != nil {
		return C.size_t(len(*b))
	}
	return 0
}

//export fhBodySize
func fhBodySize(f C.uintptr_t, t C.int32_t) C.size_t {
	s := worker(f, "get_body_size")
	n := 0
	if b := s.body(t); b != nil {
		for _, c := range *b {
			n += c.n
		}
	}
	return C.size_t(n)
}

//export fhBodyChunks
func fhBodyChunks(f C.uintptr_t, t C.int32_t, out *C.envoy_dynamic_module_type_envoy_buffer) C.bool {
	s := worker(f, "get_body_chunks")
	b := s.body(t)
	if b == nil {
		return false
	}
	dst := unsafe.Slice(out, len(*b))
	for i, c := range *b {
		dst[i] = c.envoy()
	}
	return true
}

//export fhDrainBody
func fhDrainBody(f C.uintptr_t, t C.int32_t, n C.size_t) C.bool {
	s := worker(f, "drain_body")
	b := s.body(t)
	if b == nil {
		return false
	}
	left := uint64(n)
	for len(*b) > 0 && left > 0 {
		c := (*b)[0]
		if uint64(c.n) > left {
			// Partial drain: keep the tail in a fresh chunk.
			(*b)[0] = s.keep(newCBuf(c.bytes()[left:]))
			break
		}
		left -= uint64(c.n)
		*b = (*b)[1:]
	}
	return true
}

//export fhAppendBody
func fhAppendBody(f C.uintptr_t, t C.int32_t, d *C.char, dn C.size_t) C.bool {
	s := worker(f, "append_body")
	if t == C.MCPGW_BUFFERED_REQUEST_BODY && !s.hasBuffered {
		s.hasBuffered = true // Envoy: addDecodedData creates the buffer
	}
	b := s.body(t)
	if b == nil {
		return false
	}
	*b = append(*b, s.keep(newCBuf([]byte(goString(d, dn)))))
	return true
}

//export fhReceivedIsBuffered
func fhReceivedIsBuffered(f C.uintptr_t) C.bool {
	s := worker(f, "received_buffered_request_body")
	return C.bool(s.inBody && s.PreviousFilterBuffered)
}

//export fhAttributeString
func fhAttributeString(f C.uintptr_t, id C.int32_t, result *C.envoy_dynamic_module_type_envoy_buffer) C.bool {
	s := worker(f, "get_attribute_string")
	v, ok := s.attrs[int32(id)]
	if !ok {
		return false
	}
	*result = v.envoy()
	return true
}

//export fhSchedulerNew
func fhSchedulerNew(f C.uintptr_t) C.uintptr_t {
	s := worker(f, "scheduler_new")
	s.SchedulersCreated++
	registry.Lock()
	defer registry.Unlock()
	id := newID()
	registry.scheds[id] = &scheduler{stream: s}
	return C.uintptr_t(id)
}

// fhSchedulerCommit may run on any goroutine. Like Envoy's, it is a no-op
// once the stream is destroyed.
//
//export fhSchedulerCommit
func fhSchedulerCommit(id C.uintptr_t, event C.uint64_t) {
	registry.Lock()
	sc := registry.scheds[uintptr(id)]
	registry.Unlock()
	if sc == nil || sc.deleted {
		panic("fakehost: commit on a deleted or unknown scheduler")
	}
	if sc.stream.destroyed.Load() {
		return
	}
	select {
	case sc.stream.Events <- uint64(event):
	default:
		sc.stream.violate("too many scheduler commits")
	}
}

//export fhSchedulerDelete
func fhSchedulerDelete(id C.uintptr_t) {
	registry.Lock()
	sc := registry.scheds[uintptr(id)]
	if sc != nil {
		sc.deleted = true
		delete(registry.scheds, uintptr(id))
	}
	registry.Unlock()
	if sc == nil {
		panic("fakehost: delete of an unknown scheduler")
	}
	sc.stream.SchedulersDeleted.Add(1)
}

//export fhContinueDecoding
func fhContinueDecoding(f C.uintptr_t) {
	worker(f, "continue_decoding").ContinueDecodings++
}

//export fhDefineCounter
func fhDefineCounter(config C.uintptr_t, n *C.char, nn C.size_t, labels C.size_t, id *C.size_t) C.int32_t {
	registry.Lock()
	c := registry.configs[uintptr(config)]
	registry.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.frozen {
		return Frozen
	}
	if labels != 0 {
		panic("fakehost: labelled counters are not modelled")
	}
	*id = C.size_t(len(c.names))
	c.names = append(c.names, goString(n, nn))
	c.counters = append(c.counters, 0)
	return 0
}

//export fhIncrementCounter
func fhIncrementCounter(f C.uintptr_t, id C.size_t, labels C.size_t, v C.uint64_t) C.int32_t {
	c := worker(f, "increment_counter").cfg
	c.mu.Lock()
	defer c.mu.Unlock()
	if int(id) >= len(c.counters) || labels != 0 {
		return 1 // MetricNotFound
	}
	c.counters[id] += uint64(v)
	return 0
}

//export fhLog
func fhLog(level C.int32_t, m *C.char, mn C.size_t) {
	logs.Lock()
	logs.lines = append(logs.lines, LogLine{Level: int(level), Message: goString(m, mn)})
	logs.Unlock()
}

//export fhLogEnabled
func fhLogEnabled(level C.int32_t) C.bool {
	return int32(level) >= MinLogLevel.Load()
}
