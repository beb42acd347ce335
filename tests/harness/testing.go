package harness

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

var (
	moduleOnce sync.Once
	moduleDir  string
	moduleErr  error
)

// Module builds the dynamic module once per test binary and returns its
// directory.
func Module(t testing.TB) string {
	t.Helper()
	moduleOnce.Do(func() {
		root, err := RepoRoot()
		if err != nil {
			moduleErr = err
			return
		}
		// One directory per checkout, reused by every test binary (BuildModule
		// replaces the file atomically, and Go's build cache makes rebuilding
		// an unchanged module cheap), so test runs leave nothing behind.
		dir := filepath.Join(root, "build", "test-bin")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			moduleErr = err
			return
		}
		moduleDir, moduleErr = BuildModule(context.Background(), root, dir)
	})
	if moduleErr != nil {
		t.Fatal(moduleErr)
	}
	return moduleDir
}
