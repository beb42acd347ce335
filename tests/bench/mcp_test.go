package bench

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// protocolVersion is the MCP version the benchmark clients speak.
const protocolVersion = "2025-06-18"

// echoText is the 1 KiB argument of every benchmarked echo call: letters and
// digits only, so it appears verbatim in the JSON (or SSE) response.
var echoText = strings.Repeat("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-", 16)

// initialize opens an MCP session through one new connection to addr
// (initialize, then notifications/initialized) and returns the connection
// and the headers of the session's further requests.
func initialize(addr string, h requestHeaders) (*httpConn, requestHeaders, error) {
	c := newHTTPConn(addr)
	body := `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"` + protocolVersion +
		`","capabilities":{},"clientInfo":{"name":"mcpgw-bench","version":"v0"}}}`
	resp, err := c.roundTrip(appendRequest(nil, h, []byte(body)))
	switch {
	case err != nil:
		return nil, h, fmt.Errorf("initialize via %s: %w", addr, err)
	case resp.status != 200 || resp.sessionID == "":
		return nil, h, fmt.Errorf("initialize via %s: HTTP %d, session %q: %.300s", addr, resp.status, resp.sessionID, resp.body)
	case !bytes.Contains(resp.body, []byte(`"protocolVersion":"`+protocolVersion+`"`)):
		return nil, h, fmt.Errorf("initialize via %s: protocol version not accepted: %.300s", addr, resp.body)
	}
	h.sessionID, h.version = resp.sessionID, protocolVersion
	resp, err = c.roundTrip(appendRequest(nil, h, []byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)))
	if err != nil || resp.status/100 != 2 {
		return nil, h, fmt.Errorf("notifications/initialized via %s: HTTP %d, %v: %.300s", addr, resp.status, err, resp.body)
	}
	return c, h, nil
}

// idBase makes every JSON-RPC id ten digits long, so ids are rewritten in
// place and Content-Length never changes.
const (
	idBase   = 1_000_000_000
	idDigits = 10
)

// toolCall is a prebuilt tools/call echo request. Its id (and session) are
// rewritten in place, so sending it allocates nothing.
type toolCall struct {
	buf    []byte
	idOff  int // the idDigits digits of the JSON-RPC id
	sidOff int // the Mcp-Session-Id value
	sidLen int
}

func newToolCall(h requestHeaders, tool string) *toolCall {
	body := fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":%q,"arguments":{"text":%q}}}`,
		idBase, tool, echoText)
	tc := &toolCall{buf: appendRequest(nil, h, body), sidLen: len(h.sessionID)}
	tc.idOff = len(tc.buf) - len(body) + bytes.Index(body, []byte(`"id":`)) + len(`"id":`)
	tc.sidOff = bytes.Index(tc.buf, []byte("Mcp-Session-Id: ")) + len("Mcp-Session-Id: ")
	return tc
}

func (tc *toolCall) setID(n int) {
	strconv.AppendInt(tc.buf[tc.idOff:tc.idOff], int64(idBase+n%idBase), 10)
}

// setSession replaces the session id by another of the same length.
func (tc *toolCall) setSession(id string) {
	if len(id) != tc.sidLen {
		panic("session ids of different lengths")
	}
	copy(tc.buf[tc.sidOff:], id)
}

// idField is `"id":<id>` as it must appear in the response.
func (tc *toolCall) idField() []byte { return tc.buf[tc.idOff-len(`"id":`) : tc.idOff+idDigits] }

// check validates the response to the call as last sent: HTTP 200, the same
// JSON-RPC id, the echoed text, no tool error. A benchmark that measures
// errors is worthless.
func (tc *toolCall) check(resp response) error {
	switch {
	case resp.status != 200:
		return fmt.Errorf("tools/call: HTTP %d: %.300s", resp.status, resp.body)
	case !bytes.Contains(resp.body, tc.idField()):
		return fmt.Errorf("tools/call: response lacks %s: %.300s", tc.idField(), resp.body)
	case !bytes.Contains(resp.body, []byte(echoText)):
		return fmt.Errorf("tools/call: echoed text missing: %.300s", resp.body)
	case bytes.Contains(resp.body, []byte(`"isError":true`)):
		return fmt.Errorf("tools/call: tool error: %.300s", resp.body)
	}
	return nil
}

// client is one MCP client with an established session: one connection,
// one prebuilt call.
type client struct {
	conn *httpConn
	call *toolCall
}

// do sends call number n, validates the response and returns the latency.
func (c *client) do(n int) (time.Duration, error) {
	c.call.setID(n)
	start := time.Now()
	resp, err := c.conn.roundTrip(c.call.buf)
	d := time.Since(start)
	if err != nil {
		return d, fmt.Errorf("tools/call via %s: %w", c.conn.addr, err)
	}
	return d, c.call.check(resp)
}
