package abuse

import (
	"fmt"
	"strings"
)

// rawPOST is a raw HTTP/1.1 POST of body to /mcp on the kept session,
// with extra header lines; it closes the connection after the answer.
func rawPOST(body string, extra ...string) string {
	lines := append([]string{
		"POST /mcp HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json",
		"Accept: application/json, text/event-stream", "Mcp-Protocol-Version: 2025-11-25",
		"Mcp-Session-Id: {session}", "Connection: close",
	}, extra...)
	if !strings.Contains(strings.ToLower(strings.Join(extra, "\n")), "content-length") &&
		!strings.Contains(strings.ToLower(strings.Join(extra, "\n")), "transfer-encoding") {
		lines = append(lines, fmt.Sprintf("Content-Length: %d", len(body)))
	}
	return strings.Join(lines, "\r\n") + "\r\n\r\n" + body
}

func headerCases() []*hostile {
	g := "Hostile headers"
	spoof := []string{"X-Mcp-Servername: abuse/math", "X-Mcp-Upstream-Host: {canary}", "X-Mcp-Toolname: whoami", "X-Mcp-Method: tools/call"}
	return []*hostile{
		{name: "content-type-text", group: g, era: session, header: []string{"Content-Type: text/plain"}, body: goodCall,
			status: 415, code: -32600, id: "null", why: "a JSON-RPC body is application/json"},
		{name: "content-type-missing-list", group: g, era: session, header: []string{"Content-Type: "}, body: listTools,
			status: 415, code: -32600, why: "without a Content-Type the body is not known to be JSON"},
		{name: "content-type-missing-call", group: g, era: session, header: []string{"Content-Type: "}, body: goodCall, fix: "e",
			status: 415, code: -32600, why: "the same for a call the router would route: its answer, not the backend's text/plain"},
		{name: "content-type-charset", group: g, era: session, header: []string{"Content-Type: application/json; charset=utf-8"}, body: goodCall,
			status: 200, result: true, why: "media type parameters are allowed"},
		{name: "content-length-over-limit", group: g, raw: rawPOST("", "Content-Length: 2000000"),
			status: 413, code: -32600, why: "a declared body above gateway.maxRequestBodyBytes is refused before it is read"},
		{name: "huge-header", group: g, era: session, header: []string{"X-Pad: " + longString('a', 80<<10)}, body: goodCall,
			status: 431, why: "Envoy's header size limit (60 KiB): refused by Envoy before the router"},
		{name: "too-many-headers", group: g, era: session, header: padHeaders(150), body: goodCall,
			status: 431, why: "Envoy's header count limit (100)"},
		{name: "content-length-and-chunked", group: g, raw: rawPOST("5\r\nhello\r\n0\r\n\r\n", "Content-Length: 5", "Transfer-Encoding: chunked"),
			status: 400, why: "request smuggling: Envoy refuses both framings at once"},
		{name: "bad-header-name", group: g, raw: rawPOST(goodCall, "Bad Header: x"),
			status: 400, why: "not HTTP: Envoy's codec refuses it"},
		{name: "spoofed-routing-headers-list", group: g, era: session, header: spoof, body: listTools,
			status: 200, result: true, check: all(noCanary, contains("echo_whoami", "math_add")),
			why: "internal headers are removed: a tools/list still reaches the broker, nothing reaches the spoofed address"},
		{name: "spoofed-routing-headers-call", group: g, era: session, header: spoof, body: goodCall,
			status: 200, result: true, check: all(noCanary, contains(`"text":"echo"`)),
			why: "the router, not the client, picks the backend of a call"},
		{name: "spoofed-routing-headers-repeated", group: g, era: session, body: goodCall,
			header: []string{"X-MCP-UPSTREAM-HOST: {canary}", "X-MCP-UPSTREAM-HOST: {canary}", "x-mcp-servername: abuse/math", "x-mcp-servername: abuse/math"},
			status: 200, result: true, check: all(noCanary, contains(`"text":"echo"`)),
			why: "every value of every case of an internal header is removed"},
		{name: "two-session-ids", group: g, era: session, header: []string{"Mcp-Session-Id: {session}", "Mcp-Session-Id: {foreign}"}, body: goodCall,
			status: 200, result: true, check: contains(`"text":"echo"`),
			why: "the router and the broker both read the first value, and the router replaces all values on the routed call: it runs as the first session, which its sender holds"},
		{name: "two-session-ids-foreign-first", group: g, era: session, header: []string{"Mcp-Session-Id: {foreign}", "Mcp-Session-Id: {session}"}, body: goodCall,
			status: 404, code: -32600, id: "1", why: "a foreign first value is refused: a second, genuine one does not make it usable"},
		{name: "origin-foreign", group: g, era: session, header: []string{"Origin: http://evil.example"}, body: goodCall,
			status: 403, code: -32600, why: "DNS rebinding: a browser page of another origin"},
		{name: "origin-null", group: g, era: session, header: []string{"Origin: null"}, body: listTools,
			status: 403, code: -32600, why: "an opaque origin (sandboxed page, file://) is not an allowed one"},
		{name: "host-foreign", group: g, era: session, header: []string{"Host: evil.example"}, body: goodCall,
			status: 200, result: true, check: contains(`"text":"echo"`), why: "the client's Host is not a routing input: the router sets the backend's :authority"},
	}
}

