package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/filter/config"
	"github.com/mcpgw/mcpgw/tests/mcptest"
)

// TestCredentialRotation: a backend credential file rewritten in place
// (the config file untouched, as the controller leaves it when only a
// credential Secret changes) is picked up: the next new backend session
// the router opens sends the new token.
func TestCredentialRotation(t *testing.T) {
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	writeAtomically(t, token, "Bearer one\n")
	seen := &mcptest.Initializes{}
	echo := &backend{name: "echo", prefix: "echo_", srv: mcptest.NewEchoServer("echo"), wrap: seen.Wrap,
		credential: &config.Credential{SecretRef: config.SecretRef{File: token}}}
	e := startEnv(t, echo)
	ctx := t.Context()

	first := e.connect(t, nil, nil)
	if got := callText(ctx, t, first, "echo_whoami", nil); got != "echo" {
		t.Fatalf("echo_whoami = %q", got)
	}
	if got := seen.Of(mcptest.RouterClient); len(got) != 1 || got[0] != "Bearer one" {
		t.Fatalf("the router's backend session initialized with %q, want [Bearer one]", got)
	}
	config0, err := os.ReadFile(e.configPath)
	if err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	writeAtomically(t, token, "Bearer two\n")
	e.waitRouterCounter(t, "mcpgw.secret_reloads", 1)
	t.Logf("the router re-read the credential %v after it changed", time.Since(start).Round(time.Millisecond))
	second := e.connect(t, nil, nil)
	if got := callText(ctx, t, second, "echo_whoami", nil); got != "echo" {
		t.Fatalf("echo_whoami = %q", got)
	}
	if got := seen.Of(mcptest.RouterClient); len(got) != 2 || got[1] != "Bearer two" {
		t.Errorf("the router's backend sessions initialized with %q, want [Bearer one, Bearer two]", got)
	}
	if config1, _ := os.ReadFile(e.configPath); !bytes.Equal(config0, config1) {
		t.Error("the config file changed")
	}
}

// writeAtomically replaces a file by a rename, as the kubelet and the
// controller's file output do.
func writeAtomically(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
