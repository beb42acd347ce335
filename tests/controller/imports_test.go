package controller_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestControllerImports: the controller shares only the config contract
// with the data plane; it reads the broker's status over HTTP and never
// links the broker, the router or test code. (Kept here until the rule
// joins tests/layering.)
func TestControllerImports(t *testing.T) {
	const module = "github.com/mcpgw/mcpgw/"
	out, err := exec.Command("go", "list", "-deps", module+"controller/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range []string{"broker", "filter/router", "filter/dynmod", "filter/sessionid", "tests"} {
			if strings.HasPrefix(dep, module+f) {
				t.Errorf("controller depends on %s", dep)
			}
		}
	}
}
