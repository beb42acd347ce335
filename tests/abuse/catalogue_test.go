package abuse

import (
	"bytes"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mcpgw/mcpgw/tests/harness"
)

var update = flag.Bool("update", false, "rewrite CATALOGUE.md from the tables")

// fixes are the defects found and fixed in the hardening round that cases
// guard against (case and fault field fix).
var fixes = map[string]string{
	"a": "after `DELETE /mcp` (204) on a session, a routed `tools/call` with its id gets HTTP 404 (it ran before)",
	"b": "after a backend restart, the first routed call succeeds transparently (it got a retryable JSON-RPC error before)",
	"c": "bodies with duplicated `params.taskId` or `params.requestId` members get HTTP 400 (the first won before)",
	"d": "the config loader refuses overlapping prefixes (`echo_` and `echo_x_`)",
	"e": "router: a POST without Content-Type is refused like any other non-JSON type (415, -32600); it was routed, and the backend's text/plain 415 reached the client",
	"f": "adapter: a chunked body past `gateway.maxRequestBodyBytes` is refused by the router (413, -32600) as its chunks come; Envoy's buffer limit answered text/plain 413 first",
	"g": "router: only `/mcp` and `/mcp/<name>` are the endpoint; calls on other paths (`/MCP`, `/mcpx`, `//mcp`) were routed to backends",
}

// catalogueHead is the catalogue's fixed introduction.
const catalogueHead = `# mcpgw fault and abuse catalogue

Generated from the tables of ` + "`tests/abuse`" + ` (hostile_*_test.go, faults_test.go): ` + "`TestCatalogue`" + `
fails when this file and the tables differ; ` + "`go test ./tests/abuse -run TestCatalogue -update`" + ` rewrites it.

**Hostile inputs** are sent, in this order, to one gateway (a real Envoy with the router module, the
broker, and real go-sdk servers: ` + "`abuse/echo`" + ` prefix ` + "`echo_`" + `, ` + "`abuse/math`" + ` prefix ` + "`math_`" + `,
the stateless ` + "`abuse/plain`" + ` prefix ` + "`plain_`" + `, and the virtual server ` + "`abuse/vs`" + ` offering
` + "`echo_echo`" + `), as HTTP requests or raw bytes on a TCP connection. Each must get the exact HTTP
status and, where a body is due, the JSON-RPC error code (and the id it echoes). After every case a
kept session makes a good ` + "`tools/call`" + ` (` + "`echo_whoami`" + `), which must succeed, and Envoy must
still be the same process.

The era sets the starting headers: *session* is ` + "`MCP-Protocol-Version: 2025-11-25`" + ` with the kept
session's ` + "`Mcp-Session-Id`" + `; *stateless* is ` + "`MCP-Protocol-Version: 2026-07-28`" + ` with ` + "`Mcp-Method`" + `
(and ` + "`Mcp-Name`" + `) taken from the body; the headers listed replace those (an empty value removes
one). Placeholders: ` + "`{session}`" + ` the kept session, ` + "`{deleted}`" + ` a session ended with DELETE after
a routed call, ` + "`{stale}`" + ` a genuine id the broker never opened, ` + "`{foreign}`" + ` an id signed with
another key, ` + "`{vs-session}`" + ` a session of the virtual server, ` + "`{canary}`" + ` an address that counts
connections (nothing may reach it), ` + "`{long-id}`" + ` 4 KiB of digits; ` + "`<N bytes>`" + ` abbreviates a long value.

**Faults** break a part of the stack, each on a gateway of its own, and state what must not be lost.

Cases marked *regression (x)* guard a defect found and fixed in the hardening round, listed at the end.
`

