// Package docker_test checks the Dockerfiles' inputs without a Docker
// engine: the pinned versions match go.mod and envoy/ENVOY_VERSION, the
// builder's glibc base matches the base of Envoy's own images, every file
// they copy from the build context exists and is not excluded by their
// .dockerignore, the packages they build exist, and the paths they install
// to are the ones the Envoy configs use.
package docker_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const root = "../.." // the build context: the repository root

// dockerfile is the part of a Dockerfile the checks need.
type dockerfile struct {
	args  map[string]string // ARG defaults before the first FROM
	from  []string          // FROM images, ${ARG}s expanded
	copy  [][]string        // COPY operands from the context (not --from)
	built [][]string        // COPY --from=build operands
	run   []string
	env   map[string]string
}

func parse(t *testing.T, name string) dockerfile {
	t.Helper()
	raw, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	text := regexp.MustCompile(`\\\n\s*`).ReplaceAllString(string(raw), " ") // line continuations
	d := dockerfile{args: map[string]string{}, env: map[string]string{}}
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch f[0] {
		case "ARG":
			if k, v, ok := strings.Cut(f[1], "="); ok && len(d.from) == 0 {
				d.args[k] = v
			}
		case "FROM":
			d.from = append(d.from, os.Expand(f[1], func(k string) string { return d.args[k] }))
		case "COPY":
			if strings.HasPrefix(f[1], "--from=build") {
				d.built = append(d.built, f[2:])
			} else if !strings.HasPrefix(f[1], "--from=") {
				d.copy = append(d.copy, f[1:])
			}
		case "RUN":
			d.run = append(d.run, line)
		case "ENV":
			for _, kv := range f[1:] {
				if k, v, ok := strings.Cut(kv, "="); ok {
					d.env[k] = v
				}
			}
		}
	}
	return d
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func pinnedVersions(t *testing.T) (goVersion, envoyVersion string) {
	t.Helper()
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindStringSubmatch(read(t, "go.mod"))
	if m == nil {
		t.Fatal("go.mod: no go line")
	}
	return m[1], strings.TrimSpace(read(t, "envoy/ENVOY_VERSION"))
}

// envoyImageBase returns the base image of Envoy's own images, from the
// pinned Envoy's distribution/docker/Dockerfile-envoy (BUILD_OS:BUILD_TAG).
func envoyImageBase(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/envoyproxy/envoy").Output()
	if err != nil {
		t.Fatalf("go list -m github.com/envoyproxy/envoy: %v", err)
	}
	src, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "distribution/docker/Dockerfile-envoy"))
	if err != nil {
		t.Fatal(err)
	}
	arg := func(k string) string {
		m := regexp.MustCompile(`(?m)^ARG ` + k + `=(\S+)$`).FindStringSubmatch(string(src))
		if m == nil {
			t.Fatalf("Dockerfile-envoy: no ARG %s", k)
		}
		return m[1]
	}
	return arg("BUILD_OS") + ":" + arg("BUILD_TAG")
}

