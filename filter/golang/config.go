package golang

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"github.com/envoyproxy/envoy/contrib/golang/common/go/api"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/mcpgw/mcpgw/filter/host"
)

// PluginName is the plugin_name the filter is registered under.
const PluginName = "mcpgw"

// Type URLs accepted for plugin_config.
const (
	typeTypedStruct     = "type.googleapis.com/xds.type.v3.TypedStruct"
	typeUDPATypedStruct = "type.googleapis.com/udpa.type.v1.TypedStruct"
	typeStruct          = "type.googleapis.com/google.protobuf.Struct"
	typeStringValue     = "type.googleapis.com/google.protobuf.StringValue"
)

// Parser is the api.StreamFilterConfigParser of the plugin.
type Parser struct{}

var _ api.StreamFilterConfigParser = Parser{}

// Parse runs on Envoy's main thread for every listener filter config (and
// per-route config) naming the plugin; an error rejects the Envoy config.
//
// The shim does not recover panics here (envoyGoFilterNewHttpPluginConfig),
// and a Go panic aborts Envoy: recover.
func (Parser) Parse(any *anypb.Any, callbacks api.ConfigCallbackHandler) (cfg interface{}, err error) {
	defer func() {
		if r := recover(); r != nil {
			logPanic("Parse", r)
			cfg, err = nil, fmt.Errorf("internal error parsing plugin_config: %v", r)
		}
	}()
	if callbacks == nil {
		// Only per-route configs (ConfigsPerRoute) are parsed without
		// callbacks. mcpgw routes requests itself; one config per listener.
		return nil, errors.New("mcpgw takes no per-route plugin config: configure it once, on the listener's golang filter")
	}
	raw, err := pluginConfigJSON(any)
	if err != nil {
		return nil, err
	}
	fc, err := host.ParseFilterConfig("plugin_config", raw)
	if err != nil {
		return nil, err
	}
	sr, err := host.Acquire(fc.ConfigPath, logHandler)
	if err != nil {
		return nil, err
	}
	c := &filterConfig{shared: sr}
	c.defineCounters(callbacks)
	return c, nil
}

// Merge combines a per-route config with its parent. Parse rejects every
// per-route config, so Envoy never calls it; it returns child, like the
// shim's NullParser.
func (Parser) Merge(parent, child interface{}) interface{} { return child }

// pluginConfigJSON returns the JSON of plugin_config: the golang filter hands
// over the google.protobuf.Any untouched (Envoy does not validate it).
func pluginConfigJSON(any *anypb.Any) ([]byte, error) {
	if any == nil || any.GetTypeUrl() == "" {
		return nil, errors.New("plugin_config is required; want a TypedStruct with value {config_path: ...}")
	}
	switch any.GetTypeUrl() {
	case typeTypedStruct, typeUDPATypedStruct:
		s, err := typedStructValue(any.GetValue())
		if err != nil {
			return nil, fmt.Errorf("plugin_config: %s: %w", any.GetTypeUrl(), err)
		}
		return json.Marshal(s.AsMap())
	case typeStruct:
		var s structpb.Struct
		if err := proto.Unmarshal(any.GetValue(), &s); err != nil {
			return nil, fmt.Errorf("plugin_config: %s: %w", any.GetTypeUrl(), err)
		}
		return json.Marshal(s.AsMap())
	case typeStringValue:
		var s wrapperspb.StringValue
		if err := proto.Unmarshal(any.GetValue(), &s); err != nil {
			return nil, fmt.Errorf("plugin_config: %s: %w", any.GetTypeUrl(), err)
		}
		return []byte(s.GetValue()), nil
	}
	return nil, fmt.Errorf("plugin_config: unsupported type %q; want %s (or %s, %s, %s)",
		any.GetTypeUrl(), typeTypedStruct, typeUDPATypedStruct, typeStruct, typeStringValue)
}

// typedStructValue decodes the value field of an xds.type.v3.TypedStruct (or
// its identical predecessor udpa.type.v1.TypedStruct): message {string
// type_url = 1; google.protobuf.Struct value = 2;}. Decoding the two fields
// by hand spares a dependency on the cncf/xds Go module. type_url names the
// message the Struct describes; mcpgw has no proto of its own, so it is
// not checked.
func typedStructValue(b []byte) (*structpb.Struct, error) {
	s := &structpb.Struct{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
		if num == 2 && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, protowire.ParseError(n)
			}
			// proto3 merge semantics: a repeated field 2 merges.
			if err := (proto.UnmarshalOptions{Merge: true}).Unmarshal(v, s); err != nil {
				return nil, err
			}
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
	}
	return s, nil
}

// filterConfig is our side of one golang filter config (one per listener
// filter chain that uses the plugin, re-created on every LDS update).
type filterConfig struct {
	shared    *host.Shared
	counters  [host.NumCounters]api.CounterMetric // valid when statsOK
	statsOK   bool
	destroyed atomic.Bool
	// sessions are its streams' session goroutines (session.go), which
	// Destroy waits for.
	sessions sync.WaitGroup
}

var _ api.Config = (*filterConfig)(nil)

// defineCounters declares our counters. The golang filter defines them in
// the root stats scope (FilterConfig's metric_store_: scope().createScope("")),
// so they appear as mcpgw.* in /stats. Definitions are only possible during
// Parse: callbacks is the config being created.
func (c *filterConfig) defineCounters(callbacks api.ConfigCallbackHandler) {
	defer func() {
		// DefineCounterMetric panics on a CAPI error (the shim's
		// handleCApiStatus): run without stats rather than fail the config.
		if r := recover(); r != nil {
			c.shared.Log().Warn("Envoy refused a counter; mcpgw stats disabled for this filter config",
				"panic", fmt.Sprint(r))
		}
	}()
	for i := range c.counters {
		c.counters[i] = callbacks.DefineCounterMetric(host.CounterName(i))
	}
	c.statsOK = true
}

// Destroy runs when Envoy deletes the config (FilterConfig destructor, after
// its last stream), on the main thread. It waits for the session goroutines
// its streams started: their streams are gone, so their I/O was cancelled
// and they are returning. Streams still running (none, by then) could keep
// using the router; the last release closes its background work: see
// host.Shared.Release.
func (c *filterConfig) Destroy() {
	if c.destroyed.CompareAndSwap(false, true) {
		c.sessions.Wait()
		c.shared.Release()
	}
}

// logPanic logs a recovered panic with its stack.
func logPanic(where string, r any) {
	defer func() { _ = recover() }() // logging must not panic out of a hook
	logf(slog.LevelError, "panic recovered in Envoy callback", "callback", where,
		"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
}
