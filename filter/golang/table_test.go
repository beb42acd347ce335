package golang_test

import (
	"testing"

	"github.com/mcpgw/mcpgw/filter/internal/adaptertest"
)

// TestTable plays the behavioural table shared with the dynamic module.
func TestTable(t *testing.T) {
	env := adaptertest.NewEnv(t)
	adaptertest.Run(t, env, newFilterConfig(t, env.Path))
}
