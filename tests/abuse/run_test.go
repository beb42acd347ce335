package abuse

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/filter/sessionid"
)

// era is the protocol era whose headers a case's request starts with.
type era uint8

const (
	// noEra: only Content-Type and Accept.
	noEra era = iota
	// session: MCP-Protocol-Version 2025-11-25 and the kept session's id.
	session
	// stateless: MCP-Protocol-Version 2026-07-28, and Mcp-Method (and, on
	// tools/call and prompts/get, Mcp-Name) taken from the body.
	stateless
)

func (e era) String() string { return [...]string{"-", "session", "stateless"}[e] }

// hostile is one hostile input and what the gateway must answer.
type hostile struct {
	name  string
	group string // catalogue section
	why   string // why the answer is right (catalogue)
	era   era
	// The request: method (default POST), path (default /mcp), headers
	// ("Name: value"; an empty value removes one the era set) and body.
	// {name} placeholders are filled from fixture.values.
	method, path string
	header       []string
	body         string
	// raw, if set, is sent as is on a TCP connection instead (after the
	// placeholders are filled); it must close the request.
	raw string
	// send, if set, sends the request itself (slow bodies) and returns the
	// answer.
	send func(t *testing.T, f *fixture, c *hostile) answer
	// status is the exact HTTP status; 0 means no answer (the client gave
	// up first).
	status int
	// code is the JSON-RPC error code the body must carry (0: none), and
	// id the id it must echo (raw JSON; "" is not checked).
	code int
	id   string
	// result: the body must be a JSON-RPC result.
	result bool
	// check, if set, asserts more (e.g. that nothing reached the canary).
	check func(f *fixture, a answer) error
	// fix names the fixed defect this case guards (a key of fixes).
	fix string
}

// answer is what came back.
type answer struct {
	status      int
	contentType string
	body        []byte
}

