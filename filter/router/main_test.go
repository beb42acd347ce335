package router

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine a test's Routers start is owned (background.go) and gone
// by the end: the tests Close their Routers (newTestRouter, routerFor).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
