package broker

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgw/mcpgw/broker/upstream"
)

// Invalid messages.
//
// The go-sdk's handler (v1.8.0) refuses an invalid POSTed message with a
// text/plain HTTP error, which clients cannot match to their request, and
// accepts with 202 and no answer a message with neither method nor
// result/error (it reads it as a response). The router lets through what
// it does not route (unknown methods, answers), so the broker checks each
// message first, as the go-sdk reads it (member names case-sensitive), and
// refuses it with a JSON-RPC error that echoes its id:
//
//   - not JSON, or an empty body: HTTP 400, -32700;
//   - not a JSON-RPC 2.0 message (not an object, jsonrpc not "2.0", an id
//     that is not a string or an integer, a method that is not a string,
//     an answer with neither or both of result and error, or without an
//     id), a request without an id, a notification with one, an empty
//     batch: HTTP 400, -32600;
//   - a request for a method the broker does not serve: -32601, with HTTP
//     200 in the session era (a 404 would tell the client its session is
//     gone) and HTTP 404 in the stateless era (2026-07-28 requires it); a
//     notification of such a method: HTTP 400, -32601;
//   - a request without the params its method needs: HTTP 200, -32602
//     (the router answers a tools/call without a name the same way);
//   - a session-era message other than initialize (or server/discover)
//     without an Mcp-Session-Id: HTTP 400, -32600 (the go-sdk would open a
//     session for it, which answers an error with code 0);
//   - an MCP-Protocol-Version the broker does not serve, earlier or later:
//     HTTP 400, -32022 (the stateless era's code) with the supported
//     versions in its data.
//
// A batch (2025-03-26) with any such message is refused as a whole: HTTP
// 400 with an array of the refused messages' errors.

// protocolVersions are the versions the broker serves: the session era's
// (initialize never negotiates a later one) and the stateless 2026-07-28.
func protocolVersions() []string {
	return append([]string{statelessVersion}, upstream.SupportedProtocolVersions()...)
}

// servedVersions is protocolVersions, for the checks of every request.
var servedVersions = protocolVersions()

// methodKind is what a method's message must look like.
type methodKind uint8

const (
	callWithParams   methodKind = iota // a request (with an id) with params
	call                               // a request whose params are optional
	notice                             // a notification (no id), params optional
	noticeWithParams                   // a notification with params
)

// serverMethods are the client-to-server methods the go-sdk server
// (v1.8.0) serves, with the shape it requires (TestServerMethodsMatchGoSDK
// checks them against it).
var serverMethods = map[string]methodKind{
	"initialize":                       callWithParams,
	"ping":                             call,
	"server/discover":                  call,
	"tools/list":                       call,
	"tools/call":                       callWithParams,
	"prompts/list":                     call,
	"prompts/get":                      callWithParams,
	"resources/list":                   call,
	"resources/templates/list":         call,
	"resources/read":                   callWithParams,
	"resources/subscribe":              callWithParams,
	"resources/unsubscribe":            callWithParams,
	"subscriptions/listen":             callWithParams,
	"completion/complete":              callWithParams,
	"logging/setLevel":                 callWithParams,
	"notifications/initialized":        notice,
	"notifications/cancelled":          notice,
	"notifications/roots/list_changed": notice,
	"notifications/progress":           noticeWithParams,
}

// methodOf returns how the broker serves method. In the stateless era
// the tasks extension's requests are served too (tasks.go; the go-sdk
// answers them -32601 itself when no backend has the extension).
func methodOf(method string, stateless bool) (methodKind, bool) {
	if stateless && strings.HasPrefix(method, "tasks/") {
		return callWithParams, true
	}
	kind, ok := serverMethods[method]
	return kind, ok
}

// errorReply is a JSON-RPC error response.
type errorReply struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Error   *jsonrpc.Error  `json:"error"`
}

func newError(id json.RawMessage, code int64, format string, args ...any) *errorReply {
	if id == nil {
		id = json.RawMessage("null")
	}
	return &errorReply{JSONRPC: "2.0", ID: id, Error: &jsonrpc.Error{Code: code, Message: fmt.Sprintf(format, args...)}}
}

// refuseInvalid answers r, a request to one of the broker's MCP servers,
// and reports true if its JSON body (read by serveMCP) is one the broker
// refuses (see above).
func (b *Broker) refuseInvalid(w http.ResponseWriter, r *http.Request) bool {
	body, ok := r.Context().Value(bodyKey{}).([]byte)
	if !ok {
		return false
	}
	status, reply := checkRequest(r, body)
	if reply == nil {
		return false
	}
	b.metrics.messagesRefused.Add(1)
	writeJSON(w, status, reply)
	return true
}

