// Package interop drives the gateway with clients other than the go-sdk the
// rest of the tests use: today the official TypeScript SDK (client.mjs),
// through a real Envoy with the router module and the broker, against the
// example servers of tests/mcptest. Each run also checks, by Envoy's and the
// broker's counters, that the client's tools/call and prompts/get were
// routed by the router, not served by the broker's fallback.
//
// The SDK packages and a Node 22 runtime are pinned in build/npm/interop
// (package.json + package-lock.json) and installed there with `npm ci` when
// missing or out of date.
package interop

import (
	"path/filepath"

	"github.com/mcpgw/mcpgw/tests/harness"
)

// npmDir is where the pinned npm packages live, relative to the repo root.
const npmDir = "build/npm/interop"

// install installs the pinned npm folder (see harness.NpmCI) and returns it.
func install(root string) (string, error) {
	dir := filepath.Join(root, npmDir)
	return dir, harness.NpmCI(dir)
}
