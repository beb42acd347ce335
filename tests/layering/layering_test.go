// Package layering enforces the import rules that keep the architecture
// visible: the router core and the config contract are plain Go (no cgo, no
// Envoy), the broker and the router never import each other, the
// controller shares only the config contract with the data plane, and
// product code never imports tests/.
package layering

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/mcpgw/mcpgw"

// shim is the golang filter's cgo shim. Its package init calls into Envoy,
// so any binary importing it crashes outside Envoy: only the plugin's main
// package may import it.
const (
	shim         = "github.com/envoyproxy/envoy/contrib/golang/filters/http/source/go/pkg/http"
	shimImporter = module + "/filter/cmd/libmcpgw-golang"
)

// deps lists the transitive imports of pkg, as `go list -deps` sees them
// with the given cgo setting.
func deps(t *testing.T, pkg string, cgo bool) []string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", module+"/"+pkg)
	cmd.Dir = "../.."
	if cgo {
		cmd.Env = append(cmd.Environ(), "CGO_ENABLED=1")
	} else {
		cmd.Env = append(cmd.Environ(), "CGO_ENABLED=0")
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", pkg, err, out)
	}
	return strings.Fields(string(out))
}

func TestImportRules(t *testing.T) {
	for _, tc := range []struct {
		pkg       string
		forbidden []string
	}{
		{"filter/config", []string{"github.com/envoyproxy/", module + "/filter/router", module + "/broker", module + "/controller"}},
		{"filter/router", []string{"github.com/envoyproxy/", module + "/broker", module + "/controller", module + "/filter/dynmod",
			module + "/filter/golang", module + "/filter/host"}},
		{"filter/host", []string{"github.com/envoyproxy/", module + "/broker", module + "/controller", module + "/filter/dynmod",
			module + "/filter/golang"}},
		{"filter/golang/...", []string{shim, module + "/filter/dynmod", module + "/broker", module + "/tests"}},
		{"filter/sessionid", []string{"github.com/envoyproxy/", module + "/broker"}},
		{"broker/...", []string{module + "/filter/router", module + "/filter/dynmod", module + "/filter/golang", module + "/filter/host", module + "/controller", module + "/tests"}},
		{"filter/dynmod", []string{module + "/broker", module + "/tests", module + "/filter/golang", "github.com/envoyproxy/"}},
		// The controller reads the broker's status over HTTP (the JSON is the
		// contract) and never links the data plane or test code.
		{"controller/...", []string{module + "/broker", module + "/filter/router", module + "/filter/dynmod", module + "/filter/golang",
			module + "/filter/host", module + "/filter/sessionid", module + "/tests", "github.com/envoyproxy/"}},
	} {
		for _, dep := range deps(t, tc.pkg, true) {
			for _, f := range tc.forbidden {
				if strings.HasPrefix(dep, f) {
					t.Errorf("%s imports %s (forbidden: %s)", tc.pkg, dep, f)
				}
			}
		}
	}
}

// TestCoreBuildsWithoutCgo proves the core has no cgo: it must build with
// CGO_ENABLED=0 and must not depend on package "C" or runtime/cgo.
func TestCoreBuildsWithoutCgo(t *testing.T) {
	for _, pkg := range []string{"filter/config", "filter/router", "filter/sessionid", "filter/host"} {
		for _, dep := range deps(t, pkg, false) {
			if dep == "C" || dep == "runtime/cgo" {
				t.Errorf("%s depends on %s", pkg, dep)
			}
		}
		cmd := exec.Command("go", "build", "./"+pkg)
		cmd.Dir = "../.."
		cmd.Env = append(cmd.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s does not build without cgo: %v\n%s", pkg, err, out)
		}
	}
}

// TestShimImporters: no package, and no test, imports the golang filter's
// shim but the plugin's main package.
func TestShimImporters(t *testing.T) {
	cmd := exec.Command("go", "list", "-f",
		`{{.ImportPath}} {{join .Imports " "}} {{join .TestImports " "}} {{join .XTestImports " "}}`, "./...")
	cmd.Dir = "../.."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	found := false
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		for _, imp := range f[min(1, len(f)):] {
			if imp != shim {
				continue
			}
			if f[0] != shimImporter {
				t.Errorf("%s imports the golang filter shim", f[0])
			}
			found = true
		}
	}
	if !found {
		t.Errorf("%s does not import the shim: go list output not understood", shimImporter)
	}
}
