package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSessionSettingsValidation(t *testing.T) {
	for _, tt := range []struct {
		name, gateway, wantErr string
	}{
		{"all set", "previousSessionKeys: [{env: OLD}, {file: /k/old}]\n  sessionKeyGracePeriod: 0s\n" +
			"  sessionMaxLifetime: 2h\n  brokerURL: http://broker.mcpgw-system.svc:8090", ""},
		{"previous key shape", "previousSessionKeys: [{env: A}, {}]",
			"gateway.previousSessionKeys[1]: set exactly one of env and file"},
		{"lifetime not a duration", "sessionMaxLifetime: 1 day",
			`gateway.sessionMaxLifetime: "1 day" is not a duration (want e.g. "30m" or "24h")`},
		{"lifetime below a second", "sessionMaxLifetime: 500ms", "gateway.sessionMaxLifetime: 500ms is shorter than 1s"},
		{"negative grace", "sessionKeyGracePeriod: -1m", "gateway.sessionKeyGracePeriod: must not be negative"},
		{"broker URL scheme", "brokerURL: ftp://broker", `gateway.brokerURL: "ftp://broker": scheme must be http or https`},
		{"broker URL query", "brokerURL: http://broker/?x=1", `gateway.brokerURL: "http://broker/?x=1": want a base URL without query or fragment`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(minimal + "  " + tt.gateway + "\n"))
			if tt.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr) {
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestSessionSettingsDefaults(t *testing.T) {
	var g Gateway
	if g.MaxLifetime() != DefaultSessionMaxLifetime || g.KeyGracePeriod() != DefaultSessionKeyGracePeriod {
		t.Fatalf("defaults %v %v", g.MaxLifetime(), g.KeyGracePeriod())
	}
	g = Gateway{SessionMaxLifetime: "90m", SessionKeyGracePeriod: "0s"}
	if g.MaxLifetime() != 90*time.Minute || g.KeyGracePeriod() != 0 {
		t.Fatalf("set values %v %v", g.MaxLifetime(), g.KeyGracePeriod())
	}
}

func TestSessionKeys(t *testing.T) {
	dir := t.TempDir()
	long := strings.Repeat("k", 32)
	os.WriteFile(filepath.Join(dir, "old"), []byte(strings.Repeat("o", 40)+"\n"), 0o600)
	t.Setenv("MCPGW_T_KEY", long)
	t.Setenv("MCPGW_T_SHORT", "short")
	g := Gateway{SessionKey: SecretRef{Env: "MCPGW_T_KEY"}, PreviousSessionKeys: []SecretRef{{File: filepath.Join(dir, "old")}}}
	cur, prev, err := g.SessionKeys()
	if err != nil || string(cur) != long || len(prev) != 1 || string(prev[0]) != strings.Repeat("o", 40) {
		t.Fatalf("SessionKeys = %q, %q, %v", cur, prev, err)
	}
	for _, tt := range []struct {
		g    Gateway
		want string
	}{
		{Gateway{SessionKey: SecretRef{Env: "MCPGW_T_SHORT"}}, "gateway.sessionKey: must be at least 32 bytes"},
		{Gateway{SessionKey: SecretRef{Env: "MCPGW_T_KEY"}, PreviousSessionKeys: []SecretRef{{Env: "MCPGW_T_KEY"}, {Env: "MCPGW_T_SHORT"}}},
			"gateway.previousSessionKeys[1]: must be at least 32 bytes"},
		{Gateway{SessionKey: SecretRef{Env: "MCPGW_T_KEY"}, PreviousSessionKeys: []SecretRef{{File: filepath.Join(dir, "nope")}}},
			"gateway.previousSessionKeys[0]: read secret file: open " + filepath.Join(dir, "nope") + ": no such file or directory"},
	} {
		if _, _, err := tt.g.SessionKeys(); err == nil || err.Error() != tt.want {
			t.Errorf("error %v, want %q", err, tt.want)
		}
	}
}

// Previous keys given as relative files are relative to the config file.
func TestRelativePreviousKeys(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	os.WriteFile(path, []byte(minimal+"  previousSessionKeys: [{file: old.key}]\n"), 0o644)
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Gateway.PreviousSessionKeys[0].File; got != filepath.Join(dir, "old.key") {
		t.Fatalf("previous key file %q", got)
	}
}

func TestIsInternalPath(t *testing.T) {
	for path, want := range map[string]bool{
		"/mcp":                                  false,
		"/mcp/team-a/dev?x=1":                   false,
		"/mcp?next=/.mcpgw/v1/revocations":      false, // the query is not the path
		"/.mcpgw/v1/revocations":                true,
		"/.mcpgw/v1/revocations?after=1":        true,
		"/mcp/../.mcpgw/v1/revocations":         true,
		"//.mcpgw/v1/revocations":               true,
		"/%2Emcpgw/v1/revocations":              true,
		"/%2emcpgw/v1/revocations":              true,
		"/.%6Dcpgw/v1/revocations":              true,
		"/mcp%2F..%2F.mcpgw%2Fv1%2Frevocations": true,
		"/mcp/%zz":                              false,
	} {
		if got := IsInternalPath(path); got != want {
			t.Errorf("IsInternalPath(%q) = %v, want %v", path, got, want)
		}
	}
}
