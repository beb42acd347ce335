package golang_test

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/filter/golang/internal/fakehost"
	"github.com/mcpgw/mcpgw/filter/internal/sotest"
	"github.com/mcpgw/mcpgw/internal/testenv"
)

// targetGlibc is the glibc of the image the .so is deployed into:
// envoyproxy/envoy:contrib-v1.39.1 is built FROM ubuntu:22.04 (Envoy's
// distribution/docker/Dockerfile-envoy, BUILD_TAG), glibc 2.35.
const targetGlibc = "2.35"

// TestSharedObjectSymbols checks the .so's dynamic symbol table against the
// pinned Envoy sources: it exports every entry point Envoy's loader requires
// (dso.cc), every callback it imports is defined by Envoy 1.39.1 (a missing
// one would kill Envoy on first call) and by the fake host, and it needs no
// glibc newer than the target image's. Set MCPGW_ENVOY_CONTRIB to a contrib
// envoy binary to check the imports against it too.
func TestSharedObjectSymbols(t *testing.T) {
	testenv.SkipIfShort(t, "builds the shared object")
	so, _, err := fakehost.Build()
	if err != nil {
		t.Fatal(err)
	}
	syms, err := sotest.Read(so)
	if err != nil {
		t.Fatal(err)
	}
	defined, undefined := syms.Defined, syms.Undefined
	envoy := envoySources(t)
	// The symbols HttpFilterDsoImpl's constructor looks up, every one
	// required (loaded_ &= dlsymInternal(...)).
	dso := readSource(t, envoy, "contrib/golang/common/dso/dso.cc")
	ctor := section(t, dso, "HttpFilterDsoImpl::HttpFilterDsoImpl(", "\n}\n")
	required := matches(ctor, `"(envoyGo\w+)"`)
	if len(required) < 10 {
		t.Fatalf("dso.cc: found %d required entry points, want at least 10: %q", len(required), required)
	}
	for _, sym := range required {
		if !defined[sym] {
			t.Errorf("entry point %s is not exported (Envoy's HttpFilterDsoImpl requires it)", sym)
		}
	}
	imported := checkImports(t, envoy, defined, undefined)
	if sotest.VersionLess(targetGlibc, syms.NewestGlibc) {
		t.Errorf("the .so needs glibc %s; the target image has %s: build it on an older glibc", syms.NewestGlibc, targetGlibc)
	}
	t.Logf("the .so needs glibc >= %s (target image: %s)", syms.NewestGlibc, targetGlibc)
	t.Logf("%d entry points exported; %d callbacks imported, all in Envoy 1.39.1 and the fake host",
		len(required), len(imported))
}

// checkImports checks the Envoy callbacks the .so imports (undefined) and
// returns them.
func checkImports(t *testing.T, envoy string, defined, undefined map[string]bool) []string {
	t.Helper()
	provided := map[string]bool{}
	for _, f := range []string{"contrib/golang/filters/http/source/cgo.cc", "contrib/golang/common/log/cgo.cc"} {
		for _, sym := range matches(readSource(t, envoy, f), definitionRE) {
			provided[sym] = true
		}
	}
	fake := fakeDefinitions(t)
	var imported []string
	for sym := range undefined {
		if strings.HasPrefix(sym, "envoyGo") {
			imported = append(imported, sym)
		}
	}
	sort.Strings(imported)
	if len(imported) == 0 {
		t.Fatal("the .so imports no Envoy callback: symbol table not understood")
	}
	for _, sym := range imported {
		if !provided[sym] {
			t.Errorf("the .so imports %s, which Envoy 1.39.1 does not define", sym)
		}
		if !fake[sym] {
			t.Errorf("the .so imports %s, which the fake host does not define", sym)
		}
	}
	for sym := range defined {
		if provided[sym] {
			t.Errorf("the .so defines Envoy's callback %s: a host was linked in", sym)
		}
	}
	if bin := os.Getenv("MCPGW_ENVOY_CONTRIB"); bin != "" {
		envoySyms, err := sotest.Read(bin)
		if err != nil {
			t.Fatal(err)
		}
		envoyDefined := envoySyms.Defined
		for _, sym := range imported {
			if !envoyDefined[sym] {
				t.Errorf("%s does not export %s", bin, sym)
			}
		}
	}
	return imported
}

// envoySources returns the root of the pinned Envoy module's sources.
func envoySources(t *testing.T) string {
	t.Helper()
	api, err := fakehost.APIDir()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(api, "../../../../..")
}

// definitionRE matches a C definition of an Envoy golang callback.
const definitionRE = `(?m)^(?:CAPIStatus|void|uint32_t) (envoyGo\w+)\(`

func readSource(t *testing.T, root, file string) []byte {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(root, file))
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// section returns src from start up to the first end after it.
func section(t *testing.T, src []byte, start, end string) []byte {
	t.Helper()
	i := bytes.Index(src, []byte(start))
	if i < 0 {
		t.Fatalf("%q not found", start)
	}
	j := bytes.Index(src[i:], []byte(end))
	if j < 0 {
		t.Fatalf("no %q after %q", end, start)
	}
	return src[i : i+j]
}

func matches(src []byte, re string) []string {
	var out []string
	for _, m := range regexp.MustCompile(re).FindAllSubmatch(src, -1) {
		out = append(out, string(m[1]))
	}
	return out
}

// fakeDefinitions returns the callbacks the fake host's C sources define.
func fakeDefinitions(t *testing.T) map[string]bool {
	t.Helper()
	defs := map[string]bool{}
	files, _ := filepath.Glob("internal/fakehost/csrc/*.c")
	for _, f := range files {
		for _, sym := range matches(readSource(t, ".", f), definitionRE) {
			defs[sym] = true
		}
	}
	return defs
}