func TestDockerfiles(t *testing.T) {
	goVersion, envoyVersion := pinnedVersions(t)
	base := envoyImageBase(t)
	for _, tc := range []struct {
		file, final, pkg, so string
	}{
		{"Dockerfile.envoy-contrib", "envoyproxy/envoy:contrib-v" + envoyVersion, "./filter/cmd/libmcpgw-golang", "libmcpgw-golang.so"},
		{"Dockerfile.envoy", "envoyproxy/envoy:v" + envoyVersion, "./filter/cmd/libmcpgw-dynmod", "libmcpgw-dynmod.so"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			d := parse(t, tc.file)
			if d.args["GO_VERSION"] != goVersion || d.args["ENVOY_VERSION"] != envoyVersion {
				t.Errorf("ARG GO_VERSION=%s ENVOY_VERSION=%s; go.mod says go %s, envoy/ENVOY_VERSION %s",
					d.args["GO_VERSION"], d.args["ENVOY_VERSION"], goVersion, envoyVersion)
			}
			want := []string{"golang:" + goVersion + "-bookworm", base, tc.final}
			if strings.Join(d.from, " ") != strings.Join(want, " ") {
				t.Errorf("FROM %q, want %q (the builder on Envoy's image base %s, for its glibc)", d.from, want, base)
			}
			checkContext(t, tc.file, d)
			build := strings.Join(d.run, "\n")
			if !strings.Contains(build, "-buildmode=c-shared") || !strings.Contains(build, "-o /out/"+tc.so+" "+tc.pkg) {
				t.Errorf("no c-shared build of %s into /out/%s", tc.pkg, tc.so)
			}
			if _, err := os.Stat(filepath.Join(root, tc.pkg, "main.go")); err != nil {
				t.Errorf("the built package %s: %v", tc.pkg, err)
			}
			if len(d.built) != 1 || d.built[0][0] != "/out/"+tc.so {
				t.Fatalf("want one COPY --from=build of /out/%s, have %q", tc.so, d.built)
			}
			checkInstall(t, tc.file, d, d.built[0][1])
		})
	}
}

// checkContext: every COPY source exists in the context and survives the
// Dockerfile's .dockerignore (whose "!name" lines re-include top-level
// entries after a leading "*").
func checkContext(t *testing.T, file string, d dockerfile) {
	t.Helper()
	ignore := read(t, filepath.Join("build/docker", file+".dockerignore"))
	included := map[string]bool{}
	for _, line := range strings.Split(ignore, "\n") {
		if strings.HasPrefix(line, "!") {
			included[strings.TrimPrefix(line, "!")] = true
		}
	}
	if !strings.Contains(ignore, "\n*\n") {
		t.Errorf("%s.dockerignore: want a leading * (send only what is copied)", file)
	}
	for _, c := range d.copy {
		for _, src := range c[:len(c)-1] {
			if _, err := os.Stat(filepath.Join(root, src)); err != nil {
				t.Errorf("COPY %s: %v", src, err)
			}
			top, _, _ := strings.Cut(strings.TrimSuffix(src, "/"), "/")
			if !included[top] {
				t.Errorf("COPY %s: excluded by %s.dockerignore", src, file)
			}
		}
	}
}

// checkInstall: the .so lands where the Envoy configs look for it.
func checkInstall(t *testing.T, file string, d dockerfile, dest string) {
	t.Helper()
	if file == "Dockerfile.envoy-contrib" {
		for _, cfg := range []string{"envoy/golang.yaml", "envoy/istio-envoyfilter.yaml", "envoy/envoy-gateway.yaml"} {
			if !strings.Contains(read(t, cfg), "library_path: "+dest+"\n") {
				t.Errorf("%s: library_path is not %s", cfg, dest)
			}
		}
		copiedConfig := false
		for _, c := range d.copy {
			copiedConfig = copiedConfig || c[0] == "envoy/golang.yaml" && c[1] == "/etc/envoy/envoy.yaml"
		}
		if !copiedConfig {
			t.Error("envoy/golang.yaml is not the image's /etc/envoy/envoy.yaml")
		}
		return
	}
	// Envoy loads lib<dynamic_module_config.name>.so from the search path.
	if filepath.Dir(dest) != d.env["ENVOY_DYNAMIC_MODULES_SEARCH_PATH"] {
		t.Errorf("ENVOY_DYNAMIC_MODULES_SEARCH_PATH=%s, but the module is at %s",
			d.env["ENVOY_DYNAMIC_MODULES_SEARCH_PATH"], dest)
	}
	if !strings.Contains(read(t, "envoy/local.yaml.tmpl"), "name: mcpgw-dynmod") ||
		filepath.Base(dest) != "libmcpgw-dynmod.so" {
		t.Errorf("%s is not the module the Envoy config names (mcpgw-dynmod)", dest)
	}
}
