package dynmod_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Destroyed filter configs leave nothing running: their streams' session
// goroutines and their routers' background work are waited for.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
