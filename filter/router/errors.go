package router

import (
	"strconv"
)

// JSON-RPC error codes (JSON-RPC 2.0 and MCP).
const (
	CodeParseError     = -32700
	CodeInvalidRequest = -32600
	CodeMethodNotFound = -32601
	CodeInvalidParams  = -32602
	CodeInternalError  = -32603
	// CodeHeaderMismatch: the Mcp-Method or Mcp-Name header is missing or
	// disagrees with the body (MCP 2026-07-28).
	CodeHeaderMismatch = -32020
)

// Rejection classifies every way the router refuses a request. Each has one
// HTTP status, one JSON-RPC code and one message, so adapters, logs and
// metrics agree.
type Rejection uint8

const (
	RejectNone                 Rejection = iota
	RejectParse                          // body is not JSON
	RejectNotJSONRPC                     // JSON, but not a JSON-RPC 2.0 message
	RejectBatch                          // a batch where the protocol version forbids it
	RejectTooLarge                       // body above gateway.maxRequestBodyBytes
	RejectContentType                    // POST body that is not application/json
	RejectMissingName                    // tools/call or prompts/get without params.name
	RejectUnknownTool                    // no server owns the name's prefix
	RejectMissingSession                 // routed call without mcp-session-id
	RejectUnknownSession                 // mcp-session-id not minted by our broker
	RejectBackendUnavailable             // backend session could not be initialized
	RejectBackendSessionLost             // backend answered 404 for its session
	RejectNotReady                       // no config loaded yet
	RejectUnknownVirtualServer           // the path selects a virtual server the config lacks
	RejectNotInVirtualServer             // the selected virtual server does not offer the tool (or any prompt)
	RejectOrigin                         // Origin header present and not allowed (DNS rebinding)
	RejectHeaderMismatch                 // stateless era: Mcp-Method/Mcp-Name (or MCP-Protocol-Version) missing or not the body's
	RejectAmbiguousResponse              // a backend's message in a routed response is ambiguous (dropped)
	RejectInternalPath                   // the path names an internal endpoint of the broker (config.IsInternalPath)
	numRejections
)

type rejectionInfo struct {
	name    string
	status  int
	code    int
	message string
}

var rejections = [numRejections]rejectionInfo{
	RejectNone:               {"none", 200, 0, ""},
	RejectParse:              {"parse_error", 400, CodeParseError, "Parse error: body is not valid JSON"},
	RejectNotJSONRPC:         {"invalid_request", 400, CodeInvalidRequest, "Invalid Request: not a JSON-RPC 2.0 message"},
	RejectBatch:              {"batch_not_allowed", 400, CodeInvalidRequest, "Invalid Request: JSON-RPC batches are not allowed in this protocol version"},
	RejectTooLarge:           {"body_too_large", 413, CodeInvalidRequest, "Invalid Request: body too large"},
	RejectContentType:        {"unsupported_content_type", 415, CodeInvalidRequest, "Invalid Request: Content-Type must be application/json"},
	RejectMissingName:        {"missing_name", 200, CodeInvalidParams, "Invalid params: params.name is required"},
	RejectUnknownTool:        {"unknown_tool", 200, CodeInvalidParams, "Invalid params: unknown tool or prompt"},
	RejectMissingSession:     {"missing_session", 400, CodeInvalidRequest, "Bad Request: Mcp-Session-Id header is required"},
	RejectUnknownSession:     {"unknown_session", 404, CodeInvalidRequest, "Session not found"},
	RejectBackendUnavailable: {"backend_unavailable", 200, CodeInternalError, "Backend MCP server unavailable"},
	RejectBackendSessionLost: {"backend_session_lost", 200, CodeInternalError, "Backend MCP server lost its session; it will be re-initialized on the next call, please retry"},
	RejectNotReady:           {"not_ready", 503, CodeInternalError, "Gateway not ready: no configuration loaded"},
	// 404, as the broker answers any request to an unknown virtual server:
	// a client whose virtual server was removed re-initializes, and then
	// gets the broker's error naming it.
	RejectUnknownVirtualServer: {"unknown_virtual_server", 404, CodeInvalidRequest, "Not found: no such virtual server"},
	RejectNotInVirtualServer:   {"not_in_virtual_server", 200, CodeInvalidParams, "Invalid params: the virtual server does not offer this tool or prompt"},
	// 403, as MCP requires for an invalid Origin (2025-11-25 transports,
	// "Security Warning"): a browser page of another origin, possibly via
	// DNS rebinding, must not reach the gateway.
	RejectOrigin: {"origin_not_allowed", 403, CodeInvalidRequest, "Forbidden: Origin not allowed"},
	// MCP 2026-07-28: an intermediary that reads the body must refuse a
	// request whose standard headers disagree with it.
	RejectHeaderMismatch: {"header_mismatch", 400, CodeHeaderMismatch, "Bad Request: Mcp-Method, Mcp-Name and MCP-Protocol-Version headers are required and must match the body"},
	// Not a local reply: the response is under way. An ambiguous SSE event
	// is dropped; an ambiguous JSON answer becomes this error (the status
	// is the backend's, already sent; 200 as for the other backend errors).
	RejectAmbiguousResponse: {"ambiguous_response", 200, CodeInternalError, "Backend MCP server sent an ambiguous message (a member occurs twice or in another case)"},
	// Not the broker's 404 for an unknown session: the path is not an MCP
	// endpoint at all.
	RejectInternalPath: {"internal_path", 404, CodeInvalidRequest, "Not found"},
}

// String returns the rejection's stable metric/log name.
func (r Rejection) String() string { return rejections[r].name }

// Status returns the HTTP status for the rejection.
func (r Rejection) Status() int { return rejections[r].status }

// Code returns the JSON-RPC error code for the rejection.
func (r Rejection) Code() int { return rejections[r].code }

// Message returns the client-facing message.
func (r Rejection) Message() string { return rejections[r].message }

// appendErrorBody appends a JSON-RPC error response to dst. rawID is the
// request's id as raw JSON; empty means null (the id is unknown).
func appendErrorBody(dst []byte, r Rejection, rawID []byte) []byte {
	dst = append(dst, `{"jsonrpc":"2.0","id":`...)
	if len(rawID) == 0 {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, rawID...)
	}
	dst = append(dst, `,"error":{"code":`...)
	dst = strconv.AppendInt(dst, int64(r.Code()), 10)
	dst = append(dst, `,"message":`...)
	dst = strconv.AppendQuote(dst, r.Message())
	return append(dst, "}}"...)
}
