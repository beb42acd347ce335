package host

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
)

// FilterConfig is the configuration of one Envoy filter instance, given in
// Envoy's config as JSON (dynamic module: filter_config; golang filter:
// plugin_config).
type FilterConfig struct {
	// ConfigPath is the absolute path of the mcpgw config file (config.Config)
	// to load and watch.
	ConfigPath string `json:"config_path"`
}

const configSyntax = `want JSON {"config_path": "/absolute/path/to/config.yaml"}`

// ParseFilterConfig parses and validates the JSON filter configuration.
// field names the Envoy config field it came from, for error messages.
// Unknown fields are errors: a typo must not silently fall back to defaults.
func ParseFilterConfig(field string, raw []byte) (FilterConfig, error) {
	var c FilterConfig
	if len(bytes.TrimSpace(raw)) == 0 {
		return c, errors.New(field + " is empty; " + configSyntax)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("%s: %v; %s", field, err, configSyntax)
	}
	if _, err := dec.Token(); err != io.EOF {
		return c, errors.New(field + ": unexpected data after the JSON object; " + configSyntax)
	}
	switch {
	case c.ConfigPath == "":
		return c, errors.New(field + ": config_path is required; " + configSyntax)
	case !filepath.IsAbs(c.ConfigPath):
		return c, fmt.Errorf("%s: config_path %q must be absolute (Envoy's working directory is arbitrary)",
			field, c.ConfigPath)
	}
	return c, nil
}
