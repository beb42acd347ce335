package dynmod

/*
#include "helpers.h"
*/
import "C"

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"

	"github.com/mcpgw/mcpgw/filter/config"
	"github.com/mcpgw/mcpgw/filter/router"
)

// FilterName is the filter_name the module answers to.
const FilterName = "mcpgw"

// moduleConfig is the filter_config of the Envoy filter: JSON, given in the
// Envoy config either as a google.protobuf.StringValue holding the JSON or as
// a google.protobuf.Struct (Envoy serializes a Struct to JSON).
type moduleConfig struct {
	// ConfigPath is the absolute path of the mcpgw config file (config.Config)
	// to load and watch.
	ConfigPath string `json:"config_path"`
}

const configSyntax = `want JSON {"config_path": "/absolute/path/to/config.yaml"}`

func parseModuleConfig(name string, raw []byte) (moduleConfig, error) {
	var c moduleConfig
	if name != FilterName {
		return c, fmt.Errorf("filter_name %q: this module only provides %q", name, FilterName)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return c, errors.New("filter_config is empty; " + configSyntax)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("filter_config: %v; %s", err, configSyntax)
	}
	if _, err := dec.Token(); err != io.EOF {
		return c, errors.New("filter_config: unexpected data after the JSON object; " + configSyntax)
	}
	switch {
	case c.ConfigPath == "":
		return c, errors.New("filter_config: config_path is required; " + configSyntax)
	case !filepath.IsAbs(c.ConfigPath):
		return c, fmt.Errorf("filter_config: config_path %q must be absolute (Envoy's working directory is arbitrary)", c.ConfigPath)
	}
	return c, nil
}

// filterConfig is our side of one Envoy filter config (one per listener
// filter chain that uses the filter, re-created on every LDS update).
type filterConfig struct {
	shared  *sharedRouter
	ids     [numCounters]C.size_t // Envoy counter ids, valid when statsOK
	statsOK bool
}

// sharedRouter is a Router and the watch feeding it, shared by every filter
// config naming the same config file. Envoy creates the new filter config
// before destroying the old one on a listener update, so sharing keeps the
// router (and its backend sessions) alive across updates: otherwise every
// update would make every client re-open every backend session.
type sharedRouter struct {
	path     string
	router   *router.Router
	log      *slog.Logger
	cancel   context.CancelFunc
	refs     int // guarded by routers.mu
	counters counterSources
}

var routers = struct {
	sync.Mutex
	m map[string]*sharedRouter
}{m: map[string]*sharedRouter{}}

// newFilterConfig runs in on_http_filter_config_new, on Envoy's main thread.
// name and raw may alias Envoy memory.
func newFilterConfig(envoyConfig C.uintptr_t, name string, raw []byte) (*filterConfig, error) {
	mc, err := parseModuleConfig(name, raw)
	if err != nil {
		return nil, err
	}
	sr, err := acquireRouter(mc.ConfigPath)
	if err != nil {
		return nil, err
	}
	fc := &filterConfig{shared: sr}
	fc.defineCounters(envoyConfig)
	return fc, nil
}

func acquireRouter(path string) (*sharedRouter, error) {
	routers.Lock()
	defer routers.Unlock()
	if sr := routers.m[path]; sr != nil {
		sr.refs++
		return sr, nil
	}
	log := slog.New(envoyLogHandler{}).With("config", path)
	r := router.New(router.Options{Logger: log})
	ctx, cancel := context.WithCancel(context.Background())
	// Watch applies the first load before returning; a config that parses
	// but does not compile (e.g. a session key variable missing from
	// Envoy's environment) must fail the filter config like a parse error,
	// not leave a router that answers 503 to everything.
	var firstErr error
	first := true
	stats, err := config.Watch(ctx, path, config.WatchOptions{Logger: log}, func(c *config.Config) {
		err := r.Apply(c)
		if first {
			first, firstErr = false, err
			return
		}
		if err != nil {
			log.Error("config not applied; keeping the previous one", "error", err)
		}
	})
	if err == nil {
		err = firstErr
	}
	if err != nil {
		cancel()
		return nil, fmt.Errorf("config_path %q: %w", path, err)
	}
	sr := &sharedRouter{path: strings.Clone(path), router: r, log: log, cancel: cancel, refs: 1}
	sr.counters.init(&r.Metrics, stats)
	routers.m[sr.path] = sr
	return sr, nil
}

// release runs in on_http_filter_config_destroy. Streams of this config may
// still be alive (Envoy keeps the config alive while they are), so nothing
// here invalidates the Router; the last release only stops the watch.
func (fc *filterConfig) release() {
	routers.Lock()
	defer routers.Unlock()
	sr := fc.shared
	sr.refs--
	if sr.refs == 0 {
		sr.cancel()
		delete(routers.m, sr.path)
	}
}

// defineCounters declares our counters in Envoy. Envoy only accepts
// definitions during on_http_filter_config_new (later it answers Frozen).
func (fc *filterConfig) defineCounters(envoyConfig C.uintptr_t) {
	for i, name := range counterNames {
		// name is heap memory from init; Envoy copies it into its symbol table.
		res := C.mcpgw_define_counter(envoyConfig, cString(name), C.size_t(len(name)), &fc.ids[i])
		if res != 0 {
			fc.shared.log.Warn("Envoy refused a counter; mcpgw stats disabled for this filter config",
				"counter", name, "result", int(res))
			return
		}
	}
	fc.statsOK = true
}