func padHeaders(n int) []string {
	h := make([]string, n)
	for i := range h {
		h[i] = fmt.Sprintf("X-Pad-%d: %d", i, i)
	}
	return h
}

func bodyCases() []*hostile {
	g := "Hostile and slow bodies"
	return []*hostile{
		{name: "chunked-over-limit", group: g, era: session, send: sendChunked(2 << 20), fix: "f",
			status: 413, code: -32600, why: "a body without Content-Length is counted as it comes, and refused past the limit"},
		{name: "slow-body", group: g, send: sendSlow, status: 200, result: true,
			why: "a body trickled in 20 writes is buffered until complete, then routed"},
		{name: "half-body-blocks-nobody", group: g, send: sendHalfThenGood, status: 200, result: true,
			why: "while one request's body is half sent, the kept session's call succeeds (Envoy's worker is not blocked); the first then completes"},
		{name: "client-gone-mid-body", group: g, send: sendHalfThenClose, status: 0,
			why: "a client that leaves mid-body costs nothing: the next call works"},
		{name: "gzip-body", group: g, era: session, header: []string{"Content-Encoding: gzip"}, body: "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff",
			status: 400, code: -32700, id: "null", why: "the router reads bodies as sent; a compressed body is not JSON"},
		{name: "bom-body", group: g, era: session, body: "\xef\xbb\xbf" + goodCall, status: 400, code: -32700, id: "null",
			why: "JSON text has no byte order mark (RFC 8259)"},
	}
}