// checkRequest returns the HTTP status and the JSON-RPC error(s) of a POST
// with JSON body the broker refuses (see above), or a nil reply.
func checkRequest(r *http.Request, body []byte) (int, any) {
	stateless := isStateless(r)
	if v := r.Header.Get("Mcp-Protocol-Version"); v != "" && !slices.Contains(servedVersions, v) {
		reply := newError(singleID(body), mcp.CodeUnsupportedProtocolVersion, "Unsupported protocol version %.32q", v)
		reply.Error.Data, _ = json.Marshal(mcp.UnsupportedProtocolVersionData{Supported: servedVersions, Requested: v})
		return http.StatusBadRequest, reply
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return http.StatusBadRequest, newError(nil, jsonrpc.CodeParseError, "Parse error: empty body")
	}
	if trimmed[0] != '[' {
		status, reply := checkMessage(body, stateless)
		if reply == nil && !stateless && r.Header.Get(sessionIDHeader) == "" && !opensSession(body) {
			// The go-sdk would open a session for it and answer, from that
			// uninitialized session, an error with code 0.
			return http.StatusBadRequest, newError(singleID(body), jsonrpc.CodeInvalidRequest,
				"Bad Request: Mcp-Session-Id header is required (initialize first)")
		}
		if reply == nil {
			return 0, nil
		}
		return status, reply
	}
	var batch []json.RawMessage
	if json.Unmarshal(body, &batch) != nil {
		return http.StatusBadRequest, newError(nil, jsonrpc.CodeParseError, "Parse error: body is not valid JSON")
	}
	if len(batch) == 0 {
		return http.StatusBadRequest, newError(nil, jsonrpc.CodeInvalidRequest, "Invalid Request: empty batch")
	}
	var refused []*errorReply
	for _, raw := range batch {
		if _, reply := checkMessage(raw, stateless); reply != nil {
			refused = append(refused, reply)
		}
	}
	if refused == nil {
		return 0, nil
	}
	return http.StatusBadRequest, refused
}

// opensSession reports whether a session-era message may come without a
// session: an initialize, or a server/discover (which a client sends to
// learn the versions before it picks an era).
func opensSession(body []byte) bool {
	var m struct {
		Method string `json:"method"`
	}
	return json.Unmarshal(body, &m) == nil && (m.Method == "initialize" || m.Method == "server/discover")
}

// checkMessage checks one message; it returns a nil reply for a valid one.
func checkMessage(raw json.RawMessage, stateless bool) (int, *errorReply) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		if json.Valid(raw) {
			return http.StatusBadRequest, newError(nil, jsonrpc.CodeInvalidRequest, "Invalid Request: a message must be a JSON object")
		}
		return http.StatusBadRequest, newError(nil, jsonrpc.CodeParseError, "Parse error: body is not valid JSON")
	}
	var version string
	if json.Unmarshal(m["jsonrpc"], &version) != nil || version != "2.0" {
		return http.StatusBadRequest, newError(nil, jsonrpc.CodeInvalidRequest, `Invalid Request: "jsonrpc" must be "2.0"`)
	}
	rawID, hasID := m["id"]
	id := validRequestID(rawID)
	if hasID && id == nil {
		return http.StatusBadRequest, newError(nil, jsonrpc.CodeInvalidRequest, "Invalid Request: id must be a string or an integer")
	}
	if method, ok := m["method"]; ok {
		return checkCall(m, method, id, stateless)
	}
	_, hasResult := m["result"]
	errRaw, hasError := m["error"]
	switch {
	case !hasResult && !hasError:
		return http.StatusBadRequest, newError(id, jsonrpc.CodeInvalidRequest, "Invalid Request: a message needs a method, or a result or an error")
	case hasResult && hasError:
		return http.StatusBadRequest, newError(id, jsonrpc.CodeInvalidRequest, "Invalid Request: an answer has a result or an error, not both")
	case hasError && !bytes.HasPrefix(bytes.TrimLeft(errRaw, " \t\r\n"), []byte("{")):
		return http.StatusBadRequest, newError(id, jsonrpc.CodeInvalidRequest, "Invalid Request: error must be an object")
	case id == nil:
		return http.StatusBadRequest, newError(nil, jsonrpc.CodeInvalidRequest, "Invalid Request: an answer needs the id of the request it answers")
	}
	return 0, nil
}

