package abuse

import "strings"

// Bodies the cases share.
const (
	goodCall  = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo_whoami","arguments":{}}}`
	listTools = `{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}`
	// metaParams are a stateless-era request's per-request _meta.
	metaParams = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"abuse","version":"v0"},"io.modelcontextprotocol/clientCapabilities":{}}`
)

// hostileCases are every hostile input, in the order they are sent.
func hostileCases() []*hostile {
	var all []*hostile
	for _, group := range [][]*hostile{jsonCases(), messageCases(), batchCases(), versionCases(),
		headerCases(), bodyCases(), sessionCases(), nameCases(), pathCases(), methodCases()} {
		all = append(all, group...)
	}
	return all
}

func jsonCases() []*hostile {
	g := "Malformed and ambiguous JSON"
	return []*hostile{
		{name: "truncated-json", group: g, era: session, body: `{"jsonrpc":"2.0","id":1,`, status: 400, code: -32700, id: "null",
			why: "not JSON: a parse error, with a null id since none could be read"},
		{name: "not-json", group: g, era: session, body: `hello`, status: 400, code: -32700, id: "null",
			why: "not JSON at all"},
		{name: "trailing-garbage", group: g, era: session, body: `{"jsonrpc":"2.0","id":1,"method":"ping"} x`, status: 400, code: -32700, id: "null",
			why: "one JSON value must be the whole body: the router and the broker must read the same message"},
		{name: "two-objects", group: g, era: session, body: `{"jsonrpc":"2.0","id":1,"method":"ping"}{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"math_whoami"}}`, status: 400, code: -32700, id: "null",
			why: "a second message smuggled after the first is refused, not routed or half-read"},
		{name: "json-scalar", group: g, era: session, body: `42`, status: 400, code: -32600, id: "null",
			why: "JSON but not a JSON-RPC message"},
		{name: "json-null", group: g, era: session, body: `null`, status: 400, code: -32600, id: "null",
			why: "JSON but not a JSON-RPC message"},
		{name: "wrong-jsonrpc-version", group: g, era: session, body: `{"jsonrpc":"1.0","id":1,"method":"ping"}`, status: 400, code: -32600, id: "null",
			why: `jsonrpc must be "2.0"`},
		{name: "no-jsonrpc-member", group: g, era: session, body: `{"id":1,"method":"ping"}`, status: 400, code: -32600, id: "null",
			why: `jsonrpc must be "2.0"`},
		{name: "duplicate-method", group: g, era: session, body: `{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"math_whoami"}}`, status: 400, code: -32600,
			why: "ambiguous: parsers that keep the first or the last member would route it differently"},
		{name: "miscased-method", group: g, era: session, body: `{"jsonrpc":"2.0","id":1,"method":"tools/list","Method":"tools/call","params":{"name":"math_whoami"}}`, status: 400, code: -32600,
			why: "ambiguous: case-insensitive parsers (Go's encoding/json) read Method as method"},
		{name: "duplicate-id", group: g, era: session, body: `{"jsonrpc":"2.0","id":1,"id":2,"method":"tools/call","params":{"name":"echo_whoami"}}`, status: 400, code: -32600,
			why: "ambiguous: the answer's id would depend on the parser"},
		{name: "duplicate-name", group: g, era: session, body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo_whoami","name":"math_whoami"}}`, status: 400, code: -32600,
			why: "ambiguous: the router would route to one server and the backend run another's tool"},
		{name: "duplicate-task-id", group: g, era: stateless, fix: "c",
			body:   `{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"taskId":"a","taskId":"b",` + metaParams + `}}`,
			header: []string{"Mcp-Name: a"}, status: 400, code: -32600,
			why: "ambiguous: the task a request is routed by must be the task the server reads"},
		{name: "duplicate-request-id", group: g, era: session, fix: "c",
			body:   `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1,"requestId":2}}`,
			status: 400, code: -32600,
			why: "ambiguous: a cancellation must cancel the one request the sender means"},
		{name: "id-object", group: g, era: session, body: `{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}`, status: 400, code: -32600, id: "null",
			why: "an id is a string or a number"},
		{name: "id-bool", group: g, era: session, body: `{"jsonrpc":"2.0","id":true,"method":"tools/call","params":{"name":"echo_whoami"}}`, status: 400, code: -32600, id: "null",
			why: "an id is a string or a number"},
		{name: "id-fractional", group: g, era: session, body: `{"jsonrpc":"2.0","id":1.5,"method":"ping"}`, status: 400, code: -32600, id: "null",
			why: "the go-sdk would answer id 1: the client could not match its answer"},
		{name: "invalid-utf8", group: g, era: session, body: "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo_\xff\"}}", status: 200, code: -32602, id: "1",
			why: "a name that is not valid UTF-8 names no tool"},
		{name: "deep-nesting", group: g, era: session,
			body:   `{"jsonrpc":"2.0","id":3,"method":"tools/list","params":{"x":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}}`,
			status: 400, code: -32700, id: "null",
			why: "nesting deeper than 1000 levels is refused as unparseable (the router's scanner and the go-sdk share the limit)"},
		{name: "long-id", group: g, era: session, body: `{"jsonrpc":"2.0","id":"{long-id}","method":"tools/call","params":{"name":"nope_x"}}`, status: 200, code: -32602, id: `"{long-id}"`,
			why: "a 4 KiB id is kept and echoed in full"},
	}
}