func sessionCases() []*hostile {
	g := "Forged, stale and foreign sessions"
	sessionHeader := func(v string) []string { return []string{"Mcp-Session-Id: " + v} }
	return []*hostile{
		{name: "forged-id-call", group: g, era: session, header: sessionHeader("forged." + longString('A', 22)), body: goodCall,
			status: 404, code: -32600, id: "1", why: "a session id the gateway did not sign"},
		{name: "forged-id-list", group: g, era: session, header: sessionHeader("forged"), body: listTools,
			status: 404, code: -32600, id: "2", why: "the broker checks the signature too"},
		{name: "foreign-key-id-call", group: g, era: session, header: sessionHeader("{foreign}"), body: goodCall,
			status: 404, code: -32600, id: "1", why: "well formed, signed with another gateway's key"},
		{name: "stale-id-list", group: g, era: session, header: sessionHeader("{stale}"), body: listTools,
			status: 404, code: -32600, id: "2", why: "genuine but unknown to the broker (as after a restart): the client must initialize again"},
		{name: "deleted-id-call", group: g, era: session, header: sessionHeader("{deleted}"), body: goodCall, fix: "a",
			status: 404, code: -32600, why: "a session ended with DELETE is gone for routed calls too"},
		{name: "deleted-id-list", group: g, era: session, header: sessionHeader("{deleted}"), body: listTools,
			status: 404, code: -32600, id: "2", why: "a session ended with DELETE is gone"},
		{name: "delete-forged", group: g, era: session, method: "DELETE", header: sessionHeader("forged"),
			status: 404, code: -32600, why: "nobody can end a session they cannot name"},
		{name: "long-session-id", group: g, era: session, header: sessionHeader(longString('s', 10<<10)), body: goodCall,
			status: 404, code: -32600, id: "1", why: "an id of any length is checked, never trusted"},
		{name: "no-session-call", group: g, header: []string{"Mcp-Protocol-Version: 2025-11-25"}, body: goodCall,
			status: 400, code: -32600, id: "1", why: "a session-era call needs its session"},
		{name: "no-session-list", group: g, header: []string{"Mcp-Protocol-Version: 2025-11-25"}, body: listTools,
			status: 400, code: -32600, id: "2", why: "a session-era request other than initialize needs its session"},
		{name: "virtual-session-on-root", group: g, era: session, header: sessionHeader("{vs-session}"), body: listTools,
			status: 404, code: -32600, id: "2", why: "a session belongs to the endpoint it was opened on"},
		{name: "get-forged", group: g, era: session, method: "GET", header: []string{"Mcp-Session-Id: forged", "Accept: text/event-stream"},
			status: 404, code: -32600, why: "no event stream for a forged session"},
	}
}