// message is the first JSON-RPC message of an answer (plain JSON, the
// first element of a batch's array, or the first SSE event with one).
type message struct {
	ID     json.RawMessage `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func (a answer) message() (message, error) {
	var m message
	data := bytes.TrimSpace(a.body)
	if strings.HasPrefix(a.contentType, "text/event-stream") {
		data = nil
		sc := bufio.NewScanner(bytes.NewReader(a.body))
		sc.Buffer(nil, 1<<22)
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok && strings.Contains(d, `"id"`) {
				data = []byte(d)
				break
			}
		}
	} else if !strings.HasPrefix(a.contentType, "application/json") {
		return m, fmt.Errorf("answer is %q, not JSON-RPC: %.200q", a.contentType, a.body)
	}
	if len(data) > 0 && data[0] == '[' {
		var batch []json.RawMessage
		if err := json.Unmarshal(data, &batch); err != nil || len(batch) == 0 {
			return m, fmt.Errorf("batch answer %.200q: %v", data, err)
		}
		data = batch[0]
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("answer %.200q: %v", a.body, err)
	}
	return m, nil
}

// verify checks an answer against the case.
func (c *hostile) verify(f *fixture, a answer) error {
	if a.status != c.status {
		return fmt.Errorf("HTTP %d, want %d (%s %.300q)", a.status, c.status, a.contentType, a.body)
	}
	if c.code != 0 || c.result {
		m, err := a.message()
		switch {
		case err != nil:
			return err
		case c.result && (m.Error != nil || len(m.Result) == 0):
			return fmt.Errorf("want a result, got %.300q", a.body)
		case c.code != 0 && (m.Error == nil || m.Error.Code != c.code || m.Error.Message == ""):
			return fmt.Errorf("want JSON-RPC error %d with a message, got %.300q", c.code, a.body)
		case c.id != "" && string(m.ID) != f.fill(c.id):
			return fmt.Errorf("error id %.80s, want %.80s", m.ID, f.fill(c.id))
		}
	}
	if c.check != nil {
		return c.check(f, a)
	}
	return nil
}

// fill replaces the {placeholders} of s.
func (f *fixture) fill(s string) string {
	for k, v := range f.values {
		s = strings.ReplaceAll(s, "{"+k+"}", v)
	}
	return s
}

// run sends the case and returns the answer.
func (f *fixture) run(t *testing.T, c *hostile) answer {
	t.Helper()
	switch {
	case c.send != nil:
		return c.send(t, f, c)
	case c.raw != "":
		return f.sendRaw(t, f.fill(c.raw))
	}
	return f.sendHTTP(t, c)
}

// request builds the case's HTTP request.
func (f *fixture) request(t *testing.T, c *hostile) *http.Request {
	t.Helper()
	method, path := c.method, c.path
	if method == "" {
		method = http.MethodPost
	}
	if path == "" {
		path = "/mcp"
	}
	body := f.fill(c.body)
	base := strings.TrimSuffix(f.g.URL(), "/mcp")
	req, err := http.NewRequest(method, base+f.fill(path), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == "" {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	switch c.era {
	case session:
		req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
		req.Header.Set("Mcp-Session-Id", f.values["session"])
	case stateless:
		req.Header.Set("Mcp-Protocol-Version", "2026-07-28")
		var m struct {
			Method string `json:"method"`
			Params struct {
				Name string `json:"name"`
			} `json:"params"`
		}
		if json.Unmarshal([]byte(body), &m) == nil {
			req.Header.Set("Mcp-Method", m.Method)
			if m.Params.Name != "" {
				req.Header.Set("Mcp-Name", m.Params.Name)
			}
		}
	}
	// The case's headers replace the era's of the same name; a name the
	// case lists twice is sent twice.
	replaced := map[string]bool{}
	for _, h := range c.header {
		name, value, _ := strings.Cut(h, ":")
		name, value = http.CanonicalHeaderKey(strings.TrimSpace(name)), f.fill(strings.TrimSpace(value))
		if !replaced[name] {
			replaced[name] = true
			req.Header.Del(name)
		}
		switch {
		case value == "":
		case name == "Host":
			req.Host = value
		default:
			req.Header.Add(name, value)
		}
	}
	return req
}

// client sends the cases: no connection reuse, so that a case cannot
// inherit a connection another one left in a bad state.
var client = &http.Client{
	Transport: &http.Transport{DisableKeepAlives: true, DisableCompression: true},
	Timeout:   15 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

func (f *fixture) sendHTTP(t *testing.T, c *hostile) answer {
	t.Helper()
	resp, err := client.Do(f.request(t, c))
	if err != nil {
		t.Fatalf("request: %v (a hang or a reset is never an answer)", err)
	}
	defer resp.Body.Close()
	return readAnswer(t, resp)
}

func readAnswer(t *testing.T, resp *http.Response) answer {
	t.Helper()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<22))
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	return answer{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), body: body}
}

// sendRaw writes raw on a new TCP connection to Envoy and reads one HTTP
// answer.
func (f *fixture) sendRaw(t *testing.T, raw string) answer {
	t.Helper()
	conn := f.dial(t)
	defer conn.Close()
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatalf("write: %v", err)
	}
	return f.readRaw(t, conn)
}

func (f *fixture) dial(t *testing.T) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", f.g.Envoy.Port), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(15 * time.Second))
	return conn
}

func (f *fixture) readRaw(t *testing.T, conn net.Conn) answer {
	t.Helper()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read answer: %v (a hang or a reset is never an answer)", err)
	}
	defer resp.Body.Close()
	return readAnswer(t, resp)
}

// deletedSession opens a session with raw requests, makes a routed call
// with it (so the router holds a backend session for it), ends it with
// DELETE and returns its id.
func (f *fixture) deletedSession(t *testing.T) string {
	t.Helper()
	post := func(sid, body string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, f.g.URL(), strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if sid != "" {
			req.Header.Set("Mcp-Session-Id", sid)
			req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	resp := post("", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"v0"}}}`)
	sid := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != http.StatusOK || sid == "" {
		t.Fatalf("raw initialize: HTTP %d, session %q", resp.StatusCode, sid)
	}
	if resp := post(sid, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("notifications/initialized: HTTP %d", resp.StatusCode)
	}
	if resp := post(sid, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo_whoami"}}`); resp.StatusCode != http.StatusOK {
		t.Fatalf("routed call before DELETE: HTTP %d", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodDelete, f.g.URL(), nil)
	req.Header.Set("Mcp-Session-Id", sid)
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: HTTP %d", resp.StatusCode)
	}
	return sid
}

// foreignID is a well-formed session id signed with another key.
func foreignID(t *testing.T) string {
	t.Helper()
	codec, err := sessionid.New([]byte(longString('k', 32)))
	if err != nil {
		t.Fatal(err)
	}
	return codec.Mint("")
}

// TestHostileInputs sends every hostile input to one gateway, in order
// (some leave state the next may meet, which is the point), and after each
// makes the good call.
func TestHostileInputs(t *testing.T) {
	f := startFixture(t)
	for _, c := range hostileCases() {
		t.Run(c.name, func(t *testing.T) {
			a := f.run(t, c)
			if err := c.verify(f, a); err != nil {
				if c.fix != "" {
					err = fmt.Errorf("%w\n[this case guards defect (%s): %s]", err, c.fix, fixes[c.fix])
				}
				t.Error(err)
			}
			f.good(t)
		})
	}
}
