package router

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// FuzzRelayID checks the relay-id format (relay.go) that relay ids, gateway
// task ids (tasks.go) and gateway SSE event ids (resume.go) share, both ways:
//
//   - encode then decode: the id the router writes for any server name the
//     config can hold and any JSON id (a number or a string, in UTF-8) a
//     backend can send decodes to that server and that id (the same JSON value), and
//     an event id decodes to the server and the backend's event id bytes;
//   - decode then encode: any string the parser accepts is exactly what
//     the encoder writes for what it parsed out of it, so the parser
//     accepts nothing the router cannot have handed out (no second
//     spelling of a length, no server name the config cannot hold);
//   - isJSONNumber accepts exactly the strings encoding/json reads as one
//     number (a numeric original goes back into a body unquoted).
//
// go test ./filter/router -run '^$' -fuzz '^FuzzRelayID$' -fuzztime 60s
func FuzzRelayID(f *testing.F) {
	for _, s := range []struct{ server, id string }{
		{"default/weather", `1`}, {"default/weather", `-12.5e3`}, {"a", `"abc"`},
		{"team/ü:x", `"with \"quotes\", \\ and \u00e9"`}, {`odd"name\`, `"7"`}, {"s", `""`},
		{"x", "mcpgw:1:xn1"}, {"x", "mcpgw:01:xn1"}, {"x", "mcpgw:+1:xs"}, {"x", "mcpgw:1:xe7"},
		{"tools/everything", `"mcpgw:16:tools/everythings\ud800"`}, {"\x00", `0.0e-0`}, {"é", "\xff"},
	} {
		f.Add(s.server, []byte(s.id))
	}
	f.Fuzz(func(t *testing.T, server string, id []byte) {
		if server != "" && utf8.ValidString(server) { // what a config's name can be
			checkEncodeDecode(t, server, id)
			checkEventIDEncodeDecode(t, server, id)
		}
		checkDecodeEncode(t, string(id))
		checkIsJSONNumber(t, string(id))
	})
}

// checkEncodeDecode: raw, when it is a JSON id, survives a relay id.
func checkEncodeDecode(t *testing.T, server string, raw []byte) {
	v := gjson.ParseBytes(raw)
	if !gjson.ValidBytes(raw) || !utf8.Valid(raw) || v.Raw != string(raw) || v.Type != gjson.String && v.Type != gjson.Number {
		// Not an id a backend's message can carry: JSON text is UTF-8
		// (RFC 8259 8.1; a backend's invalid bytes come back as U+FFFD,
		// as from any SDK client).
		return
	}
	enc := appendRelayID(nil, server, raw)
	var decoded string
	if err := json.Unmarshal(enc, &decoded); err != nil {
		t.Fatalf("relay id %q of %s is not a JSON string: %v", enc, raw, err)
	}
	// The router reads the client's answer with gjson; a client that
	// decodes and re-encodes the id (any SDK) sends encoding/json's
	// reading of it. Both must lead back.
	for _, got := range []string{gjson.ParseBytes(enc).Str, decoded} {
		srv, kind, original, ok := parseRelayID(got)
		if !ok || srv != server {
			t.Fatalf("parseRelayID(%q) = %q, %v; want server %q", got, srv, ok, server)
		}
		back := appendOriginalID(nil, kind, original)
		if w, g := gjson.ParseBytes(raw), gjson.ParseBytes(back); !gjson.ValidBytes(back) || g.Type != w.Type || g.Str != w.Str ||
			w.Type == gjson.Number && g.Raw != w.Raw {
			t.Fatalf("id %s came back as %s (relay id %s)", raw, back, enc)
		}
	}
}

// checkEventIDEncodeDecode: an SSE event id survives a gateway event id
// (for servers whose name can stand in an SSE field).
func checkEventIDEncodeDecode(t *testing.T, server string, original []byte) {
	if !eventIDsRewritable(server) || len(original) == 0 || strings.ContainsAny(string(original), "\r\n") {
		return
	}
	enc := string(appendEventID(nil, server, original))
	srv, kind, got, ok := splitRelayID(enc)
	if !ok || srv != server || kind != 'e' || got != string(original) {
		t.Fatalf("event id %q split into %q %q %q %v", enc, srv, kind, got, ok)
	}
}

// checkDecodeEncode: whatever the parsers accept, the encoders write.
func checkDecodeEncode(t *testing.T, id string) {
	if srv, kind, rest, ok := splitRelayID(id); ok && kind == 'e' {
		if enc := string(appendEventID(nil, srv, []byte(rest))); enc != id {
			t.Fatalf("splitRelayID accepted %q, which the router writes as %q", id, enc)
		}
	}
	srv, kind, original, ok := parseRelayID(id)
	if !ok {
		return
	}
	// The backend id that leads to this relay id: a number as is, a
	// string with its contents escaped as JSON needs (bytes of invalid
	// UTF-8 pass, as a backend's would).
	raw := original
	if kind == 's' {
		raw = `"` + escapeKeepingBytes(original) + `"`
	}
	enc := appendRelayID(nil, srv, []byte(raw))
	if got := gjson.ParseBytes(enc); got.Type != gjson.String || got.Str != id {
		t.Fatalf("parseRelayID accepted %q (server %q, kind %q, id %q), which the router writes as %s", id, srv, kind, original, enc)
	}
}

// escapeKeepingBytes escapes s as JSON string contents without touching
// bytes of 0x80 and above.
func escapeKeepingBytes(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20:
			b.WriteString(`\u00`)
			b.WriteByte("0123456789abcdef"[c>>4])
			b.WriteByte("0123456789abcdef"[c&0xf])
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// checkIsJSONNumber compares isJSONNumber with encoding/json.
func checkIsJSONNumber(t *testing.T, v string) {
	var n json.Number
	want := len(v) > 0 && (v[0] == '-' || v[0] >= '0' && v[0] <= '9') && !isSpace(v[len(v)-1]) &&
		json.Unmarshal([]byte(v), &n) == nil
	if got := isJSONNumber(v); got != want {
		t.Fatalf("isJSONNumber(%q) = %v, encoding/json says %v", v, got, want)
	}
}
