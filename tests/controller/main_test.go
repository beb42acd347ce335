package controller_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if goroutines outlive the tests: the
// controller, its watches and the health poller must stop with their
// context. klog's flush daemon and client-go's shared transport are
// process-wide by design.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
