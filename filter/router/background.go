package router

import (
	"context"
	"errors"
	"sync"
)

// background owns the goroutines the router starts on its own, off the
// request path: backend session opens (sessions.go), the notifications it
// forwards to backend sessions (cancellations, logging levels: client.go)
// and the backend sessions it ends (stream.go). Each runs with a context
// that Router.Close cancels, and Close waits for all of them, so a closed
// Router leaves nothing running and no request in flight.
type background struct {
	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex // orders go's Add with close's Wait
	closed bool
	wg     sync.WaitGroup
}

// errRouterClosed is the error of a session open asked of a closed Router.
var errRouterClosed = errors.New("router closed")

func newBackground() *background {
	ctx, cancel := context.WithCancel(context.Background())
	return &background{ctx: ctx, cancel: cancel}
}

// goOwned runs f on a goroutine with the background's context, unless the
// background is closed; it reports whether f runs.
func (b *background) goOwned(f func(ctx context.Context)) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.wg.Go(func() { f(b.ctx) })
	return true
}

// close cancels the goroutines' context and waits for them to return.
func (b *background) close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.cancel()
	b.wg.Wait()
}

// Close stops the Router's background work: it stops the revocation feed
// follower (follow.go), cancels the backend session opens, notifications
// and session ends still running and waits for them (they are network
// requests, which return at once when cancelled), and closes the idle
// connections of the Router's own HTTP client. Requests are decided
// afterwards with what the Router knew by then. A session
// open asked for afterwards fails (RejectBackendUnavailable); streams may
// otherwise go on using the Router. Adapters call it when the last filter
// config using the Router goes away. It is idempotent.
func (r *Router) Close() {
	r.stopFollowing()
	r.bg.close()
	if r.ownClient {
		r.init.client.CloseIdleConnections()
	}
}
