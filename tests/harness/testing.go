package harness

import (
	"context"
	"os"
	"sync"
	"testing"
)

// InCI reports whether tests run in CI, where a missing part fails the run
// instead of skipping.
func InCI() bool { return os.Getenv("CI") == "true" }

// Require fails the test in CI and skips it elsewhere: the rule for parts
// (Envoy, a kube-apiserver) a developer may not have installed yet.
func Require(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if InCI() {
		t.Fatalf("required part missing (CI=true): %v", err)
	}
	t.Skipf("skipping: %v", err)
}

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
		dir, err := os.MkdirTemp("", "mcpgw-dynmod-")
		if err != nil {
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
