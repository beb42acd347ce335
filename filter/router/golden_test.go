package router

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/mcpgw/mcpgw/filter/config"
)

// Golden tests: each testdata/*.txtar is one request through a Stream, as an
// adapter drives it. Run `go test ./filter/router -run Golden -update` to
// rewrite the outputs after an intended change, and review the diff.
//
// Inputs:
//
//	-- config --     optional: a config file under testdata (default
//	                 router.yaml), or "none" for a router with no config
//	-- request --    the :method and optionally the :path ("POST /mcp/dev"),
//	                 then "name: value" header lines; values
//	                 $SESSION (a gateway session holding a backend session
//	                 with every server), $NEW_SESSION (valid, holding none),
//	                 $FORGED (well-formed, wrong MAC) and $EXPIRED (valid,
//	                 past the default session lifetime) are substituted;
//	                 "content-length: auto" is the body's length;
//	                 "origin: ..." is the Origin header; "mcp-method"
//	                 and "mcp-name" are the stateless era's headers
//	-- body --       the request body without its final newline; absent
//	                 means the request has no body (end of stream)
//
// Outputs (written by -update):
//
//	-- want --       the headers action and body action, every header
//	                 operation in order, the reply, and "sessions: dropped"
//	                 when $SESSION's backend sessions were forgotten, and the
//	                 client context kept per gateway session ("client
//	                 $NEW_SESSION: ..." after an initialize, whose broker
//	                 response is taken to create $NEW_SESSION)
//	-- new-body --   the rewritten body, when there is one
var update = flag.Bool("update", false, "rewrite the golden files in testdata")

type txtarFile struct {
	comment string
	files   []txtarSection
}

type txtarSection struct {
	name string
	data string
}

// parseTxtar reads the txtar format: a comment, then sections each opened
// by a "-- name --" line.
func parseTxtar(data string) txtarFile {
	var a txtarFile
	cur := &a.comment
	for line := range strings.Lines(data) {
		trimmed := strings.TrimSuffix(line, "\n")
		if strings.HasPrefix(trimmed, "-- ") && strings.HasSuffix(trimmed, " --") && len(trimmed) >= 6 {
			a.files = append(a.files, txtarSection{name: strings.TrimSpace(trimmed[3 : len(trimmed)-3])})
			cur = &a.files[len(a.files)-1].data
			continue
		}
		*cur += line
	}
	return a
}

func (a txtarFile) format() []byte {
	var b bytes.Buffer
	b.WriteString(a.comment)
	for _, f := range a.files {
		fmt.Fprintf(&b, "-- %s --\n", f.name)
		b.WriteString(f.data)
		if f.data != "" && !strings.HasSuffix(f.data, "\n") {
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

func (a txtarFile) get(name string) (string, bool) {
	for _, f := range a.files {
		if f.name == name {
			return f.data, true
		}
	}
	return "", false
}

// goldenOutputs are the sections the test writes.
var goldenOutputs = map[string]bool{"want": true, "new-body": true}

func TestGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.txtar")
	if len(files) == 0 {
		t.Fatal("no testdata/*.txtar")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			a := parseTxtar(string(raw))
			want, newBody := runGolden(t, a)
			out := txtarFile{comment: a.comment}
			for _, f := range a.files {
				if !goldenOutputs[f.name] {
					out.files = append(out.files, f)
				}
			}
			out.files = append(out.files, txtarSection{"want", want})
			if newBody != nil {
				out.files = append(out.files, txtarSection{"new-body", string(newBody) + "\n"})
			}
			got := out.format()
			if *update {
				if !bytes.Equal(got, raw) {
					if err := os.WriteFile(file, got, 0o644); err != nil {
						t.Fatal(err)
					}
					t.Logf("updated %s", file)
				}
				return
			}
			if !bytes.Equal(got, raw) {
				wantOut, _ := a.get("want")
				wantBody, _ := a.get("new-body")
				t.Errorf("output differs from %s (run with -update to accept)\n--- got want:\n%s--- golden want:\n%s--- got new-body:\n%s\n--- golden new-body:\n%s",
					file, want, wantOut, newBody, wantBody)
			}
		})
	}
}

