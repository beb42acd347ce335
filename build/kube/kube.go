// Package kube finds, and builds on request, the kube-apiserver and etcd
// binaries that tests/controller runs (through controller-runtime's
// envtest). Both are built from the Go module proxy by the wrapper modules
// in build/kube/apiserver and build/kube/etcd, whose go.mod files pin the
// versions, and cached per version outside the work tree, so a cold build
// (about 6 minutes and 2.4 GB of RAM for kube-apiserver on 2 cores) happens
// once per machine and version.
package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// Binary names envtest expects in its assets directory.
const (
	APIServer = "kube-apiserver"
	Etcd      = "etcd"
)

// Versions are the pinned versions, read from the wrapper modules.
type Versions struct {
	Kubernetes string // e.g. v1.37.2
	Etcd       string // e.g. v3.7.3
}

var (
	kubeReq = regexp.MustCompile(`(?m)^require k8s\.io/kubernetes (v\S+)$`)
	etcdReq = regexp.MustCompile(`(?m)^require go\.etcd\.io/etcd/server/v3 (v\S+)$`)
)

// ReadVersions reads the pinned versions from <root>/build/kube.
func ReadVersions(root string) (Versions, error) {
	find := func(dir string, re *regexp.Regexp) (string, error) {
		b, err := os.ReadFile(filepath.Join(root, "build", "kube", dir, "go.mod"))
		if err != nil {
			return "", err
		}
		m := re.FindSubmatch(b)
		if m == nil {
			return "", fmt.Errorf("build/kube/%s/go.mod: no single-line require matching %s", dir, re)
		}
		return string(m[1]), nil
	}
	k, err1 := find("apiserver", kubeReq)
	e, err2 := find("etcd", etcdReq)
	return Versions{Kubernetes: k, Etcd: e}, errors.Join(err1, err2)
}

// Dir is the cache directory of these versions: $MCPGW_KUBE_CACHE, else
// the user cache directory ($XDG_CACHE_HOME or ~/.cache), under mcpgw/kube.
func (v Versions) Dir() (string, error) {
	base := os.Getenv("MCPGW_KUBE_CACHE")
	if base == "" {
		c, err := os.UserCacheDir()
		if err != nil {
			return "", err
		}
		base = filepath.Join(c, "mcpgw", "kube")
	}
	return filepath.Join(base, fmt.Sprintf("kubernetes-%s_etcd-%s", v.Kubernetes, v.Etcd)), nil
}

// Find returns the directory holding both binaries: $KUBEBUILDER_ASSETS if
// set (envtest's own variable), else the cache directory. The error says
// how to build them.
func Find(root string) (string, error) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		v, err := ReadVersions(root)
		if err != nil {
			return "", err
		}
		if dir, err = v.Dir(); err != nil {
			return "", err
		}
	}
	for _, b := range []string{APIServer, Etcd} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return "", fmt.Errorf("%s not found in %s: run `go run ./build/kube/cmd/fetch-kube` (about 6 minutes once) or set KUBEBUILDER_ASSETS", b, dir)
		}
	}
	return dir, nil
}

// Build builds whichever binary is missing from the cache directory and
// returns the directory. Progress and compiler output go to log.
func Build(ctx context.Context, root string, log io.Writer) (string, error) {
	v, err := ReadVersions(root)
	if err != nil {
		return "", err
	}
	dir, err := v.Dir()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	targets := []struct{ name, module, pkg, ldflags string }{
		{Etcd, "etcd", "go.etcd.io/etcd/server/v3", "-s -w"},
		{APIServer, "apiserver", "k8s.io/kubernetes/cmd/kube-apiserver", "-s -w " + versionFlags(v.Kubernetes)},
	}
	for _, t := range targets {
		out := filepath.Join(dir, t.name)
		if _, err := os.Stat(out); err == nil {
			fmt.Fprintf(log, "%s: cached\n", out)
			continue
		}
		fmt.Fprintf(log, "building %s from the module proxy (build/kube/%s)...\n", t.name, t.module)
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", t.ldflags, "-o", out+".tmp", t.pkg)
		cmd.Dir = filepath.Join(root, "build", "kube", t.module)
		// The wrapper modules are not in a go.work; GOFLAGS from the caller
		// (e.g. -mod=vendor) would not apply to them.
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-buildvcs=false")
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("build %s: %w", t.name, err)
		}
		if err := os.Rename(out+".tmp", out); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// versionFlags stamps the version a source build otherwise lacks ("v0.0.0"),
// without which clients such as kubectl cannot parse the server version.
func versionFlags(version string) string {
	parts := strings.SplitN(strings.TrimPrefix(version, "v"), ".", 3)
	major, minor := parts[0], ""
	if len(parts) > 1 {
		minor = parts[1]
	}
	var b strings.Builder
	for _, pkg := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		fmt.Fprintf(&b, " -X %s.gitVersion=%s -X %s.gitMajor=%s -X %s.gitMinor=%s -X %s.gitTreeState=clean",
			pkg, version, pkg, major, pkg, minor, pkg)
	}
	return strings.TrimSpace(b.String())
}
