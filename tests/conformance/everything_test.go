package conformance

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/tests/harness"
)

// everything-server is built from the go-sdk version in go.mod.
const everythingServerPkg = "github.com/modelcontextprotocol/go-sdk/conformance/everything-server"

// strippedPrefix is the prefix every fixed tool and prompt name of the
// stable suite shares (test_simple_text, test_simple_prompt, ...).
const strippedPrefix = "test_"

// registeredNameRE matches the registration of a tool or prompt named
// "test_..." in the everything-server's source (`Name: "test_simple_text",`).
var registeredNameRE = regexp.MustCompile(`(\bName:\s+)"` + strippedPrefix + `([A-Za-z0-9_]+)"`)

// buildEverythingServer builds the go-sdk conformance server at the go-sdk
// version this module requires. stripped builds it with its tools and
// prompts registered without their "test_" prefix (test_simple_text as
// simple_text), the only change to its source: the same handlers, SDK and
// transport, behind a gateway prefix "test_" that the router must strip
// from every name the suite calls. The binary goes into dir.
func buildEverythingServer(t *testing.T, root, dir string, stripped bool) string {
	t.Helper()
	bin := filepath.Join(dir, fmt.Sprintf("everything-server-stripped-%v", stripped))
	cmd := exec.Command("go", "build", "-o", bin, everythingServerPkg)
	cmd.Dir = root
	if stripped {
		cmd = exec.Command("go", "build", "-o", bin, ".")
		cmd.Dir = stripNames(t, root, filepath.Join(dir, "stripped-src"))
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s (stripped %v): %v\n%s", everythingServerPkg, stripped, err, out)
	}
	return bin
}

// stripNames writes, into dir, a module holding the everything-server's
// main.go with its "test_" tools and prompts registered without the prefix
// and this module's requirements (the same go-sdk), and returns dir. It
// checks that every name the stable suite calls is among those renamed.
// (Go's -overlay cannot replace files of the module cache.)
func stripNames(t *testing.T, root, dir string) string {
	t.Helper()
	cmd := exec.Command("go", "list", "-f", "{{.Dir}}", everythingServerPkg)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s: %v", everythingServerPkg, err)
	}
	src := filepath.Join(strings.TrimSpace(string(out)), "main.go")
	code, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	renamed := map[string]bool{}
	for _, m := range registeredNameRE.FindAllStringSubmatch(string(code), -1) {
		renamed[strippedPrefix+m[2]] = true
	}
	for _, name := range stableSuiteNames {
		if !renamed[name] {
			t.Fatalf("%s registers no %q to rename: the stripped run cannot test it", src, name)
		}
	}
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	gosum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	gomod = regexp.MustCompile(`(?m)^module .*$`).ReplaceAll(gomod, []byte("module mcpgw.test/stripped-everything-server"))
	files := map[string][]byte{
		"main.go": registeredNameRE.ReplaceAll(code, []byte(`$1"$2"`)),
		"go.mod":  gomod,
		"go.sum":  gosum,
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("everything-server: %d tools and prompts registered without %q", len(renamed), strippedPrefix)
	return dir
}

// startEverythingServer runs the server on a fresh loopback port until the
// test ends and returns its MCP URL once it accepts connections.
func startEverythingServer(t *testing.T, bin string, stateful bool) string {
	t.Helper()
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(bin, "-http", addr, fmt.Sprintf("-stateless=%t", !stateful))
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-done:
			t.Fatalf("everything-server exited:\n%s", logs.String())
		case <-time.After(50 * time.Millisecond): // retry the dial
		}
		if time.Now().After(deadline) {
			t.Fatalf("everything-server not listening on %s: %v", addr, err)
		}
	}
	// The suite's DNS-rebinding scenario needs a localhost URL; the
	// server accepts Host 127.0.0.1 and localhost alike.
	return fmt.Sprintf("http://localhost:%d/mcp", port)
}
