package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// minimal is the smallest valid config; tests append servers to it.
const minimal = "version: mcpgw/v1\ngateway:\n  sessionKey: {env: MCPGW_TEST_KEY}\n"

// server renders one YAML list item under servers.
func server(fields string) string { return "- {" + fields + "}\n" }

func lines(l ...string) string { return strings.Join(l, "\n") }

func TestParse(t *testing.T) {
	ok := func(name, url, host, prefix string) Server {
		return Server{Name: name, URL: url, Hostname: host, Prefix: prefix}
	}
	tests := []struct {
		name    string
		in      string
		wantErr string  // exact err.Error(); "" means success
		want    *Config // compared when non-nil
	}{
		{name: "empty", in: "", wantErr: "config is empty"},
		{name: "blank", in: " \n\t\n", wantErr: "config is empty"},
		{
			name: "minimal yaml gets defaults",
			in:   minimal,
			want: &Config{Version: Version, Gateway: Gateway{
				SessionKey:          SecretRef{Env: "MCPGW_TEST_KEY"},
				MaxRequestBodyBytes: DefaultMaxRequestBodyBytes,
				MaxSessions:         DefaultMaxSessions,
			}},
		},
		{
			name: "json with everything set",
			in: `{"version":"mcpgw/v1","gateway":{"sessionKey":{"file":"/k"},"maxRequestBodyBytes":4096,"maxSessions":7},
			"servers":[{"name":"ns/a","url":"https://a.example:8443/mcp?x=1","hostname":"a.local:8080","prefix":"a_",
			"credential":{"header":"X-Api-Key","env":"A_TOKEN"}},{"name":"ns/b","url":"http://b/","hostname":"b","prefix":""}]}`,
			want: &Config{Version: Version,
				Gateway: Gateway{SessionKey: SecretRef{File: "/k"}, MaxRequestBodyBytes: 4096, MaxSessions: 7},
				Servers: []Server{
					{Name: "ns/a", URL: "https://a.example:8443/mcp?x=1", Hostname: "a.local:8080", Prefix: "a_",
						Credential: &Credential{Header: "X-Api-Key", SecretRef: SecretRef{Env: "A_TOKEN"}}},
					ok("ns/b", "http://b/", "b", ""),
				}},
		},
		{
			name: "yaml credential without header keeps it empty",
			in:   minimal + "servers:\n" + server("name: a, url: 'http://a/mcp', hostname: a, prefix: a_, credential: {file: /t}"),
			want: &Config{Version: Version,
				Gateway: Gateway{SessionKey: SecretRef{Env: "MCPGW_TEST_KEY"},
					MaxRequestBodyBytes: DefaultMaxRequestBodyBytes, MaxSessions: DefaultMaxSessions},
				Servers: []Server{{Name: "a", URL: "http://a/mcp", Hostname: "a", Prefix: "a_",
					Credential: &Credential{SecretRef: SecretRef{File: "/t"}}}}},
		},
		{
			name:    "unknown top-level field, yaml",
			in:      minimal + "bogus: 1\n",
			wantErr: `decode config: error unmarshaling JSON: while decoding JSON: json: unknown field "bogus"`,
		},
		{
			name:    "unknown top-level field, json",
			in:      `{"version":"mcpgw/v1","gateway":{"sessionKey":{"env":"K"}},"extra":1}`,
			wantErr: `decode config: error unmarshaling JSON: while decoding JSON: json: unknown field "extra"`,
		},
		{
			name:    "unknown nested field in credential",
			in:      minimal + "servers:\n" + server("name: a, url: 'http://a/', hostname: a, credential: {env: X, value: inline}"),
			wantErr: `decode config: error unmarshaling JSON: while decoding JSON: json: unknown field "value"`,
		},
		{
			name:    "duplicate key",
			in:      `{"version":"x","version":"mcpgw/v1","gateway":{"sessionKey":{"env":"K"}}}`,
			wantErr: "decode config: error converting YAML to JSON: yaml: unmarshal errors:\n  line 1: key \"version\" already set in map",
		},
		{
			name:    "syntax error",
			in:      "version: [\n",
			wantErr: "decode config: error converting YAML to JSON: yaml: line 1: did not find expected node content",
		},
		{
			name:    "wrong type",
			in:      minimal + "servers: {}\n",
			wantErr: "decode config: error unmarshaling JSON: while decoding JSON: json: cannot unmarshal object into Go struct field Config.servers of type []config.Server",
		},
		{
			name:    "null document reports every missing field",
			in:      "null",
			wantErr: lines(`version: got "", want "mcpgw/v1"`, "gateway.sessionKey: set exactly one of env and file"),
		},
		{
			name: "every problem joined in order",
			in: lines("version: v2", "gateway:", "  sessionKey: {env: A, file: B}",
				"  maxRequestBodyBytes: -1", "  maxSessions: -2", "servers:", "- {}",
				"- {name: a, url: 'ftp://x', hostname: 'bad host', prefix: 'a b'}",
				"- {name: a, url: 'http://', hostname: ok, prefix: ''}",
				"- {name: b, url: ':bad', hostname: ok, prefix: p, credential: {header: 'x y', env: E, file: F}}",
				"- {name: c, url: 'http://u:p4ss@h/', hostname: -h, prefix: p, credential: {header: 'a:b'}}",
				"- {name: d, url: 'http://u:s3cret@h:bad/', hostname: 'h:123456', prefix: 'd/'}", ""),
			wantErr: lines(
				`version: got "v2", want "mcpgw/v1"`,
				"gateway.sessionKey: set exactly one of env and file",
				"gateway.maxRequestBodyBytes: must not be negative",
				"gateway.maxSessions: must not be negative",
				"servers[0].name: required",
				"servers[0].url: required",
				`servers[0].hostname: "" is not a valid host name`,
				`servers[1].url: "ftp://x": scheme must be http or https`,
				`servers[1].hostname: "bad host" is not a valid host name`,
				`servers[1].prefix: "a b" may only contain letters, digits, '_', '-' and '.'`,
				`servers[2].name: "a" already used by servers[1]`,
				`servers[2].url: "http://": host required`,
				`servers[2].prefix: "" already used by servers[0]`,
				"servers[3].url: not a valid URL: missing protocol scheme",
				"servers[3].credential: set exactly one of env and file",
				`servers[3].credential.header: "x y" is not a valid header name`,
				`servers[4].url: "http://u:xxxxx@h/": credentials in the URL are not allowed; use credential`,
				`servers[4].hostname: "-h" is not a valid host name`,
				`servers[4].prefix: "p" already used by servers[3]`,
				"servers[4].credential: set exactly one of env and file",
				`servers[4].credential.header: "a:b" is not a valid header name`,
				`servers[5].url: not a valid URL: invalid port ":bad" after host`,
				`servers[5].hostname: "h:123456" is not a valid host name`,
				`servers[5].prefix: "d/" may only contain letters, digits, '_', '-' and '.'`,
			),
		},
		{
			name: "two empty prefixes",
			in: minimal + "servers:\n" + server("name: a, url: 'http://a/', hostname: a") +
				server("name: b, url: 'http://b/', hostname: b, prefix: b_") + server("name: c, url: 'http://c/', hostname: c"),
			wantErr: `servers[2].prefix: "" already used by servers[0]`,
		},
		{
			name:    "invalid prefix is not also reported as duplicate",
			in:      minimal + "servers:\n" + server("name: a, url: 'http://a/', hostname: a, prefix: 'x y'") + server("name: b, url: 'http://b/', hostname: b, prefix: 'x y'"),
			wantErr: lines(`servers[0].prefix: "x y" may only contain letters, digits, '_', '-' and '.'`, `servers[1].prefix: "x y" may only contain letters, digits, '_', '-' and '.'`),
		},
		{
			name: "valid hostnames, ipv6 url, zero limits take defaults",
			in: lines("version: mcpgw/v1", "gateway: {sessionKey: {file: /k}, maxRequestBodyBytes: 0, maxSessions: 0}", "servers:",
				"- {name: a, url: 'http://[::1]:9000/mcp', hostname: 'a', prefix: a.}",
				"- {name: b, url: 'HTTPS://B.example', hostname: 'b-1.example.com:443', prefix: B-}", ""),
			want: &Config{Version: Version,
				Gateway: Gateway{SessionKey: SecretRef{File: "/k"}, MaxRequestBodyBytes: DefaultMaxRequestBodyBytes, MaxSessions: DefaultMaxSessions},
				Servers: []Server{ok("a", "http://[::1]:9000/mcp", "a", "a."), ok("b", "HTTPS://B.example", "b-1.example.com:443", "B-")}},
		},
		{
			name: "aliases",
			in: minimal + "servers:\n" +
				server("name: a, url: 'http://a/', hostname: a, prefix: a_, aliases: {test_simple_text: test_simple_text, a_y: x}") +
				server("name: b, url: 'http://b/', hostname: b, prefix: b_, aliases: {'café \"q\"': yy}"),
			want: &Config{Version: Version,
				Gateway: Gateway{SessionKey: SecretRef{Env: "MCPGW_TEST_KEY"},
					MaxRequestBodyBytes: DefaultMaxRequestBodyBytes, MaxSessions: DefaultMaxSessions},
				Servers: []Server{
					{Name: "a", URL: "http://a/", Hostname: "a", Prefix: "a_",
						Aliases: map[string]string{"test_simple_text": "test_simple_text", "a_y": "x"}},
					{Name: "b", URL: "http://b/", Hostname: "b", Prefix: "b_", Aliases: map[string]string{`café "q"`: "yy"}},
				}},
		},
		{
			name: "overlapping prefixes, reported on the longer one",
			in: minimal + "servers:\n" +
				server("name: a, url: 'http://a/', hostname: a, prefix: weather_") +
				server("name: b, url: 'http://b/', hostname: b, prefix: weather_alerts_") +
				server("name: c, url: 'http://c/', hostname: c, prefix: a_b_b_") +
				server("name: d, url: 'http://d/', hostname: d, prefix: a_b_") +
				server("name: e, url: 'http://e/', hostname: e, prefix: weatherman_") + // no overlap: "weather_" is not its beginning
				server("name: f, url: 'http://f/', hostname: f, prefix: ''"), // the empty prefix overlaps nothing
			wantErr: lines(
				`servers[1].prefix: "weather_alerts_" overlaps servers[0].prefix "weather_" (server "a"): one begins with the other, so both would claim names such as "weather_alerts_x"`,
				`servers[2].prefix: "a_b_b_" overlaps servers[3].prefix "a_b_" (server "d"): one begins with the other, so both would claim names such as "a_b_b_x"`,
			),
		},
		{
			name: "aliases inside another server's prefix",
			in: minimal + "servers:\n" +
				// a_own is inside a's own prefix: it can only shadow a's own names.
				server("name: a, url: 'http://a/', hostname: a, prefix: a_, aliases: {b_x: x, a_own: y, plain: z, b_: q}") +
				server("name: b, url: 'http://b/', hostname: b, prefix: b_") +
				server("name: c, url: 'http://c/', hostname: c, prefix: '', aliases: {a_z: z, b: z}"),
			wantErr: lines(
				`servers[0].aliases["b_"]: alias is inside servers[1].prefix "b_" (server "b") and would capture that server's names`,
				`servers[0].aliases["b_x"]: alias is inside servers[1].prefix "b_" (server "b") and would capture that server's names`,
				`servers[2].aliases["a_z"]: alias is inside servers[0].prefix "a_" (server "a") and would capture that server's names`,
			),
		},
		{
			name: "every alias problem reported, in name order",
			in: minimal + "servers:\n" +
				server("name: a, url: 'http://a/', hostname: a, prefix: a_, aliases: {z: '', '': x, dup: x, \"c\\r\": x, ok: \"t\\n\"}") +
				server("name: b, url: 'http://b/', hostname: b, prefix: b_, aliases: {dup: yy, long: "+strings.Repeat("n", 129)+"}"),
			wantErr: lines(
				`servers[0].aliases[""]: alias name is empty`,
				`servers[0].aliases["c\r"]: alias name contains control character U+000D`,
				`servers[0].aliases["ok"]: target name contains control character U+000A`,
				`servers[0].aliases["z"]: target name is empty`,
				`servers[1].aliases["dup"]: already an alias of servers[0]`,
				`servers[1].aliases["long"]: target name is longer than 128 bytes`,
			),
		},
		{
			name: "virtual servers",
			in: minimal + lines("virtualServers:",
				"- {name: team-a/dev, description: For development., tools: [weather_forecast, gh_search]}",
				"- {name: ops, tools: [x]}",
				"- {name: a/b.c-d, tools: [not_provided_by_any_server]}", ""),
			want: &Config{Version: Version,
				Gateway: Gateway{SessionKey: SecretRef{Env: "MCPGW_TEST_KEY"},
					MaxRequestBodyBytes: DefaultMaxRequestBodyBytes, MaxSessions: DefaultMaxSessions},
				VirtualServers: []VirtualServer{
					{Name: "team-a/dev", Description: "For development.", Tools: []string{"weather_forecast", "gh_search"}},
					{Name: "ops", Tools: []string{"x"}},
					{Name: "a/b.c-d", Tools: []string{"not_provided_by_any_server"}},
				}},
		},
		{
			name:    "unknown field in a virtual server",
			in:      minimal + "virtualServers:\n- {name: x, tools: [c], bogus: 1}\n",
			wantErr: `decode config: error unmarshaling JSON: while decoding JSON: json: unknown field "bogus"`,
		},
		{
			name: "every virtual server problem reported",
			in: minimal + lines("virtualServers:",
				"- {name: '', tools: [a]}",
				"- {name: Dev, tools: []}",
				"- {name: a/b/c}",
				"- {name: ok, tools: [a, '', a]}",
				"- {name: ok, tools: [b]}",
				"- {name: -x, tools: [c]}",
				"- {name: 'x/', tools: [c]}",
				"- {name: 'a.b/c', tools: [c]}", ""),
			wantErr: lines(
				`virtualServers[0].name: "" must be a lower-case DNS label, optionally followed by "/" and a DNS subdomain (e.g. "team-a/dev")`,
				`virtualServers[1].name: "Dev" must be a lower-case DNS label, optionally followed by "/" and a DNS subdomain (e.g. "team-a/dev")`,
				"virtualServers[1].tools: at least one tool is required",
				`virtualServers[2].name: "a/b/c" must be a lower-case DNS label, optionally followed by "/" and a DNS subdomain (e.g. "team-a/dev")`,
				"virtualServers[2].tools: at least one tool is required",
				"virtualServers[3].tools[1]: empty tool name",
				`virtualServers[3].tools[2]: "a" listed twice`,
				`virtualServers[4].name: "ok" already used by virtualServers[3]`,
				`virtualServers[5].name: "-x" must be a lower-case DNS label, optionally followed by "/" and a DNS subdomain (e.g. "team-a/dev")`,
				`virtualServers[6].name: "x/" must be a lower-case DNS label, optionally followed by "/" and a DNS subdomain (e.g. "team-a/dev")`,
				`virtualServers[7].name: "a.b/c" must be a lower-case DNS label, optionally followed by "/" and a DNS subdomain (e.g. "team-a/dev")`,
			),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("Parse succeeded, want error:\n%s", tt.wantErr)
				}
				if err.Error() != tt.wantErr {
					t.Fatalf("Parse error:\n%s\nwant:\n%s", err, tt.wantErr)
				}
				if c != nil {
					t.Errorf("Parse returned a config with its error")
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if tt.want != nil && !reflect.DeepEqual(c, tt.want) {
				t.Errorf("Parse =\n%+v\nwant\n%+v", c, tt.want)
			}
		})
	}
}

