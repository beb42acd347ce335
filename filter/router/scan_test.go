package router

import (
	"encoding/binary"
	"math/bits"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

var scanSeeds = []string{
	``, ` `, `{}`, `[]`, `{"a":1}`, ` {"jsonrpc":"2.0","id":1,"method":"m"} `,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a_b","arguments":{"name":"z"}}}`,
	`{"params":{"arguments":[1,{"name":2}],"name":"x\u0041\"y"},"method":"tools/call"}`,
	`{"name":"top","params":{"name":"a","name":"b"}}`, `{"params":{"name":"a"},"params":{}}`,
	`{"method":"a","Method":"b"}`, `{"metho\u0064":"a","method":"b"}`, `{"paramſ":{},"params":{}}`,
	`{"id":-0.5e+10,"id2":01}`, `[1,2,]`, `{"a":"\u12G4"}`, `{"a":"tab	"}`, `"\ud800"`, `tru`, `nul`, `-`, `1.`, `1e`,
	`{"a":1,}`, `{"a" 1}`, `{,}`, `[[[[]]]]`, `{"a":[{"b":{"c":"` + strings.Repeat("x", 40) + `"}}]}`,
	strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth),
	strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1),
	`{"params":{"taskId":"a","taskId":"b"}}`, `{"params":{"requestId":1,"RequestId":2}}`,
	`{"params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"x"},"level":"info"}}`,
	`{"result":{"taskId":"a"},"id":1}`, `{"result":{"TASKID":"a"}}`,
	`{"a":"` + strings.Repeat("é\\n", 20) + `"}`, "{\"a\":\"\xff\xfe\"}", `{"a":"x"}` + "\x00",
}

func addSeeds(f *testing.F) {
	for _, s := range scanSeeds {
		f.Add([]byte(s))
	}
	files, _ := filepath.Glob("testdata/*.txtar")
	for _, file := range files {
		raw, _ := os.ReadFile(file)
		if body, ok := parseTxtar(string(raw)).get("body"); ok {
			f.Add([]byte(strings.TrimSuffix(body, "\n")))
		}
	}
}

// nesting returns the deepest nesting of arrays and objects in valid JSON.
func nesting(b []byte) int {
	depth, deepest, inString := 0, 0, false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			depth++
			deepest = max(deepest, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return deepest
}

// FuzzScanMessage checks scanMessage against gjson: the same documents are
// valid (except too deeply nested ones, which it refuses), the members it
// returns are those gjson.Get finds, and "ambiguous" means a member occurs
// twice or spelled in another case.
func FuzzScanMessage(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, ok := scanMessage(b)
		valid := gjson.ValidBytes(b)
		if ok != valid && !(valid && nesting(b) > maxDepth) {
			t.Fatalf("scanMessage ok=%v, gjson.Valid=%v for %q", ok, valid, b)
		}
		if !ok {
			return
		}
		root := gjson.ParseBytes(b)
		if first := b[len(b)-len(strings.TrimLeft(string(b), " \t\r\n"))]; m.kind != first {
			t.Fatalf("kind %q, want %q", m.kind, first)
		}
		if !root.IsObject() {
			if m.jsonrpc.Exists() || m.id.Exists() || m.method.Exists() || m.name.Exists() || m.ambiguous {
				t.Fatalf("members found outside an object: %+v", m)
			}
			return
		}
		if want := ambiguous(root); m.ambiguous != want {
			t.Fatalf("ambiguous=%v, want %v for %s", m.ambiguous, want, b)
		}
		if m.ambiguous {
			return
		}
		members := map[string]gjson.Result{"jsonrpc": m.jsonrpc, "id": m.id, "method": m.method, "params.name": m.name}
		for k, path := range memberPaths {
			members[path] = m.get(k)
		}
		for path, got := range members {
			want := gjson.GetBytes(b, path)
			if got.Exists() != want.Exists() || got.Type != want.Type || got.Raw != want.Raw || got.Str != want.Str {
				t.Fatalf("%s: got %+v, want %+v in %s", path, got, want, b)
			}
			if want.Exists() && got.Index != want.Index {
				t.Fatalf("%s: index %d, want %d in %s", path, got.Index, want.Index, b)
			}
		}
	})
}

