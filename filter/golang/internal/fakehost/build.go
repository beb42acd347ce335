// Package fakehost runs mcpgw's golang-filter shared object
// (filter/cmd/libmcpgw-golang) inside a fake Envoy, for tests only.
//
// The fake Envoy is a small C program (csrc/): it defines the C callbacks
// the golang filter shim imports, compiled against Envoy 1.39.1's api.h from
// the Go module cache, dlopens the real .so and drives its exported entry
// points the way golang_filter.cc does. It must be a separate process: a
// test binary cannot host the .so (two Go runtimes in one process do not
// work) nor import the shim (its init calls into Envoy). Tests talk to it
// over stdin/stdout, one command per line (csrc/main.c).
//
// Only _test.go files may import this package.
package fakehost

import (
	"bytes"
	"embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

//go:embed csrc/*.c csrc/*.h
var csrc embed.FS

// PluginPackage is the main package of the shared object.
const PluginPackage = "github.com/mcpgw/mcpgw/filter/cmd/libmcpgw-golang"

// EnvoyModule is the Go module whose contrib/golang/common/go/api/api.h the
// fake is compiled against: the version go.mod pins.
const EnvoyModule = "github.com/envoyproxy/envoy"

var built struct {
	once          sync.Once
	dir, so, host string
	err           error
}

// Build builds the shared object and the fake Envoy once per process and
// returns their paths. MCPGW_GOLANG_SO names a prebuilt .so to use instead.
// Call Cleanup when done (TestMain).
func Build() (so, host string, err error) {
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "mcpgw-fakehost-")
		if built.err != nil {
			return
		}
		built.so = os.Getenv("MCPGW_GOLANG_SO")
		if built.so == "" {
			built.so = filepath.Join(built.dir, "libmcpgw-golang.so")
			if built.err = buildPlugin(built.so); built.err != nil {
				return
			}
		}
		built.host = filepath.Join(built.dir, "fakeenvoy")
		built.err = compileHost(built.dir, built.host)
	})
	return built.so, built.host, built.err
}

// Cleanup removes what Build made.
func Cleanup() {
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
}

func buildPlugin(out string) error {
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, PluginPackage)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", PluginPackage, err, b)
	}
	return nil
}

// APIDir returns the directory of the pinned Envoy's golang filter api.h.
func APIDir() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", EnvoyModule).Output()
	if err != nil {
		return "", fmt.Errorf("go list -m %s: %v", EnvoyModule, err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "contrib/golang/common/go/api"), nil
}

func compileHost(dir, out string) error {
	api, err := APIDir()
	if err != nil {
		return err
	}
	src := filepath.Join(dir, "csrc")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return err
	}
	entries, err := csrc.ReadDir("csrc")
	if err != nil {
		return err
	}
	args := []string{"-std=gnu11", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-I", api, "-pthread",
		// -rdynamic exports the callbacks to the .so that dlopen loads.
		"-rdynamic", "-o", out}
	for _, e := range entries {
		b, err := csrc.ReadFile("csrc/" + e.Name())
		if err != nil {
			return err
		}
		p := filepath.Join(src, e.Name())
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return err
		}
		if strings.HasSuffix(p, ".c") {
			args = append(args, p)
		}
	}
	args = append(args, "-ldl")
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	var stderr bytes.Buffer
	cmd := exec.Command(cc, args...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %v\n%s", cc, err, stderr.String())
	}
	return nil
}
