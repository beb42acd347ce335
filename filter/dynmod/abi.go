package dynmod

/*
#cgo CFLAGS: -I${SRCDIR} -O2
#include "helpers.h"
*/
import "C"

import (
	"unsafe"

	"github.com/mcpgw/mcpgw/filter/config"
)

// Values our hooks return; Envoy casts them to its FilterHeadersStatus,
// FilterDataStatus and FilterTrailersStatus (see abi.h).
const (
	headersContinue      = C.int32_t(C.MCPGW_HEADERS_CONTINUE)
	headersStopIteration = C.int32_t(C.MCPGW_HEADERS_STOP_ITERATION)
	bodyContinue         = C.int32_t(C.MCPGW_BODY_CONTINUE)
	bodyStopAndBuffer    = C.int32_t(C.MCPGW_BODY_STOP_AND_BUFFER)
	bodyStopNoBuffer     = C.int32_t(C.MCPGW_BODY_STOP_NO_BUFFER)
	trailersContinue     = C.int32_t(C.MCPGW_TRAILERS_CONTINUE)
	trailersStop         = C.int32_t(C.MCPGW_TRAILERS_STOP_ITERATION)
)

// Indexes into the C key table (helpers.c). The internal headers come first
// so that mcpgw_request_headers strips keys[0, numInternal).
const numInternal = len(config.InternalHeaders)

const (
	keyMethod        = numInternal + iota // :method
	keyContentType                        // content-type
	keyContentLength                      // content-length
	keySessionID                          // mcp-session-id
	keyProtocol                           // mcp-protocol-version
	keyPath                               // :path (selects a virtual server)
	keyOrigin                             // origin (DNS-rebinding protection)
	keyMCPMethod                          // mcp-method (stateless era)
	keyMCPName                            // mcp-name (stateless era)
	keyLastEventID                        // last-event-id (stream resumption)
	numKeys
)

// numRead is how many request headers the router needs.
const numRead = numKeys - keyMethod

func init() {
	if numKeys > C.MCPGW_MAX_KEYS {
		panic("dynmod: key table too small")
	}
	names := make([]string, 0, numKeys)
	names = append(names, config.InternalHeaders[:]...)
	names = append(names, ":method", "content-type", "content-length",
		config.HeaderSessionID, config.HeaderProtocolVersion, ":path", "origin",
		config.HeaderMCPMethod, config.HeaderMCPName, config.HeaderLastEventID)
	for i, n := range names {
		// Copied to C memory once and never freed: the table lives as long
		// as the process (the module is never unloaded).
		C.mcpgw_set_key(C.int(i), C.CString(n), C.size_t(len(n)))
	}
}

// envoyString views Envoy memory as a string without copying. It is valid
// only during the current hook, and only until the header map it came from
// changes.
func envoyString(b C.envoy_dynamic_module_type_envoy_buffer) string {
	if b.ptr == nil || b.length == 0 {
		return ""
	}
	return unsafe.String((*byte)(unsafe.Pointer(b.ptr)), int(b.length))
}

// envoyBytes is envoyString for byte slices.
func envoyBytes(b C.envoy_dynamic_module_type_envoy_buffer) []byte {
	if b.ptr == nil || b.length == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(b.ptr)), int(b.length))
}

// cString returns a pointer to s's bytes for a callback that copies them
// before returning. s must be heap or static memory (cgo moves goroutine
// stacks, and a fake host in tests calls back into Go).
func cString(s string) *C.char {
	return (*C.char)(unsafe.Pointer(unsafe.StringData(s)))
}

// cBytes is cString for byte slices.
func cBytes(b []byte) *C.char {
	return (*C.char)(unsafe.Pointer(unsafe.SliceData(b)))
}

// sendJSON sends a local JSON reply; Envoy copies body and details.
func sendJSON(envoy C.uintptr_t, status int, body []byte, details string) {
	C.mcpgw_send_json(envoy, C.uint32_t(status), cBytes(body), C.size_t(len(body)),
		cString(details), C.size_t(len(details)))
}