// memberPaths are the gjson paths of the members scanMessage records.
var memberPaths = [numMembers]string{
	"jsonrpc", "id", "method", "params", "result",
	"params.name", "params.taskId", "params.requestId", "params.level", "params.protocolVersion",
	"params.capabilities", "params._meta", `params._meta.io\.modelcontextprotocol/protocolVersion`,
	"result.taskId",
}

// ambiguous is scanMessage's rule, the slow way.
func ambiguous(root gjson.Result) bool {
	// count counts the keys equal to name ignoring case, and returns the
	// value of the one exactly equal.
	count := func(obj gjson.Result, name string) (n int, val gjson.Result) {
		obj.ForEach(func(k, v gjson.Result) bool {
			if strings.EqualFold(k.Str, name) {
				n++
				if k.Str == name {
					val = v
				}
			}
			return true
		})
		return n, val
	}
	// A member occurring more than once, or other than exactly spelled.
	bad := func(n int, exact gjson.Result) bool { return n > 1 || n == 1 && !exact.Exists() }
	// check reports whether one of names in obj is bad, and returns the
	// values of those that are not.
	check := func(obj gjson.Result, names ...string) (found map[string]gjson.Result, isBad bool) {
		found = map[string]gjson.Result{}
		for _, name := range names {
			n, v := count(obj, name)
			if bad(n, v) {
				return nil, true
			}
			found[name] = v
		}
		return found, false
	}
	top, isBad := check(root, "jsonrpc", "id", "method", "params", "result")
	if isBad {
		return true
	}
	if params := top["params"]; params.IsObject() {
		members, isBad := check(params, "name", "taskId", "requestId", "level", "protocolVersion", "capabilities", "_meta")
		if isBad {
			return true
		}
		if meta := members["_meta"]; meta.IsObject() {
			if _, isBad := check(meta, metaVersionKey); isBad {
				return true
			}
		}
	}
	if result := top["result"]; result.IsObject() {
		if _, isBad := check(result, "taskId"); isBad {
			return true
		}
	}
	return false
}