// TestValidateNoSecretsInErrors: the config file may carry a password only
// by mistake, in a URL; no error may repeat it.
func TestValidateNoSecretsInErrors(t *testing.T) {
	for _, u := range []string{
		"http://user:s3cret@host/mcp",
		"http://user:s3cret@host:bad/",
		"http://user:s3cret@ho st/",
		"ftp://user:s3cret@host/",
		"http://user:s3cret@[::1/",
	} {
		c := Config{Version: Version, Gateway: Gateway{SessionKey: SecretRef{Env: "K"}},
			Servers: []Server{{Name: "a", URL: u, Hostname: "a"}}}
		err := c.Validate()
		if err == nil {
			t.Errorf("%s: accepted", u)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: error leaks the password: %v", u, err)
		}
	}
}

// Validate on a hand-built Config (no defaults applied): zero limits are fine.
func TestValidateZeroValueLimits(t *testing.T) {
	c := Config{Version: Version, Gateway: Gateway{SessionKey: SecretRef{Env: "K"}}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestResolve(t *testing.T) {
	const secret = "s3cret-value-0123456789"
	dir := t.TempDir()
	write := func(name, content string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Setenv("MCPGW_T_SET", secret)
	t.Setenv("MCPGW_T_EMPTY", "")
	os.Unsetenv("MCPGW_T_UNSET")
	tests := []struct {
		name    string
		ref     SecretRef
		want    string
		wantErr string
	}{
		{name: "env", ref: SecretRef{Env: "MCPGW_T_SET"}, want: secret},
		{name: "env unset", ref: SecretRef{Env: "MCPGW_T_UNSET"}, wantErr: `environment variable "MCPGW_T_UNSET" is not set`},
		{name: "env empty", ref: SecretRef{Env: "MCPGW_T_EMPTY"}, wantErr: `environment variable "MCPGW_T_EMPTY" is not set`},
		{name: "file trailing newlines trimmed", ref: SecretRef{File: write("nl", secret+"\r\n\n")}, want: secret},
		{name: "file inner and leading space kept", ref: SecretRef{File: write("sp", " a b \n")}, want: " a b "},
		{name: "file empty", ref: SecretRef{File: write("empty", "\n")}, wantErr: `secret file "` + filepath.Join(dir, "empty") + `" is empty`},
		{name: "file missing", ref: SecretRef{File: filepath.Join(dir, "nope")},
			wantErr: "read secret file: open " + filepath.Join(dir, "nope") + ": no such file or directory"},
		{name: "file is a directory", ref: SecretRef{File: dir}, wantErr: "read secret file: read " + dir + ": is a directory"},
		{name: "both", ref: SecretRef{Env: "MCPGW_T_SET", File: write("both", secret)}, wantErr: "set only one of env and file"},
		{name: "neither", wantErr: "set one of env and file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.ref.Resolve()
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("Resolve() = %q, %v; want error %q", got, err, tt.wantErr)
				}
				if got != "" || strings.Contains(err.Error(), secret) {
					t.Fatalf("Resolve leaks the value: %q, %v", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Resolve() = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestCredentialHeaderName(t *testing.T) {
	if got := (&Credential{}).HeaderName(); got != DefaultCredentialHeader {
		t.Errorf("default header %q", got)
	}
	if got := (&Credential{Header: "X-Key"}).HeaderName(); got != "X-Key" {
		t.Errorf("header %q", got)
	}
}

func TestServerPathHostPort(t *testing.T) {
	tests := []struct{ url, path, hostPort string }{
		{"http://a", "/", "a:80"},
		{"https://a", "/", "a:443"},
		{"http://a/", "/", "a:80"},
		{"http://a:8080/mcp", "/mcp", "a:8080"},
		{"https://a:8443/v1/mcp/", "/v1/mcp/", "a:8443"},
		{"http://a/mcp?tenant=x&y=1", "/mcp?tenant=x&y=1", "a:80"},
		{"http://a?x=1", "/?x=1", "a:80"},
		{"http://a/mcp#frag", "/mcp", "a:80"},
		{"http://a/a%2Fb%20c", "/a%2Fb%20c", "a:80"},
		{"http://a/a b", "/a%20b", "a:80"},
		{"http://[::1]/mcp", "/mcp", "[::1]:80"},
		{"https://[fe80::1]:9443/", "/", "[fe80::1]:9443"},
		{"http://a:/mcp", "/mcp", "a:80"}, // empty port: the scheme's default
		{"http://10.0.0.1:3000", "/", "10.0.0.1:3000"},
		{"::not a url", "/", ""},
	}
	for _, tt := range tests {
		s := Server{URL: tt.url}
		if got := s.Path(); got != tt.path {
			t.Errorf("Path(%q) = %q, want %q", tt.url, got, tt.path)
		}
		if got := s.HostPort(); got != tt.hostPort {
			t.Errorf("HostPort(%q) = %q, want %q", tt.url, got, tt.hostPort)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte(minimal), 0o644)
	os.WriteFile(bad, []byte("version: v0\ngateway: {sessionKey: {env: K}}\n"), 0o644)
	if c, err := Load(good); err != nil || c.Gateway.SessionKey.Env != "MCPGW_TEST_KEY" {
		t.Fatalf("Load(good) = %+v, %v", c, err)
	}
	if _, err := Load(bad); err == nil || err.Error() != bad+`: version: got "v0", want "mcpgw/v1"` {
		t.Fatalf("Load(bad) error %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing")); !os.IsNotExist(err) {
		t.Fatalf("Load(missing) error %v, want not-exist", err)
	}
}

// TestExampleConfig keeps testdata/example.yaml (referenced by the docs)
// valid and meaningful.
func TestExampleConfig(t *testing.T) {
	c, err := Load("testdata/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Servers) != 3 {
		t.Fatalf("%d servers, want 3", len(c.Servers))
	}
	gh := c.Servers[1]
	if gh.Credential == nil || gh.Credential.HeaderName() != "Authorization" || gh.Credential.Env != "GITHUB_MCP_TOKEN" {
		t.Errorf("github credential %+v", gh.Credential)
	}
	if gh.HostPort() != "api.githubcopilot.com:443" || gh.Path() != "/mcp/" {
		t.Errorf("github HostPort %q Path %q", gh.HostPort(), gh.Path())
	}
	if c.Servers[2].Prefix != "" {
		t.Errorf("fallback server prefix %q", c.Servers[2].Prefix)
	}
	if len(c.VirtualServers) != 1 || c.VirtualServers[0].Name != "default/forecasting" || len(c.VirtualServers[0].Tools) != 2 {
		t.Errorf("virtual servers %+v", c.VirtualServers)
	}
	// The example is also valid JSON-equivalent input for the other readers:
	// it must not rely on defaults for anything it documents.
	if c.Gateway.MaxRequestBodyBytes != DefaultMaxRequestBodyBytes || c.Gateway.MaxSessions != DefaultMaxSessions ||
		c.Gateway.MaxLifetime() != DefaultSessionMaxLifetime || c.Gateway.KeyGracePeriod() != DefaultSessionKeyGracePeriod {
		t.Errorf("gateway %+v", c.Gateway)
	}
	if len(c.Gateway.PreviousSessionKeys) != 1 || c.Gateway.BrokerURL == "" {
		t.Errorf("gateway session settings %+v", c.Gateway)
	}
}

func TestInternalHeaders(t *testing.T) {
	for _, h := range InternalHeaders {
		if h != strings.ToLower(h) || !strings.HasPrefix(h, "x-mcp-") {
			t.Errorf("internal header %q: want lower-case x-mcp-*", h)
		}
	}
	for _, h := range []string{HeaderSessionID, HeaderProtocolVersion} {
		for _, in := range InternalHeaders {
			if h == in {
				t.Errorf("%q is MCP's own header and must not be stripped from clients", h)
			}
		}
	}
}

// Relative secret files are relative to the config file's directory (Load
// and Watch); absolute ones and env refs are kept; Parse leaves them as is.
func TestRelativeSecretFiles(t *testing.T) {
	dir := t.TempDir()
	in := lines("version: mcpgw/v1", "gateway: {sessionKey: {file: keys/session}}", "servers:",
		"- {name: a, url: 'http://a/', hostname: a, prefix: a_, credential: {file: a.token}}",
		"- {name: b, url: 'http://b/', hostname: b, prefix: b_, credential: {file: /abs/b.token}}",
		"- {name: c, url: 'http://c/', hostname: c, prefix: c_, credential: {env: C}}", "")
	path := filepath.Join(dir, "c.yaml")
	os.WriteFile(path, []byte(in), 0o644)
	check := func(t *testing.T, c *Config, base string) {
		t.Helper()
		got := []string{c.Gateway.SessionKey.File, c.Servers[0].Credential.File, c.Servers[1].Credential.File, c.Servers[2].Credential.File}
		want := []string{filepath.Join(base, "keys/session"), filepath.Join(base, "a.token"), "/abs/b.token", ""}
		if base == "" {
			want[0], want[1] = "keys/session", "a.token"
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("files %q, want %q", got, want)
		}
	}
	t.Run("Parse", func(t *testing.T) {
		c, err := Parse([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		check(t, c, "")
	})
	t.Run("Load", func(t *testing.T) {
		c, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		check(t, c, dir)
	})
	t.Run("Watch", func(t *testing.T) {
		var got *Config
		if _, err := Watch(t.Context(), path, WatchOptions{Resync: -1}, func(c *Config) { got = c }); err != nil {
			t.Fatal(err)
		}
		check(t, got, dir)
	})
}

func TestVirtualServerFromPath(t *testing.T) {
	for _, tt := range []struct {
		path, name string
		ok         bool
	}{
		{"/mcp", "", false},
		{"/mcp?x=/mcp/a", "", false},
		{"/mcpx/a", "", false},
		{"/", "", false},
		{"", "", false},
		{"/other/mcp/a", "", false},
		{"/mcp/", "", true}, // selects the empty name: unknown
		{"/mcp/dev", "dev", true},
		{"/mcp/team-a/dev", "team-a/dev", true},
		{"/mcp/team-a/dev?x=1", "team-a/dev", true},
		{"/mcp/team-a/dev/", "team-a/dev/", true}, // not a valid name: unknown
	} {
		name, ok := VirtualServerFromPath(tt.path)
		if name != tt.name || ok != tt.ok {
			t.Errorf("VirtualServerFromPath(%q) = %q, %v; want %q, %v", tt.path, name, ok, tt.name, tt.ok)
		}
	}
	if p := VirtualServerPath("team-a/dev"); p != "/mcp/team-a/dev" {
		t.Errorf("VirtualServerPath = %q", p)
	}
	if n := testing.AllocsPerRun(10, func() { VirtualServerFromPath("/mcp/team-a/dev?x=1") }); n != 0 {
		t.Errorf("VirtualServerFromPath allocates %v times", n)
	}
}

func TestAllowedOrigins(t *testing.T) {
	c, err := Parse([]byte(lines("version: mcpgw/v1",
		"gateway: {sessionKey: {file: /k}, allowedOrigins: ['http://localhost:6274', 'https://app.example.com']}",
		"servers: []", "")))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"http://localhost:6274", "https://app.example.com"}; !reflect.DeepEqual(c.Gateway.AllowedOrigins, want) {
		t.Errorf("AllowedOrigins = %q, want %q", c.Gateway.AllowedOrigins, want)
	}
	_, err = Parse([]byte(lines("version: mcpgw/v1",
		"gateway: {sessionKey: {file: /k}, allowedOrigins: ['http://ok', 'http://x/', '*']}", "servers: []", "")))
	if err == nil || !strings.Contains(err.Error(), "gateway.allowedOrigins[1]") ||
		!strings.Contains(err.Error(), "gateway.allowedOrigins[2]") || strings.Contains(err.Error(), "allowedOrigins[0]") {
		t.Errorf("err = %v, want allowedOrigins[1] and [2] refused", err)
	}
}

func TestValidateOrigin(t *testing.T) {
	for o, ok := range map[string]bool{
		"http://localhost":        true,
		"http://localhost:6274":   true,
		"https://app.example.com": true,
		"http://[::1]:8080":       true,
		"http://127.0.0.1:1":      true,
		"":                        false,
		"*":                       false,
		"null":                    false,
		"localhost:6274":          false,
		"ftp://localhost":         false,
		"http://localhost/":       false,
		"http://localhost/mcp":    false,
		"http://localhost?x":      false,
		"http://localhost#x":      false,
		"http://u@localhost":      false,
		"http://LocalHost":        false,
		"HTTP://localhost":        false,
		"http://localhost:":       false,
		"http://localhost:0":      false,
		"http://localhost:70000":  false,
		"http://":                 false,
		"http://local host":       false,
	} {
		if err := ValidateOrigin(o); (err == nil) != ok {
			t.Errorf("ValidateOrigin(%q) = %v, want ok=%v", o, err, ok)
		}
	}
}
