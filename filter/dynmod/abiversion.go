package dynmod

/*
#include <stdlib.h>
#include "helpers.h"
*/
import "C"

import (
	"sync"
	"unsafe"
)

// One .so serves Envoy 1.39 and 1.40. Envoy compares the ABI version string
// on_program_init returns with its own; a mismatch only logs a warning that
// the module is built for a deprecated ABI, an exact match logs that it
// matched. The module reports the version of the Envoy that loaded it, among
// those it was checked against (abi.h), so that a matched version in the log
// means exactly that: this Envoy's hooks and callbacks were checked.
//
// Envoy offers no callback that tells its version, so each ABI is recognized
// by a callback that first appeared in it (Envoy's callbacks are exported
// from its binary, and dlsym finds them in the process's global scope when
// the module is loaded). An Envoy newer than every entry reports the newest:
// its warning then says, truthfully, that the module predates its ABI.
var abis = []struct {
	version string // what on_program_init returns
	marker  string // a callback only this ABI and later ones have; "" for the oldest
}{
	{"v0.2.0", "envoy_dynamic_module_callback_log_v2"}, // Envoy 1.40.x
	{"v0.1.0", ""}, // Envoy 1.39.x
}

// abiVersionFor picks the ABI version to report from which callbacks the
// host provides.
func abiVersionFor(hostHas func(symbol string) bool) string {
	for _, a := range abis {
		if a.marker == "" || hostHas(a.marker) {
			return a.version
		}
	}
	return abis[len(abis)-1].version
}

// hostHas reports whether the process (Envoy, which loaded us) defines the
// function symbol.
func hostHas(symbol string) bool {
	s := C.CString(symbol)
	defer C.free(unsafe.Pointer(s))
	return bool(C.mcpgw_host_has(s))
}

// programABI is the version string on_program_init returns: C memory that
// lives as long as the process (Envoy 1.39 reads it after the hook returns).
var programABI = sync.OnceValue(func() *C.char { return C.CString(abiVersionFor(hostHas)) })