func TestScanMessage(t *testing.T) {
	tests := []struct {
		in                  string
		ok, ambiguous       bool
		method, name, idRaw string
	}{
		{in: `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"a_x"}}`, ok: true, method: "tools/call", name: "a_x", idRaw: "7"},
		{in: "\n {\"method\" : \"m\" , \"id\" : \"s\" }\t", ok: true, method: "m", idRaw: `"s"`},
		{in: `{"params":{"name":"a_x","name":"secret"}}`, ok: true, ambiguous: true},
		{in: `{"params":{"name":"a_x","NAME":"secret"}}`, ok: true, ambiguous: true},
		{in: `{"params":{"name":"a_x"},"params":{"name":"b"}}`, ok: true, ambiguous: true},
		{in: `{"method":"tools/list","method":"tools/call"}`, ok: true, ambiguous: true},
		{in: `{"method":"tools/list","metho\u0064":"tools/call"}`, ok: true, ambiguous: true},
		{in: `{"id":1,"Id":2}`, ok: true, ambiguous: true},
		{in: `{"paramſ":{},"params":{}}`, ok: true, ambiguous: true}, // ſ folds to s
		{in: `{"params":{"arguments":{"name":"x","name":"y"},"name":"a"}}`, ok: true, name: "a"},
		{in: `{"x":{"method":"a"},"method":"b"}`, ok: true, method: "b"},
		{in: `{"Method":"a"}`, ok: true, ambiguous: true},
		{in: `{"params":{"Name":"a"}}`, ok: true, ambiguous: true},
		{in: `{"params":{"arguments":{"Name":"a"},"name":"b"}}`, ok: true, name: "b"},
		{in: `{"Params":{"name":"a"}}`, ok: true, ambiguous: true},
		{in: `{"params":{"name":"a"}}x`},
		// Every member the router routes or acts on, not only the name.
		{in: `{"method":"tasks/get","params":{"taskId":"mcpgw:1:an1","taskId":"x"}}`, ok: true, ambiguous: true},
		{in: `{"method":"tasks/get","params":{"taskId":"a","TaskID":"b"}}`, ok: true, ambiguous: true},
		{in: `{"method":"tasks/get","params":{"taskId":"a"},"params":{"taskId":"b"}}`, ok: true, ambiguous: true},
		{in: `{"method":"notifications/cancelled","params":{"requestId":1,"requestId":2}}`, ok: true, ambiguous: true},
		{in: `{"method":"notifications/cancelled","params":{"requestId":1,"requestid":"mcpgw:1:an1"}}`, ok: true, ambiguous: true},
		{in: `{"method":"logging/setLevel","params":{"level":"debug","level":"error"}}`, ok: true, ambiguous: true},
		{in: `{"method":"initialize","params":{"protocolVersion":"a","protocolVersion":"b"}}`, ok: true, ambiguous: true},
		{in: `{"method":"initialize","params":{"capabilities":{},"Capabilities":{}}}`, ok: true, ambiguous: true},
		{in: `{"params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/protocolVersion":"2025-06-18"}}}`, ok: true, ambiguous: true},
		{in: `{"params":{"_meta":{},"_META":{}}}`, ok: true, ambiguous: true},
		{in: `{"id":1,"result":{"taskId":"a","taskId":"mcpgw:1:bsx"}}`, ok: true, ambiguous: true},
		{in: `{"id":1,"result":{},"Result":{}}`, ok: true, ambiguous: true},
		// Deeper or elsewhere, the same names are not the router's.
		{in: `{"params":{"arguments":{"taskId":1,"taskId":2},"_meta":{"progressToken":1,"progressToken":2}}}`, ok: true},
		{in: `{"id":1,"result":{"content":[{"taskId":1,"taskId":2}]}}`, ok: true, idRaw: "1"},
		{in: strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth), ok: true},
		{in: strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1)},
		{in: `{"a":` + strings.Repeat(`{"a":`, maxDepth) + "1" + strings.Repeat("}", maxDepth+1)},
	}
	for _, tt := range tests {
		m, ok := scanMessage([]byte(tt.in))
		if m.ambiguous { // the members do not matter: the message is refused
			m = message{ambiguous: true}
		}
		if ok != tt.ok || m.ambiguous != tt.ambiguous || m.method.Str != tt.method || m.name.Str != tt.name || m.id.Raw != tt.idRaw {
			t.Errorf("scanMessage(%.60s) = ok %v ambiguous %v method %q name %q id %q; want %v %v %q %q %q",
				tt.in, ok, m.ambiguous, m.method.Str, m.name.Str, m.id.Raw, tt.ok, tt.ambiguous, tt.method, tt.name, tt.idRaw)
		}
	}
}

func TestSpecial8(t *testing.T) {
	for c := range 256 {
		for pos := range 8 {
			b := []byte("abcdefgh")
			b[pos] = byte(c)
			x := uint64(0)
			for i := 7; i >= 0; i-- {
				x = x<<8 | uint64(b[i])
			}
			special := c == '"' || c == '\\' || c < 0x20
			m := special8(x)
			if (m != 0) != special || special && bits.TrailingZeros64(m)>>3 != pos {
				t.Fatalf("special8 with %#x at %d = %#x", c, pos, m)
			}
			// Whatever follows a special byte, the first one is found.
			for _, after := range []byte{0, '"', '\\', 'a', 0xff} {
				if pos < 7 && special {
					b[pos+1] = after
					y := binary.LittleEndian.Uint64(b)
					if bits.TrailingZeros64(special8(y))>>3 != pos {
						t.Fatalf("special8 with %#x at %d then %#x: wrong first", c, pos, after)
					}
				}
			}
		}
	}
}

// The scanner's first-byte shortcut (scanner.member) holds: no member name
// starts with a letter that a multi-byte letter folds to (ſ to s, K to k),
// nor with an upper-case letter.
func TestMemberNames(t *testing.T) {
	for r := rune(0x80); r <= unicode.MaxRune; r++ {
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			if f >= utf8.RuneSelf {
				continue
			}
			for _, name := range memberNames {
				if name[0] == byte(unicode.ToLower(f)) {
					t.Errorf("member %q starts with %q, which %q folds to", name, f, r)
				}
			}
		}
	}
	for _, name := range memberNames {
		if name[0] >= 'A' && name[0] <= 'Z' {
			t.Errorf("member %q starts with an upper-case letter", name)
		}
	}
}
