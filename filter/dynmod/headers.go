package dynmod

/*
#include "helpers.h"
*/
import "C"

import "unsafe"

// headerBatch is the router.HeaderWriter handed to the router: it records
// writes, and apply sends them to Envoy in a single cgo call (a routed call
// sets about nine headers). Names and values are copied into one byte
// buffer, referenced by offsets, because cgo forbids passing Go memory that
// holds Go pointers (an array of string headers would).
type headerBatch struct {
	buf []byte
	ops []C.mcpgw_header_op
}

// Set records name: value. An empty value removes the header, which is what
// Envoy's set_header does with one anyway.
func (b *headerBatch) Set(name, value string) {
	off := len(b.buf)
	b.buf = append(b.buf, name...)
	b.buf = append(b.buf, value...)
	b.ops = append(b.ops, C.mcpgw_header_op{
		key_off: C.uint32_t(off), key_len: C.uint32_t(len(name)),
		val_off: C.uint32_t(off + len(name)), val_len: C.uint32_t(len(value)),
	})
}

// Remove records the removal of every value of name.
func (b *headerBatch) Remove(name string) { b.Set(name, "") }

func (b *headerBatch) reset() {
	if b.buf == nil {
		b.buf = make([]byte, 0, 512)
		b.ops = make([]C.mcpgw_header_op, 0, 16)
	}
	b.buf, b.ops = b.buf[:0], b.ops[:0]
}

// sendResponse sends a local reply with the recorded headers (a handful:
// helpers.h bounds them), then empties the batch. Envoy copies everything.
func (f *filter) sendResponse(status int, body []byte, details string) {
	b := &f.batch
	var buf *C.char
	var ops *C.mcpgw_header_op
	if len(b.ops) > 0 {
		buf, ops = (*C.char)(unsafe.Pointer(unsafe.SliceData(b.buf))), &b.ops[0]
	}
	C.mcpgw_send_response(f.envoy, C.uint32_t(status), buf, ops, C.size_t(len(b.ops)),
		cBytes(body), C.size_t(len(body)), cString(details), C.size_t(len(details)))
	b.reset()
}

// apply writes the recorded headers into the header map of headerType,
// replaces the request body with body if it is not nil, and clears the
// route cache if clearRoute; then empties the batch.
func (f *filter) apply(headerType C.int32_t, body []byte, clearRoute bool) {
	b := &f.batch
	if len(b.ops) == 0 && body == nil && !clearRoute {
		return
	}
	var buf *C.char
	var ops *C.mcpgw_header_op
	if len(b.ops) > 0 {
		buf, ops = (*C.char)(unsafe.Pointer(unsafe.SliceData(b.buf))), &b.ops[0]
	}
	var bodyPtr *C.char
	if body != nil {
		bodyPtr = cBytes(body)
	}
	C.mcpgw_apply(f.envoy, headerType, buf, ops, C.size_t(len(b.ops)),
		bodyPtr, C.size_t(len(body)), C.bool(clearRoute))
	b.reset()
}