// checkCall checks a request or notification (a message with a method).
func checkCall(m map[string]json.RawMessage, rawMethod, id json.RawMessage, stateless bool) (int, *errorReply) {
	var method string
	if json.Unmarshal(rawMethod, &method) != nil {
		return http.StatusBadRequest, newError(id, jsonrpc.CodeInvalidRequest, "Invalid Request: method must be a string")
	}
	kind, known := methodOf(method, stateless)
	_, hasParams := m["params"]
	switch {
	case !known && id == nil:
		return http.StatusBadRequest, newError(nil, jsonrpc.CodeMethodNotFound, "Method not found: %.64q", method)
	case !known && stateless:
		return http.StatusNotFound, newError(id, jsonrpc.CodeMethodNotFound, "Method not found: %.64q", method)
	case !known:
		return http.StatusOK, newError(id, jsonrpc.CodeMethodNotFound, "Method not found: %.64q", method)
	case (kind == notice || kind == noticeWithParams) && id != nil:
		return http.StatusBadRequest, newError(id, jsonrpc.CodeInvalidRequest, "Invalid Request: %q is a notification, which has no id", method)
	case (kind == callWithParams || kind == call) && id == nil:
		return http.StatusBadRequest, newError(nil, jsonrpc.CodeInvalidRequest, "Invalid Request: %q is a request, which needs an id", method)
	case (kind == callWithParams || kind == noticeWithParams) && !hasParams:
		status := http.StatusOK
		if id == nil {
			status = http.StatusBadRequest // a notification has no answer to carry the error
		}
		return status, newError(id, jsonrpc.CodeInvalidParams, "Invalid params: %q needs params", method)
	}
	return 0, nil
}

// validRequestID returns raw if it is a JSON-RPC id the go-sdk keeps as
// is: a string, or a number that is an integer (it truncates others, and
// its answer would then not carry the request's id). Otherwise nil.
func validRequestID(raw json.RawMessage) json.RawMessage {
	var v any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if len(raw) == 0 || d.Decode(&v) != nil {
		return nil
	}
	switch v := v.(type) {
	case string:
		return raw
	case json.Number:
		if _, err := strconv.ParseInt(v.String(), 10, 64); err == nil {
			return raw
		}
	}
	return nil
}

// singleID returns the id of body if it is a single message with a valid
// id, else nil.
func singleID(body []byte) json.RawMessage {
	var m struct {
		ID json.RawMessage `json:"id"`
	}
	if len(body) == 0 || json.Unmarshal(body, &m) != nil {
		return nil
	}
	return validRequestID(m.ID)
}

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/json"
}

// writeError writes one JSON-RPC error response; a nil id is null.
func writeError(w http.ResponseWriter, status int, id json.RawMessage, e *jsonrpc.Error) {
	reply := newError(id, 0, "")
	reply.Error = e
	writeJSON(w, status, reply)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Del("X-Content-Type-Options")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

// jsonErrors rewrites the go-sdk's text/plain refusals of a POST
// (http.Error: unknown session, bad Accept header...) into JSON-RPC errors
// with the request's id. Successful answers (JSON or SSE) pass unchanged;
// Unwrap lets http.ResponseController flush the SSE streams.
type jsonErrors struct {
	http.ResponseWriter
	id     json.RawMessage
	status int // of the refusal being rewritten; 0 when none
	text   bytes.Buffer
}

// maxRefusalText bounds the go-sdk's message kept for the rewritten error.
const maxRefusalText = 1024

func (w *jsonErrors) WriteHeader(code int) {
	if code >= 400 && w.status == 0 && strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain") {
		w.status = code
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *jsonErrors) Write(p []byte) (int, error) {
	if w.status == 0 {
		return w.ResponseWriter.Write(p)
	}
	if room := maxRefusalText - w.text.Len(); room > 0 {
		w.text.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (w *jsonErrors) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// finish writes the rewritten refusal, if any, once the handler returned.
func (w *jsonErrors) finish() {
	if w.status == 0 {
		return
	}
	code := int64(jsonrpc.CodeInvalidRequest)
	if w.status >= 500 {
		code = jsonrpc.CodeInternalError
	}
	writeError(w.ResponseWriter, w.status, w.id, &jsonrpc.Error{Code: code, Message: strings.TrimSpace(w.text.String())})
}
