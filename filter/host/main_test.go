package host

import (
	"testing"

	"go.uber.org/goleak"
)

// A released Shared leaves nothing running: its watch stops and its
// Router's background work is closed (Release).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
