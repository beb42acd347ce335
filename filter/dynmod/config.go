package dynmod

/*
#include "helpers.h"
*/
import "C"

import (
	"fmt"
	"sync"

	"github.com/mcpgw/mcpgw/filter/host"
)

// FilterName is the filter_name the module answers to.
const FilterName = "mcpgw"

// filterConfig is our side of one Envoy filter config (one per listener
// filter chain that uses the filter, re-created on every LDS update). The
// filter_config is JSON (host.FilterConfig), given in the Envoy config either
// as a google.protobuf.StringValue holding the JSON or as a
// google.protobuf.Struct (Envoy serializes a Struct to JSON). Filter configs
// naming the same config file share one router (host.Acquire).
type filterConfig struct {
	shared  *host.Shared
	ids     [host.NumCounters]C.size_t // Envoy counter ids, valid when statsOK
	statsOK bool
	// sessions are its streams' session goroutines (session.go), which
	// release waits for.
	sessions sync.WaitGroup
}

// newFilterConfig runs in on_http_filter_config_new, on Envoy's main thread.
// name and raw may alias Envoy memory.
func newFilterConfig(envoyConfig C.uintptr_t, name string, raw []byte) (*filterConfig, error) {
	if name != FilterName {
		return nil, fmt.Errorf("filter_name %q: this module only provides %q", name, FilterName)
	}
	mc, err := host.ParseFilterConfig("filter_config", raw)
	if err != nil {
		return nil, err
	}
	sr, err := host.Acquire(mc.ConfigPath, logHandler)
	if err != nil {
		return nil, err
	}
	fc := &filterConfig{shared: sr}
	fc.defineCounters(envoyConfig)
	return fc, nil
}

// release runs in on_http_filter_config_destroy, once the config's last
// stream is gone (its streams keep it alive). It waits for the session
// goroutines they started (their I/O was cancelled when their stream went,
// so they are returning); the last release closes the router's background
// work (see host.Shared.Release).
func (fc *filterConfig) release() {
	fc.sessions.Wait()
	fc.shared.Release()
}

// defineCounters declares our counters in Envoy. Envoy only accepts
// definitions during on_http_filter_config_new (later it answers Frozen).
func (fc *filterConfig) defineCounters(envoyConfig C.uintptr_t) {
	for i := range fc.ids {
		// The name is static or heap memory that lives as long as the
		// process; Envoy copies it into its symbol table.
		name := host.CounterName(i)
		res := C.mcpgw_define_counter(envoyConfig, cString(name), C.size_t(len(name)), &fc.ids[i])
		if res != 0 {
			fc.shared.Log().Warn("Envoy refused a counter; mcpgw stats disabled for this filter config",
				"counter", name, "result", int(res))
			return
		}
	}
	fc.statsOK = true
}
