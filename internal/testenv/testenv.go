// Package testenv holds the one rule for tests that need a part a machine
// may lack (an Envoy binary, a kube-apiserver, nm, sources in the module
// cache) or that are slow: a developer's run may skip them, CI (CI=true)
// may not. A skipped test passes silently; in CI a missing part is a broken
// machine or a broken install step, and must fail the run.
package testenv

import (
	"os"
	"testing"
)

// InCI reports whether tests run in CI (CI=true).
func InCI() bool { return os.Getenv("CI") == "true" }

// Require fails the test in CI and skips it elsewhere when err (a missing
// part) is not nil.
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

// SkipIfShort skips a slow test under -short, except in CI, where every test
// runs.
func SkipIfShort(t testing.TB, why string) {
	t.Helper()
	if testing.Short() && !InCI() {
		t.Skipf("-short: %s", why)
	}
}

// SkipUnderRace skips an allocation-counting test under the race detector.
// Such a test's name must contain "Allocat": make test-unit runs the tests
// with -race, then those again without it (-run Allocat), so CI runs them.
func SkipUnderRace(t testing.TB) {
	t.Helper()
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector (make test-unit reruns this without it)")
	}
}
