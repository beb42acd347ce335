package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const kubeconfig = `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`

func TestParseFlags(t *testing.T) {
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kc, []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := parseFlags([]string{"-kubeconfig", kc, "-namespace", "gw", "-session-key-env", "KEY"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.Namespace != "gw" || o.Gateway.SessionKey.Env != "KEY" || o.Gateway.SessionKey.File != "" ||
		o.ConfigSecret != "mcpgw-config" || o.RestConfig.Host != "https://127.0.0.1:6443" {
		t.Errorf("options = %+v", o)
	}

	o, err = parseFlags([]string{"-kubeconfig", kc, "-config-secret", "", "-output-file", "/tmp/c.yaml",
		"-service-address", "team-a/weather:8080=127.0.0.1:18080", "-service-address", "b/c:1=localhost:2"}, io.Discard)
	if err != nil || len(o.ServiceAddresses) != 2 || o.ServiceAddresses["team-a/weather:8080"] != "127.0.0.1:18080" {
		t.Errorf("service addresses: %v, %v", o.ServiceAddresses, err)
	}
	if _, err = parseFlags([]string{"-kubeconfig", kc, "-service-address", "no-equals"}, io.Discard); err == nil {
		t.Error("a -service-address without = was accepted")
	}

	o, err = parseFlags([]string{"-kubeconfig", kc, "-broker-url", "http://mcpgw-broker.mcpgw-system.svc:8090"}, io.Discard)
	if err != nil || o.Gateway.BrokerURL != "http://mcpgw-broker.mcpgw-system.svc:8090" {
		t.Errorf("-broker-url: %q, %v", o.Gateway.BrokerURL, err)
	}

	// Every problem at once.
	_, err = parseFlags([]string{"-kubeconfig", kc, "-log-format", "xml", "-log-level", "loud"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "-log-format") || !strings.Contains(err.Error(), "-log-level") {
		t.Errorf("err = %v, want both flag errors", err)
	}
	_, err = parseFlags([]string{"-kubeconfig", kc, "-config-secret", "", "-credentials-dir", ""}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "no output") || !strings.Contains(err.Error(), "credentials directory") {
		t.Errorf("err = %v, want the output and credentials-dir errors", err)
	}
}
