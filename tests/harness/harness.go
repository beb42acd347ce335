// Package harness starts the real processes of mcpgw's local stack and
// end-to-end tests: Envoy with the router module, the broker, example MCP
// servers. It is shared by tests/ and the `make run` launcher; product code
// never imports it.
package harness

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// RepoRoot returns the repository root (the directory holding go.mod),
// searching upwards from the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			strings.HasPrefix(string(b), "module github.com/mcpgw/mcpgw\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("repository root (go.mod of github.com/mcpgw/mcpgw) not found")
		}
		dir = parent
	}
}

// EnvoyVersion returns the pinned Envoy version (envoy/ENVOY_VERSION).
func EnvoyVersion(root string) (string, error) {
	b, err := os.ReadFile(filepath.Join(root, "envoy", "ENVOY_VERSION"))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// FindEnvoy returns the Envoy binary: $MCPGW_ENVOY if set, else the pinned
// version installed by `make envoy` under build/envoy.
func FindEnvoy(root string) (string, error) {
	if p := os.Getenv("MCPGW_ENVOY"); p != "" {
		return p, nil
	}
	v, err := EnvoyVersion(root)
	if err != nil {
		return "", err
	}
	p := filepath.Join(root, "build", "envoy", "envoy-"+v)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("envoy %s not installed at %s: run `make envoy` (or set MCPGW_ENVOY)", v, p)
	}
	return p, nil
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// SplitHostPort splits "host:port" into host and numeric port.
func SplitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	var port int
	if _, err := fmt.Sscanf(p, "%d", &port); err != nil {
		return "", 0, fmt.Errorf("port of %q: %w", addr, err)
	}
	return host, port, nil
}
