package router

import (
	"context"
	"sync"

	lru "github.com/hashicorp/golang-lru/v2"
)

// Sessions maps (gateway session, server) to the backend session the router
// opened on the client's behalf. It is bounded: the least recently used
// gateway sessions are forgotten first, and a forgotten backend session is
// simply initialized again on the next call.
type Sessions struct {
	cache *lru.Cache[string, *gatewaySession]

	mu       sync.Mutex
	inflight map[string]*pendingInit // key: gateway + "\x00" + server
	// bg runs the opens (the Router's, which closes it).
	bg *background
}

// gatewaySession holds the backend sessions of one gateway session. Few
// servers per client are typical, so a slice beats a map in time and memory.
type gatewaySession struct {
	mu       sync.Mutex
	backends []backendSession
	client   clientContext
}

type backendSession struct {
	server string // Server.Name; shares the table's string
	id     string
}

type pendingInit struct {
	done chan struct{}
	id   string
	err  error
}

func newSessions(size int) *Sessions {
	c, _ := lru.New[string, *gatewaySession](size) // only errors on size <= 0
	return &Sessions{cache: c, inflight: map[string]*pendingInit{}, bg: newBackground()}
}

func (s *Sessions) resize(size int) {
	if size > 0 {
		s.cache.Resize(size)
	}
}

// Len returns the number of gateway sessions held.
func (s *Sessions) Len() int { return s.cache.Len() }

// Get returns the backend session of gateway for server. It does not
// allocate, so gateway may alias host memory.
func (s *Sessions) Get(gateway, server string) (string, bool) {
	gs, ok := s.cache.Get(gateway)
	if !ok {
		return "", false
	}
	gs.mu.Lock()
	defer gs.mu.Unlock()
	for _, b := range gs.backends {
		if b.server == server {
			return b.id, true
		}
	}
	return "", false
}

// Put records id as gateway's backend session for server.
func (s *Sessions) Put(gateway, server, id string) {
	gs := s.entry(gateway)
	gs.mu.Lock()
	defer gs.mu.Unlock()
	for i := range gs.backends {
		if gs.backends[i].server == server {
			gs.backends[i].id = id
			return
		}
	}
	gs.backends = append(gs.backends, backendSession{server: server, id: id})
}

// Invalidate forgets gateway's backend session for server if it is still
// id (a newer session opened meanwhile is kept). It reports whether an
// entry was removed.
func (s *Sessions) Invalidate(gateway, server, id string) bool {
	gs, ok := s.cache.Peek(gateway)
	if !ok {
		return false
	}
	gs.mu.Lock()
	defer gs.mu.Unlock()
	for i, b := range gs.backends {
		if b.server == server && b.id == id {
			gs.backends = append(gs.backends[:i], gs.backends[i+1:]...)
			return true
		}
	}
	return false
}

// Drop forgets all backend sessions of gateway (the client ended it) and
// returns them, so the caller can end them on the backends.
func (s *Sessions) Drop(gateway string) []backendSession {
	gs, ok := s.cache.Peek(gateway)
	if !ok {
		return nil
	}
	s.cache.Remove(gateway)
	gs.mu.Lock()
	defer gs.mu.Unlock()
	// Detach the slice: an Invalidate that found gs before the Remove would
	// otherwise shift elements in place while the caller reads them, and a
	// second Drop would return (and end) the same sessions again.
	dropped := gs.backends
	gs.backends = nil
	return dropped
}

// ensure returns gateway's backend session for server, running open at most
// once at a time per (gateway, server) when there is none: concurrent first
// calls share one backend session instead of each opening their own.
//
// The open runs on its own goroutine, detached from the callers'
// cancellation: a caller that goes away (its client hung up, its stream was
// destroyed) returns at once with ctx's error, while the open completes for
// the others and stores the session for the next call. open's HTTP client
// timeout bounds it, and Router.Close cancels it.
func (s *Sessions) ensure(ctx context.Context, gateway, server string, open func(context.Context) (string, error)) (string, error) {
	if id, ok := s.Get(gateway, server); ok {
		return id, nil
	}
	p := s.pending(gateway, server, open)
	select {
	case <-p.done:
		return p.id, p.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// pending returns the in-flight open for (gateway, server), starting one if
// there is none.
func (s *Sessions) pending(gateway, server string, open func(context.Context) (string, error)) *pendingInit {
	key := gateway + "\x00" + server
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.inflight[key]; ok {
		return p
	}
	// Check again under the lock: an open that finished between the caller's
	// Get and this Lock has stored its session (Put happens before its
	// inflight entry is deleted under s.mu) and must not be opened twice.
	if id, ok := s.Get(gateway, server); ok {
		p := &pendingInit{done: make(chan struct{}), id: id}
		close(p.done)
		return p
	}
	p := &pendingInit{done: make(chan struct{})}
	started := s.bg.goOwned(func(bgCtx context.Context) {
		p.id, p.err = open(bgCtx)
		if p.err == nil {
			s.Put(gateway, server, p.id)
		}
		s.mu.Lock()
		delete(s.inflight, key)
		s.mu.Unlock()
		close(p.done)
	})
	if !started {
		p.err = errRouterClosed
		close(p.done)
		return p
	}
	s.inflight[key] = p
	return p
}