// runGolden drives one request as an adapter would and renders the outcome.
func runGolden(t *testing.T, a txtarFile) (want string, newBody []byte) {
	t.Helper()
	cfg := "router.yaml"
	if c, ok := a.get("config"); ok {
		cfg = strings.TrimSpace(c)
	}
	if cfg == "none" {
		cfg = ""
	}
	r := newTestRouter(t, cfg)
	c := codec(t)
	session, fresh := c.Mint(""), c.Mint("")
	expired := c.MintAt(time.Now().Add(-config.DefaultSessionMaxLifetime), "")
	subst := strings.NewReplacer("$SESSION", session, "$NEW_SESSION", fresh, "$FORGED", forge(session), "$EXPIRED", expired)
	unsubst := strings.NewReplacer(session, "$SESSION", fresh, "$NEW_SESSION", forge(session), "$FORGED", expired, "$EXPIRED")
	servers := []string{"default/weather", "default/github", "default/alerts", "tools/everything"}
	for _, srv := range servers {
		r.Sessions().Put(session, srv, "bs-"+strings.ReplaceAll(srv, "/", "-"))
	}

	reqText, ok := a.get("request")
	if !ok {
		t.Fatal("no request section")
	}
	bodyText, hasBody := a.get("body")
	body := []byte(strings.TrimSuffix(bodyText, "\n"))
	h := RequestHeaders{ContentLength: -1, EndOfStream: !hasBody}
	for i, line := range strings.Split(strings.TrimSpace(reqText), "\n") {
		if i == 0 {
			h.Method, h.Path, _ = strings.Cut(strings.TrimSpace(line), " ")
			if h.Path == "" {
				h.Path = config.EndpointPath // a request line without a path: the endpoint's
			}
			continue
		}
		name, value, _ := strings.Cut(line, ":")
		value = subst.Replace(strings.TrimSpace(value))
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "content-type":
			h.ContentType = value
		case "content-length":
			if value == "auto" {
				h.ContentLength = int64(len(body))
			} else {
				n, err := strconv.ParseInt(value, 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				h.ContentLength = n
			}
		case "mcp-session-id":
			h.SessionID = value
		case "mcp-protocol-version":
			h.ProtocolVersion = value
		case "origin":
			h.Origin = value
		case "mcp-method":
			h.MCPMethod = value
		case "mcp-name":
			h.MCPName = value
		default:
			t.Fatalf("unknown request header %q", name)
		}
	}

	var out strings.Builder
	s := r.NewStream()
	defer s.Release()
	ha := s.RequestHeaders(h)
	fmt.Fprintf(&out, "headers: %s\n", headersActions[ha])
	var w recorder
	switch ha {
	case HeadersBuffer:
		act := s.RequestBody(body)
		fmt.Fprintf(&out, "action: %s\n", actions[act])
		switch act {
		case Forward, Route:
			s.ApplyRequest(&w)
		case Reply:
			id := replyID(body)
			if s.Rejection() == RejectTooLarge {
				id = "" // an oversized body is not parsed
			}
			checkReply(t, s, id)
		}
		if nb := s.NewBody(); nb != nil {
			newBody = bytes.Clone(nb)
			if act != Route && act != OpenSession {
				t.Errorf("new body with action %s", actions[act])
			}
		}
		if act == Route {
			checkRouted(t, body, newBody, &w)
		}
	case HeadersReply:
		checkReply(t, s, "")
	case HeadersRoute:
		// Routed on Mcp-Method/Mcp-Name: the body is never read.
		s.ApplyRequest(&w)
		if s.NewBody() != nil {
			t.Error("new body on the header fast path")
		}
	}
	for _, op := range w.ops {
		fmt.Fprintf(&out, "%s\n", unsubst.Replace(op))
	}
	if s.AwaitsSessionID() {
		// The broker's response to an initialize creates $NEW_SESSION.
		s.InitializeResponse(200, fresh)
	}
	for _, gw := range []string{session, fresh} {
		if caps, version, level := r.Sessions().Client(gw); caps != "" || version != "" || level != "" {
			fmt.Fprintf(&out, "client %s: version=%q level=%q capabilities=%s\n", unsubst.Replace(gw), version, level, caps)
		}
	}
	if s.Rejection() != RejectNone {
		status, reply := s.Reply()
		fmt.Fprintf(&out, "reply: %d %s\n", status, reply)
	}
	if _, ok := r.Sessions().Get(session, servers[0]); !ok {
		out.WriteString("sessions: dropped\n")
	}
	return out.String(), newBody
}

// replyID is the id an error reply must echo: the request's id if it is a
// valid JSON-RPC id in a valid, unambiguous message, else null ("").
func replyID(body []byte) string {
	if !gjson.ValidBytes(body) || nesting(body) > maxDepth {
		return ""
	}
	root := gjson.ParseBytes(body)
	if !root.IsObject() || ambiguous(root) || root.Get("jsonrpc").Str != "2.0" {
		return ""
	}
	switch id := root.Get("id"); id.Type {
	case gjson.String, gjson.Number, gjson.Null:
		return id.Raw
	}
	return ""
}

// checkRouted checks the invariants of every routed request: the headers
// agree with each other and with the body, and a rewritten body differs
// from the original only in params.name's value, which is the tool name.
func checkRouted(t testing.TB, body, newBody []byte, w *recorder) {
	t.Helper()
	tool, ok := w.get("x-mcp-toolname")
	if !ok {
		t.Fatal("routed without x-mcp-toolname")
	}
	for _, h := range []string{":authority", ":path", "x-mcp-servername", "x-mcp-upstream-host", "x-mcp-method"} {
		if _, ok := w.get(h); !ok {
			t.Errorf("routed without %s", h)
		}
	}
	cl, hasCL := w.get("content-length")
	if newBody == nil {
		if hasCL {
			t.Errorf("content-length %s set for an unchanged body", cl)
		}
		if got := gjson.GetBytes(body, "params.name").Str; got != tool {
			t.Errorf("x-mcp-toolname %q but body names %q", tool, got)
		}
		return
	}
	if cl != strconv.Itoa(len(newBody)) {
		t.Errorf("content-length %q for a %d-byte body", cl, len(newBody))
	}
	checkSurgical(t, body, newBody, tool)
}

// checkSurgical checks that newBody is body with params.name's value
// replaced by a JSON string of bare, every other byte identical.
func checkSurgical(t testing.TB, body, newBody []byte, bare string) {
	t.Helper()
	if !gjson.ValidBytes(newBody) {
		t.Fatalf("new body is not valid JSON: %s", newBody)
	}
	o, n := gjson.GetBytes(body, "params.name"), gjson.GetBytes(newBody, "params.name")
	if n.Type != gjson.String || n.Str != bare {
		t.Fatalf("new params.name %s, want %q", n.Raw, bare)
	}
	if o.Index == 0 || n.Index == 0 {
		t.Fatalf("params.name position unknown (%d, %d)", o.Index, n.Index)
	}
	if !bytes.Equal(body[:o.Index], newBody[:n.Index]) || !bytes.Equal(body[o.Index+len(o.Raw):], newBody[n.Index+len(n.Raw):]) {
		t.Fatalf("bytes outside params.name changed:\n%s\n%s", body, newBody)
	}
}