func messageCases() []*hostile {
	g := "Invalid messages (broker)"
	return []*hostile{
		{name: "no-method-no-result", group: g, era: session, body: `{"jsonrpc":"2.0","id":1}`, status: 400, code: -32600, id: "1",
			why: "neither a request nor an answer: refused, not accepted with 202 and dropped"},
		{name: "no-method-no-result-stateless", group: g, era: stateless, header: []string{"Mcp-Method: "}, body: `{"jsonrpc":"2.0","id":1}`, status: 400, code: -32600, id: "1",
			why: "the same in the stateless era (an answer carries no Mcp-Method)"},
		{name: "result-and-error", group: g, era: session, body: `{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"x"}}`, status: 400, code: -32600, id: "1",
			why: "an answer has a result or an error, not both"},
		{name: "unknown-method", group: g, era: session, body: `{"jsonrpc":"2.0","id":5,"method":"tools/frobnicate","params":{}}`, status: 200, code: -32601, id: "5",
			why: "method not found, as a JSON-RPC error (HTTP 200: a 404 would end the client's session)"},
		{name: "unknown-method-stateless", group: g, era: stateless, body: `{"jsonrpc":"2.0","id":5,"method":"tools/frobnicate","params":{` + metaParams + `}}`, status: 404, code: -32601, id: "5",
			why: "2026-07-28: an unknown method is HTTP 404 with -32601"},
		{name: "unknown-notification", group: g, era: session, body: `{"jsonrpc":"2.0","method":"notifications/frobnicate"}`, status: 400, code: -32601, id: "null",
			why: "a notification the gateway cannot accept: HTTP 400 with a JSON-RPC error without id"},
		{name: "notification-with-id", group: g, era: session, body: `{"jsonrpc":"2.0","id":6,"method":"notifications/initialized"}`, status: 400, code: -32600, id: "6",
			why: "a notification has no id"},
		{name: "request-without-id", group: g, era: session, body: `{"jsonrpc":"2.0","method":"tools/list"}`, status: 400, code: -32600, id: "null",
			why: "a request needs an id to be answered"},
		{name: "call-without-id", group: g, era: session, body: `{"jsonrpc":"2.0","method":"tools/call","params":{"name":"echo_whoami"}}`, status: 400, code: -32600, id: "null",
			why: "a tools/call without an id is not routed (its answer could not be matched)"},
		{name: "initialize-without-params", group: g, body: `{"jsonrpc":"2.0","id":7,"method":"initialize"}`, status: 200, code: -32602, id: "7",
			why: "invalid params, answered like the router's tools/call without a name"},
		{name: "empty-body", group: g, era: session, body: ``, status: 400, code: -32700, id: "null",
			why: "a POST without a body is not a message"},
	}
}

func batchCases() []*hostile {
	g := "Batches"
	v0326 := []string{"Mcp-Protocol-Version: 2025-03-26"}
	return []*hostile{
		{name: "batch-2025-06-18", group: g, era: session, header: []string{"Mcp-Protocol-Version: 2025-06-18"},
			body: `[{"jsonrpc":"2.0","id":1,"method":"ping"}]`, status: 400, code: -32600, id: "null",
			why: "batches were removed in 2025-06-18"},
		{name: "batch-stateless", group: g, era: stateless, header: []string{"Mcp-Method: ping"},
			body: `[{"jsonrpc":"2.0","id":1,"method":"ping"}]`, status: 400, code: -32600, id: "null",
			why: "no batches in the stateless era"},
		{name: "batch-2025-03-26", group: g, era: session, header: v0326,
			body:   `[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"math_whoami"}}]`,
			status: 200, result: true, why: "2025-03-26 allows batches; the broker answers them, calls included"},
		{name: "batch-empty", group: g, era: session, header: v0326, body: `[]`, status: 400, code: -32600, id: "null",
			why: "an empty batch is an invalid request (JSON-RPC 2.0)"},
		{name: "batch-with-invalid-member", group: g, era: session, header: v0326,
			body: `[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2}]`, status: 400, code: -32600, id: "2",
			why: "the batch is refused with the error of its invalid member"},
		{name: "batch-of-scalars", group: g, era: session, header: v0326, body: `[1,2]`, status: 400, code: -32600, id: "null",
			why: "members must be messages"},
	}
}

func versionCases() []*hostile {
	g := "Protocol versions"
	return []*hostile{
		{name: "version-unsupported-old", group: g, era: session, header: []string{"Mcp-Protocol-Version: 2024-11-05"}, body: listTools,
			status: 400, code: -32022, id: "2", why: "a version the gateway does not serve: HTTP 400, with the supported ones in the error's data"},
		{name: "version-garbage", group: g, era: session, header: []string{"Mcp-Protocol-Version: banana", "Mcp-Method: tools/list"}, body: listTools,
			status: 400, code: -32022, id: "2", why: "not a version at all (the router takes it for a stateless-era one, as it sorts after 2026-07-28, and checks Mcp-Method; the broker refuses it)"},
		{name: "version-future", group: g, era: stateless, header: []string{"Mcp-Protocol-Version: 2099-01-01"},
			body:   `{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{` + strings.ReplaceAll(metaParams, "2026-07-28", "2099-01-01") + `}}`,
			status: 400, code: -32022, id: "2", why: "a later version than any the gateway serves"},
		{name: "stateless-with-session-id", group: g, era: stateless, header: []string{"Mcp-Session-Id: {session}"},
			body:   `{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{` + metaParams + `}}`,
			status: 400, code: -32022, id: "2", why: "a 2026-07-28 request on a session: the session's era does not serve it"},
		{name: "stateless-meta-mismatch", group: g, era: stateless,
			body:   `{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2025-11-25"}}}`,
			status: 400, code: -32020, id: "2", why: "the header and _meta name different versions"},
		{name: "stateless-without-meta", group: g, era: stateless, body: listTools,
			status: 400, code: -32602, id: "2", why: "a 2026-07-28 request carries its version in _meta"},
	}
}
