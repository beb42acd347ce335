package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ModuleFile is the file name Envoy looks up for dynamic module
// "mcpgw-dynmod" (lib<name>.so).
const ModuleFile = "libmcpgw-dynmod.so"

// BuildModule builds the router's dynamic module into outDir and returns
// the directory (for ENVOY_DYNAMIC_MODULES_SEARCH_PATH). $MCPGW_DYNMOD_DIR,
// if set, names a directory with a prebuilt module instead.
func BuildModule(ctx context.Context, root, outDir string) (string, error) {
	if dir := os.Getenv("MCPGW_DYNMOD_DIR"); dir != "" {
		if _, err := os.Stat(filepath.Join(dir, ModuleFile)); err != nil {
			return "", fmt.Errorf("MCPGW_DYNMOD_DIR: %w", err)
		}
		return dir, nil
	}
	// Build next to the final name and rename: test binaries running in
	// parallel may build into the same directory, and an Envoy of one of
	// them may be loading the file at that moment.
	tmp := filepath.Join(outDir, fmt.Sprintf(".%d.%s", os.Getpid(), ModuleFile))
	cmd := exec.CommandContext(ctx, "go", "build", "-buildmode=c-shared",
		"-o", tmp, "./filter/cmd/libmcpgw-dynmod")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build dynamic module: %w\n%s", err, out)
	}
	os.Remove(strings.TrimSuffix(tmp, ".so") + ".h") // cgo's generated header
	if err := os.Rename(tmp, filepath.Join(outDir, ModuleFile)); err != nil {
		return "", err
	}
	return outDir, nil
}
