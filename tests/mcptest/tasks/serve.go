package tasks

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"sync"
)

// Path is where Serve mounts the MCP endpoint.
const Path = "/mcp"

// Serve serves a new fixture server (see New) over HTTP at Path on addr
// (e.g. "127.0.0.1:0"). It returns the endpoint URL and an idempotent stop
// function, also called when ctx is done, that closes the listener and the
// connections, cancels the tasks and waits for everything to end.
func Serve(ctx context.Context, addr string, opts Options) (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("tasks: listen on %s: %w", addr, err)
	}
	srv := New(opts)
	mux := http.NewServeMux()
	mux.Handle(Path, srv)
	hs := &http.Server{Handler: mux}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Printf("tasks: serve %s: %v", ln.Addr(), err)
		}
	}()
	stopOnce := sync.OnceFunc(func() {
		hs.Close()
		<-done
		srv.Close() // after the handlers: no task starts once the store is closed
	})
	unregister := context.AfterFunc(ctx, stopOnce)
	return "http://" + ln.Addr().String() + Path, func() {
		unregister()
		stopOnce()
	}, nil
}
