package tasks

import (
	"context"

	"github.com/mcpgw/mcpgw/tests/mcptest"
)

// Path is where Serve mounts the MCP endpoint.
const Path = mcptest.Path

// Serve serves a new fixture server (see New) over HTTP at Path on addr
// (e.g. "127.0.0.1:0"). It returns the endpoint URL and an idempotent stop
// function, also called when ctx is done, that closes the listener and the
// connections, cancels the tasks (the closed store starts no new one) and
// waits for everything to end.
func Serve(ctx context.Context, addr string, opts Options) (url string, stop func(), err error) {
	srv := New(opts)
	return mcptest.ServeHandler(ctx, addr, srv, srv.Close)
}
