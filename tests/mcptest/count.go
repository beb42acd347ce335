package mcptest

import (
	"context"
	"sync/atomic"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// CountRequests counts the requests for method that srv handles from now
// on (method "tools/list" counts the re-lists of a stateless backend's
// probes, "ping" a session's pings). A test that checks that something does
// not happen waits for a number of the events that could make it happen,
// instead of sleeping.
func CountRequests(srv *mcp.Server, method string) *atomic.Int64 {
	var n atomic.Int64
	srv.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, m string, req mcp.Request) (mcp.Result, error) {
			if m == method {
				n.Add(1)
			}
			return next(ctx, m, req)
		}
	})
	return &n
}
