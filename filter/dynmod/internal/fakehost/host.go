// Package fakehost is a test-only stand-in for Envoy: its C code defines the
// dynamic-module callbacks the mcpgw adapter (filter/dynmod) imports, and its
// Go API drives the adapter's real exported hooks the way Envoy 1.39.1 does
// (filter.cc, FilterManager buffering), so tests run full request/response
// cycles without Envoy.
//
// It models what the adapter relies on: header maps, the received and
// buffered request body (including the "received is the buffer" case),
// local replies, route cache clears, schedulers (commits are recorded and the
// test fires the scheduled hook), continue_decoding, attributes, counters
// and logs. Callbacks other than scheduler commit/delete and logging are
// checked to run inside a hook of their stream (Violations).
//
// Values handed to the adapter live in C memory, like Envoy's; overwritten
// or removed header values are poisoned (not freed) until the stream closes,
// so a read that outlives its value shows as garbage in assertions.
//
// Only _test.go files may import this package: it defines the callbacks
// Envoy provides, so it must never be linked into the module.
package fakehost

/*
#cgo CFLAGS: -I${SRCDIR}/../.. -O1
#include <stdlib.h>
#include <string.h>
#include "abi.h"
*/
import "C"

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Status values the hooks return (Envoy's filter enums).
const (
	Continue               = 0 // headers, body, trailers
	StopIteration          = 1 // headers, trailers
	StopIterationAndBuffer = 1 // body
	StopIterationNoBuffer  = 3 // body
)

// AttributeResponseCodeDetails is envoy_dynamic_module_type_attribute_id_
// ResponseCodeDetails.
const AttributeResponseCodeDetails = C.MCPGW_ATTRIBUTE_RESPONSE_CODE_DETAILS

// Frozen is envoy_dynamic_module_type_metrics_result_Frozen: Envoy's answer
// to a counter definition after config_new.
const Frozen = 3

// registry maps the fake Envoy pointers handed to the module to our objects.
var registry = struct {
	sync.Mutex
	next    uintptr
	streams map[uintptr]*Stream
	configs map[uintptr]*Config
	scheds  map[uintptr]*scheduler
}{next: 0x1000, streams: map[uintptr]*Stream{}, configs: map[uintptr]*Config{},
	scheds: map[uintptr]*scheduler{}}

func newID() uintptr {
	registry.next += 16
	return registry.next
}

// cbuf is a byte string in C memory.
type cbuf struct {
	p unsafe.Pointer
	n int
}

func newCBuf(b []byte) cbuf {
	p := C.malloc(C.size_t(max(len(b), 1)))
	if len(b) > 0 {
		C.memcpy(p, unsafe.Pointer(&b[0]), C.size_t(len(b)))
	}
	return cbuf{p, len(b)}
}

func (c cbuf) bytes() []byte { return C.GoBytes(c.p, C.int(c.n)) }

func (c cbuf) poison() { C.memset(c.p, 'X', C.size_t(c.n)) }

func (c cbuf) envoy() C.envoy_dynamic_module_type_envoy_buffer {
	return C.envoy_dynamic_module_type_envoy_buffer{ptr: (*C.char)(c.p), length: C.size_t(c.n)}
}

// ProgramInit calls envoy_dynamic_module_on_program_init and returns the ABI
// version the module reports.
func ProgramInit() string {
	p := C.envoy_dynamic_module_on_program_init()
	if p == nil {
		return ""
	}
	return C.GoString(p)
}

// Config is a fake Envoy filter config.
type Config struct {
	id        uintptr
	module    C.uintptr_t
	destroyed atomic.Bool

	mu       sync.Mutex
	frozen   bool
	names    []string
	counters []uint64
}

// NewConfig calls on_http_filter_config_new with filter name and config, as
// Envoy does for a DynamicModuleFilter; an error means the module returned 0.
func NewConfig(name string, config []byte) (*Config, error) {
	c := &Config{}
	registry.Lock()
	c.id = newID()
	registry.configs[c.id] = c
	registry.Unlock()
	n, cfg := newCBuf([]byte(name)), newCBuf(config)
	defer C.free(n.p)
	defer C.free(cfg.p)
	c.module = C.envoy_dynamic_module_on_http_filter_config_new(C.uintptr_t(c.id), n.envoy(), cfg.envoy())
	c.mu.Lock()
	c.frozen = true // Envoy refuses definitions after config_new
	c.mu.Unlock()
	if c.module == 0 {
		registry.Lock()
		delete(registry.configs, c.id)
		registry.Unlock()
		return nil, fmt.Errorf("on_http_filter_config_new returned 0")
	}
	return c, nil
}

// Destroy calls on_http_filter_config_destroy (once).
func (c *Config) Destroy() {
	if c.destroyed.CompareAndSwap(false, true) {
		C.envoy_dynamic_module_on_http_filter_config_destroy(c.module)
	}
}

// DestroyHandle calls on_http_filter_config_destroy with any value, e.g. a
// stale one (a module bug Envoy would never trigger).
func DestroyHandle(h uintptr) { C.envoy_dynamic_module_on_http_filter_config_destroy(C.uintptr_t(h)) }

// Module returns what config_new returned.
func (c *Config) Module() uintptr { return uintptr(c.module) }

// Counter returns the value of the counter the module defined as name, and
// whether it was defined.
func (c *Config) Counter(name string) (uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, n := range c.names {
		if n == name {
			return c.counters[i], true
		}
	}
	return 0, false
}

// CounterNames returns the names the module defined, in definition order.
func (c *Config) CounterNames() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.names...)
}

// LogLine is one line the module logged.
type LogLine struct {
	Level   int
	Message string
}

var logs struct {
	sync.Mutex
	lines []LogLine
}

// MinLogLevel is the lowest level log_enabled reports as enabled (Envoy's
// spdlog order: 0 trace ... 4 error).
var MinLogLevel atomic.Int32

// Logs returns the lines logged so far that contain substr.
func Logs(substr string) []LogLine {
	logs.Lock()
	defer logs.Unlock()
	var out []LogLine
	for _, l := range logs.lines {
		if strings.Contains(l.Message, substr) {
			out = append(out, l)
		}
	}
	return out
}

// scheduler is a fake DynamicModuleHttpFilterScheduler.
type scheduler struct {
	stream  *Stream
	deleted bool
}