// catalogue renders the catalogue from the tables.
func catalogue() string {
	var b strings.Builder
	b.WriteString(catalogueHead)
	cases := hostileCases()
	fmt.Fprintf(&b, "\n## Hostile inputs (%d)\n", len(cases))
	group := ""
	for _, c := range cases {
		if c.group != group {
			group = c.group
			fmt.Fprintf(&b, "\n### %s\n\n| case | era | request | expected | why |\n|---|---|---|---|---|\n", group)
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", c.name, c.era, cell(c.input()), c.expected(), cell(c.why))
	}
	fs := faults()
	fmt.Fprintf(&b, "\n## Faults (%d)\n\n| fault | what breaks | what must not be lost | test |\n|---|---|---|---|\n", len(fs))
	for _, f := range fs {
		test := "`TestFaults/" + f.name + "`"
		if f.where != "" {
			test = "`" + f.where + "`"
		}
		keeps := f.keeps
		if f.fix != "" {
			keeps += fmt.Sprintf(" *(regression (%s))*", f.fix)
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", f.name, cell(f.does), cell(keeps), test)
	}
	b.WriteString("\n## Defects these cases guard\n\n")
	for _, k := range slices.Sorted(maps.Keys(fixes)) {
		fmt.Fprintf(&b, "- **(%s)** %s\n", k, fixes[k])
	}
	return b.String()
}

// input describes the case's request for the catalogue.
func (c *hostile) input() string {
	switch {
	case c.send != nil:
		return c.sendInput()
	case c.raw != "":
		var kept []string
		for _, line := range strings.Split(c.raw, "\r\n") {
			if !slices.Contains(strings.Split(rawPOST(""), "\r\n"), line) || strings.HasPrefix(line, "POST ") {
				kept = append(kept, line)
			}
		}
		return "raw TCP: `" + abbreviate(strings.Join(kept, " ⏎ ")) + "`"
	}
	method, path := c.method, c.path
	if method == "" {
		method = "POST"
	}
	if path == "" {
		path = "/mcp"
	}
	s := "`" + method + " " + path + "`"
	headers := c.header
	if len(headers) > 6 {
		headers = append(headers[:3:3], fmt.Sprintf("… (%d headers)", len(c.header)))
	}
	for _, h := range headers {
		s += " `" + abbreviate(h) + "`"
	}
	if c.body != "" {
		s += " `" + abbreviate(c.body) + "`"
	}
	return s
}

// sendInput describes the requests of the cases with their own sender.
func (c *hostile) sendInput() string {
	return map[string]string{
		"chunked-over-limit":      "`POST /mcp`, chunked (no Content-Length): a 2 MiB `echo_echo` call",
		"slow-body":               "the good call, raw, in 20 writes 20 ms apart",
		"half-body-blocks-nobody": "the good call, raw, without its last half body; the good call on another connection; then the rest",
		"client-gone-mid-body":    "the good call, raw, half its body, then the connection closes",
	}[c.name]
}

// expected describes the answer the case wants.
func (c *hostile) expected() string {
	var s string
	switch {
	case c.status == 0:
		s = "no answer (the client left)"
	case c.code != 0:
		s = fmt.Sprintf("%d, `%d`", c.status, c.code)
		if c.id != "" {
			s += ", id `" + abbreviate(c.id) + "`"
		}
	case c.result:
		s = fmt.Sprintf("%d, a result", c.status)
	default:
		s = fmt.Sprintf("%d", c.status)
	}
	if c.fix != "" {
		s += fmt.Sprintf(" *(regression (%s))*", c.fix)
	}
	return s
}

// abbreviate shortens long runs and makes every byte printable.
func abbreviate(s string) string {
	if len(s) > 160 {
		s = s[:100] + fmt.Sprintf("…<%d bytes>…", len(s)-120) + s[len(s)-20:]
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1, r < 0x20, r == 0xfeff, r == 0x200b:
			for _, c := range []byte(s[i : i+n]) {
				fmt.Fprintf(&b, `\x%02x`, c)
			}
		case r == '`':
			b.WriteString("'")
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// cell escapes a table cell.
func cell(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "|", `\|`), "\n", " ") }

// TestCatalogue keeps CATALOGUE.md in step with the tables, and the tables
// complete: at least 45 hostile inputs and 8 faults, every one described.
func TestCatalogue(t *testing.T) {
	got := catalogue()
	if *update {
		if err := os.WriteFile("CATALOGUE.md", []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile("CATALOGUE.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want, []byte(got)) {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		i := 0
		for i < len(gl) && i < len(wl) && gl[i] == wl[i] {
			i++
		}
		t.Errorf("CATALOGUE.md is out of step with the tables from line %d; run go test ./tests/abuse -run TestCatalogue -update", i+1)
	}
	cases, fs := hostileCases(), faults()
	if len(cases) < 45 || len(fs) < 8 {
		t.Errorf("%d hostile inputs and %d faults; the suite needs at least 45 and 8", len(cases), len(fs))
	}
	seen := map[string]bool{}
	for _, c := range cases {
		switch {
		case seen[c.name]:
			t.Errorf("case %s twice", c.name)
		case c.why == "" || c.group == "" || c.input() == "":
			t.Errorf("case %s lacks its why, group or input", c.name)
		case c.fix != "" && fixes[c.fix] == "":
			t.Errorf("case %s expects unknown fix %q", c.name, c.fix)
		}
		seen[c.name] = true
	}
	for _, f := range fs {
		if f.does == "" || f.keeps == "" || (f.run == nil) == (f.where == "") || (f.fix != "" && fixes[f.fix] == "") {
			t.Errorf("fault %s: needs what breaks, what must not be lost, a known fix, and either a run or a where", f.name)
		}
		if f.where != "" {
			checkWhere(t, f.where)
		}
	}
}

// checkWhere checks that "dir: TestName" names a test that exists.
func checkWhere(t *testing.T, where string) {
	t.Helper()
	dir, name, _ := strings.Cut(where, ": ")
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(root, dir, "*_test.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil && bytes.Contains(b, []byte("\nfunc "+name+"(t *testing.T)")) {
			return
		}
	}
	t.Errorf("%s: no such test", where)
}
