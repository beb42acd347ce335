package host

import "github.com/mcpgw/mcpgw/filter/router"

// replyDetails are the response code details of the router's local replies
// (they show in access logs as %RESPONSE_CODE_DETAILS%).
var replyDetails = func() []string {
	d := make([]string, numRejections)
	for r := range d {
		d[r] = "mcpgw_" + router.Rejection(r).String()
	}
	return d
}()

// ReplyDetails returns the response code details of a local reply for r.
func ReplyDetails(r router.Rejection) string { return replyDetails[r] }

// ReplayedDetails are the response code details of a replayed call's
// answer, sent as a local reply (router.Stream.Replay).
const ReplayedDetails = "mcpgw_replayed"

// InternalErrorDetails are the response code details of InternalErrorBody.
const InternalErrorDetails = "mcpgw_internal_error"

// InternalErrorStatus is the HTTP status of a request the adapter failed on
// (a recovered panic).
const InternalErrorStatus = 500

// internalErrorBody is the JSON-RPC reply to a request the adapter failed on.
const internalErrorBody = `{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"Internal error"}}`

// InternalErrorBody returns the JSON-RPC reply to a request the adapter
// failed on, as static bytes the caller must not modify.
func InternalErrorBody() []byte { return internalError }

var internalError = []byte(internalErrorBody)

// ReplyContentType is the content type of every local reply.
const ReplyContentType = "application/json"

// ParseContentLength returns -1 when v is absent or not a plain decimal.
// (strconv would allocate an error for a malformed value.)
func ParseContentLength(v string) int64 {
	if v == "" || len(v) > 18 {
		return -1
	}
	var n int64
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return -1
		}
		n = n*10 + int64(v[i]-'0')
	}
	return n
}
