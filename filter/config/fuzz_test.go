package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"sigs.k8s.io/yaml"
)

// FuzzParse feeds arbitrary files to the loader (Parse: decode, defaults,
// Validate) and checks that it never panics, that every error says
// something, and that a config it accepts is a fixed point: written back
// as YAML (as the controller and the test harness write it) or as JSON, it
// parses to the same config (empty and absent lists and maps being the
// same), which is valid again.
//
// go test ./filter/config -run '^$' -fuzz '^FuzzParse$' -fuzztime 60s
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.yaml")
	more, _ := filepath.Glob("../router/testdata/*.yaml")
	for _, file := range append(seeds, more...) {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		minimal,
		minimal + "servers:\n" + server("name: a, url: 'http://a/mcp', hostname: a, prefix: a_, credential: {file: /t}"),
		minimal + "servers:\n" + server("name: a, url: 'http://u:pw@a/mcp', hostname: 'a:1', prefix: ''") +
			server("name: a, url: 'ftp://b', hostname: -b, prefix: 'x y'"),
		minimal + "servers:\n" + server("name: a, url: 'http://a/mcp', hostname: a, prefix: a_, aliases: {x: y, '': z, w: ''}"),
		minimal + "servers:\n" + server("name: a, url: 'http://a/mcp', hostname: a, prefix: a_, aliases: {}, stateless: true"),
		minimal + "virtualServers:\n- {name: team-a/dev, tools: [a_x, a_x]}\n- {name: Bad, tools: []}\n",
		minimal + "  allowedOrigins: ['http://localhost:6274', 'HTTP://x', 'http://x/', 'https://[::1]:0']\n",
		minimal + "  maxRequestBodyBytes: -1\n  maxSessions: 0\n",
		`{"version":"mcpgw/v1","gateway":{"sessionKey":{"env":"K","file":"f"}},"servers":null,"virtualServers":[]}`,
		"version: mcpgw/v1\ngateway: &g\n  sessionKey: {env: K}\nservers: [*g]\n",
		"version: mcpgw/v1\nversion: mcpgw/v1\n", "- 1\n", "\xff", "version: mcpgw/v1\nunknown: 1\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			if c != nil || err.Error() == "" {
				t.Fatalf("Parse failed with config %v and error %q", c, err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted a config that does not validate: %v", err)
		}
		y, err := yaml.Marshal(c)
		if err != nil {
			t.Fatalf("marshal %+v: %v", c, err)
		}
		j, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("marshal %+v: %v", c, err)
		}
		for _, written := range [][]byte{y, j} {
			again, err := Parse(written)
			if err != nil {
				t.Fatalf("config written back does not parse: %v\n%s", err, written)
			}
			if diff := cmp.Diff(c, again, cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("config written back parses differently (-first +again):\n%s\n%s", diff, written)
			}
		}
	})
}
