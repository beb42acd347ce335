package mcptest

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Path is where Serve mounts the MCP endpoint.
const Path = "/mcp"

// Serve serves srv over Streamable HTTP at Path on addr (e.g.
// "127.0.0.1:0"), with stateful sessions: every Serve call starts with no
// sessions, so a server stopped and served again answers 404 to the session
// ids of its previous life, as a restarted real server would.
//
// It returns the endpoint URL and a stop function that closes the listener,
// the open connections and the server's sessions, then waits for the serving
// goroutine. stop is idempotent and is also called when ctx is done. Serve a
// given srv from one Serve call at a time: stop closes all of srv's sessions.
func Serve(ctx context.Context, addr string, srv *mcp.Server) (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("mcptest: listen on %s: %w", addr, err)
	}
	url, stop = serve(ctx, ln, srv)
	return url, stop, nil
}

// ServeListener is Serve on an existing listener, which it takes over.
func ServeListener(ctx context.Context, ln net.Listener, srv *mcp.Server) (url string, stop func()) {
	return serve(ctx, ln, srv)
}

func serve(ctx context.Context, ln net.Listener, srv *mcp.Server) (string, func()) {
	mux := http.NewServeMux()
	mux.Handle(Path, mcp.NewStreamableHTTPHandler(
		func(*http.Request) *mcp.Server { return srv }, nil))
	hs := &http.Server{Handler: mux}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Printf("mcptest: serve %s: %v", ln.Addr(), err)
		}
	}()
	stop := sync.OnceFunc(func() {
		// Close connections first so that no new session appears while the
		// existing ones are closed; closing the sessions releases the hanging
		// GET streams and the sessions' goroutines.
		hs.Close()
		for ss := range srv.Sessions() {
			ss.Close()
		}
		<-done
	})
	unregister := context.AfterFunc(ctx, stop)
	return "http://" + ln.Addr().String() + Path, func() {
		unregister()
		stop()
	}
}
