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
	return ServeOptions(ctx, addr, srv, nil)
}

// ServeOptions is Serve with handler options (e.g. an EventStore, which
// makes the server's SSE streams resumable).
func ServeOptions(ctx context.Context, addr string, srv *mcp.Server, opts *mcp.StreamableHTTPOptions) (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("mcptest: listen on %s: %w", addr, err)
	}
	url, stop = serve(ctx, ln, srv, opts)
	return url, stop, nil
}

// ServeListener is Serve on an existing listener, which it takes over.
func ServeListener(ctx context.Context, ln net.Listener, srv *mcp.Server) (url string, stop func()) {
	return serve(ctx, ln, srv, nil)
}

func serve(ctx context.Context, ln net.Listener, srv *mcp.Server, opts *mcp.StreamableHTTPOptions) (string, func()) {
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, opts)
	// Closing the sessions releases the hanging GET streams and the
	// sessions' goroutines.
	return serveHandler(ctx, ln, h, func() {
		for ss := range srv.Sessions() {
			ss.Close()
		}
	})
}

// ServeHandler serves h at Path on addr like Serve, for servers that are
// not a plain *mcp.Server. stop closes the listener and the connections,
// then calls release (if not nil), which must end handlers that would
// otherwise wait forever (such as GET streams), then waits for the serving
// goroutine.
func ServeHandler(ctx context.Context, addr string, h http.Handler, release func()) (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("mcptest: listen on %s: %w", addr, err)
	}
	url, stop = serveHandler(ctx, ln, h, release)
	return url, stop, nil
}

func serveHandler(ctx context.Context, ln net.Listener, h http.Handler, release func()) (string, func()) {
	mux := http.NewServeMux()
	mux.Handle(Path, h)
	hs := &http.Server{Handler: mux}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Printf("mcptest: serve %s: %v", ln.Addr(), err)
		}
	}()
	stop := sync.OnceFunc(func() {
		// Close connections first so that no new request arrives while
		// release ends the ones in progress.
		hs.Close()
		if release != nil {
			release()
		}
		<-done
	})
	unregister := context.AfterFunc(ctx, stop)
	return "http://" + ln.Addr().String() + Path, func() {
		unregister()
		stop()
	}
}