func nameCases() []*hostile {
	g := "Name tricks"
	call := func(name string) string {
		return `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":` + name + `}}`
	}
	return []*hostile{
		{name: "unknown-prefix", group: g, era: session, body: call(`"nope_x"`), status: 200, code: -32602, id: "1",
			why: "no server owns the name"},
		{name: "prefix-only", group: g, era: session, body: call(`"echo_"`), status: 200, code: -32602, id: "1",
			why: "an empty remainder is not a tool name"},
		{name: "prefix-case-changed", group: g, era: session, body: call(`"ECHO_whoami"`), status: 200, code: -32602, id: "1",
			why: "prefixes match exactly"},
		{name: "zero-width-in-name", group: g, era: session, body: call(`"echo\u200b_whoami"`), status: 200, code: -32602, id: "1",
			why: "a look-alike name is another name"},
		{name: "long-name", group: g, era: session, body: call(`"` + longString('n', 64<<10) + `"`), status: 200, code: -32602, id: "1",
			why: "a 64 KiB name is looked up, not trusted"},
		{name: "name-not-a-string", group: g, era: session, body: call(`7`), status: 200, code: -32602, id: "1",
			why: "params.name is a string"},
		{name: "name-missing", group: g, era: session, body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}`, status: 200, code: -32602, id: "1",
			why: "params.name is required"},
		{name: "name-with-path", group: g, era: session, body: call(`"echo_../math_add"`), status: 200, code: -32602, id: "1",
			why: "the remainder goes to the prefix's owner, which has no such tool: it can never reach another server"},
		{name: "prompt-unknown", group: g, era: session, body: `{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"nope_greet"}}`, status: 200, code: -32602, id: "1",
			why: "prompts are routed by prefix like tools"},
		{name: "virtual-server-unlisted-tool", group: g, era: session, path: "/mcp/" + virtualName, header: []string{"Mcp-Session-Id: {vs-session}"},
			body: goodCall, status: 200, code: -32602, id: "1", why: "a virtual server refuses the tools it does not list"},
		{name: "virtual-server-root-session", group: g, era: session, path: "/mcp/" + virtualName,
			body: call(`"math_whoami"`), status: 200, code: -32602, id: "1", why: "a root session cannot call through a virtual server what it does not list"},
		{name: "stateless-name-mismatch", group: g, era: stateless, header: []string{"Mcp-Name: echo_whoami"},
			body:   `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"plain_whoami",` + metaParams + `}}`,
			status: 400, code: -32020, id: "1", why: "2026-07-28: Mcp-Name must be the body's name"},
		{name: "stateless-method-mismatch", group: g, era: stateless, header: []string{"Mcp-Method: tools/list"},
			body:   `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"plain_whoami",` + metaParams + `}}`,
			status: 400, code: -32020, id: "1", why: "2026-07-28: Mcp-Method must be the body's method"},
		{name: "stateless-no-name-header", group: g, era: stateless, header: []string{"Mcp-Name: "},
			body:   `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"plain_whoami",` + metaParams + `}}`,
			status: 400, code: -32020, id: "1", why: "2026-07-28: a tools/call carries Mcp-Name"},
		{name: "stateless-no-method-header", group: g, era: stateless, header: []string{"Mcp-Method: "},
			body:   `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"plain_whoami",` + metaParams + `}}`,
			status: 400, code: -32020, id: "1", why: "2026-07-28: every request carries Mcp-Method"},
		{name: "stateless-call-routed", group: g, era: stateless,
			body:   `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"plain_whoami",` + metaParams + `}}`,
			status: 200, result: true, check: contains(`"text":"plain"`), why: "the control: a well-formed stateless call reaches its stateless server"},
	}
}

func pathCases() []*hostile {
	g := "Path tricks"
	return []*hostile{
		{name: "unknown-virtual-server", group: g, path: "/mcp/nope", header: []string{"Mcp-Protocol-Version: 2025-11-25"}, body: listTools,
			status: 404, code: -32600, id: "2", why: "no such virtual server"},
		{name: "dot-dot", group: g, era: session, path: "/mcp/../mcp", body: goodCall, status: 404, code: -32600, id: "1",
			why: "paths are not normalized (Envoy's default): the router reads ../mcp as a virtual server's name, and there is none"},
		{name: "encoded-dot-dot", group: g, era: session, path: "/mcp/%2e%2e/mcp", body: goodCall, status: 404, code: -32600, id: "1",
			why: "the same, percent-encoded"},
		{name: "upper-case-path", group: g, era: session, path: "/MCP", body: goodCall, status: 404, fix: "g",
			why: "not the endpoint (paths are case-sensitive): nothing is routed from it"},
		{name: "path-suffix", group: g, era: session, path: "/mcpx", body: goodCall, status: 404, fix: "g",
			why: "/mcpx is not the endpoint"},
		{name: "query-string", group: g, era: session, path: "/mcp?x=1", body: goodCall, status: 200, result: true, check: contains(`"text":"echo"`),
			why: "a query string does not change the endpoint"},
		{name: "double-slash", group: g, era: session, path: "//mcp", body: goodCall, status: 404, fix: "g",
			why: "not the endpoint"},
		{name: "virtual-server-subpath", group: g, path: "/mcp/" + virtualName + "/extra", header: []string{"Mcp-Protocol-Version: 2025-11-25"}, body: listTools,
			status: 404, code: -32600, id: "2", why: "a virtual server's name is the whole rest of the path"},
	}
}

func methodCases() []*hostile {
	g := "HTTP methods"
	return []*hostile{
		{name: "put", group: g, era: session, method: "PUT", body: goodCall, status: 405, why: "the endpoint serves POST, GET and DELETE"},
		{name: "get-without-event-stream", group: g, era: session, method: "GET", header: []string{"Accept: application/json"},
			status: 400, why: "a GET opens an event stream"},
		{name: "get-forged-last-event-id", group: g, era: session, method: "GET", header: []string{"Accept: text/event-stream", "Last-Event-ID: mcpgw:99:nope"},
			status: 400, why: "an event id the gateway did not issue resumes nothing"},
		{name: "delete-without-session", group: g, method: "DELETE", header: []string{"Mcp-Protocol-Version: 2025-11-25"},
			status: 400, why: "DELETE names a session"},
	}
}
