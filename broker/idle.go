package broker

import (
	"net/http"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Idle client sessions.
//
// Clients rarely end their sessions with DELETE: most just go away, and
// their broker sessions (and the router's backend sessions, which an LRU
// bounds) would stay forever. The broker closes a session that is idle for
// SessionIdleTimeout: no request to the broker for that long and no GET
// stream open. An open GET stream counts as activity (go-sdk's own session
// timeout counts only POSTs), because a client holding one is plainly
// there, although its calls go to backends through Envoy and never reach
// the broker. A client without one whose only traffic is routed calls
// loses its broker session after the timeout; its next request to the
// broker gets 404, and it starts a new session, as MCP clients must.

// DefaultSessionIdleTimeout is mcpgw-broker's -session-idle-timeout.
const DefaultSessionIdleTimeout = 30 * time.Minute

// activity is what the broker saw of one client session.
type activity struct {
	last    time.Time
	streams int // GET streams open
}

// sessionActivity tracks the client sessions' activity by session id.
type sessionActivity struct {
	mu   sync.Mutex
	byID map[string]*activity
}

// begin records a request of the session id; release must be called when
// it ends.
func (a *sessionActivity) begin(id string, stream bool) (release func()) {
	a.mu.Lock()
	defer a.mu.Unlock()
	act := a.byID[id]
	if act == nil {
		act = &activity{}
		a.byID[id] = act
	}
	act.last = time.Now()
	if stream {
		act.streams++
	}
	return func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		act.last = time.Now()
		if stream {
			act.streams--
		}
	}
}

// idle reports whether the session id has been idle since before cutoff; a
// session seen for the first time counts as active now.
func (a *sessionActivity) idle(id string, now, cutoff time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	act := a.byID[id]
	if act == nil {
		a.byID[id] = &activity{last: now}
		return false
	}
	return act.streams == 0 && act.last.Before(cutoff)
}

// forget drops the records of sessions that are gone (except those with a
// request in progress).
func (a *sessionActivity) forget(live map[string]bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for id, act := range a.byID {
		if !live[id] && act.streams == 0 {
			delete(a.byID, id)
		}
	}
}

// trackActivity wraps the session-era handler to record activity.
func (b *Broker) trackActivity(next http.Handler) http.Handler {
	if b.opts.SessionIdleTimeout <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id := r.Header.Get(sessionIDHeader); id != "" {
			defer b.activity.begin(id, r.Method == http.MethodGet)()
		}
		next.ServeHTTP(w, r)
	})
}

// reapIdle closes idle sessions every quarter of the timeout until done.
func (b *Broker) reapIdle(done <-chan struct{}) {
	timeout := b.opts.SessionIdleTimeout
	tick := time.NewTicker(max(timeout/4, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case now := <-tick.C:
			b.closeIdle(now, now.Add(-timeout))
		}
	}
}

// closeIdle closes the sessions idle since before cutoff.
func (b *Broker) closeIdle(now, cutoff time.Time) {
	b.mu.Lock()
	servers := b.serversLocked()
	b.mu.Unlock()
	live := map[string]bool{}
	var idle []*mcp.ServerSession
	for _, srv := range servers {
		for ss := range srv.Sessions() {
			id := ss.ID()
			live[id] = true
			if b.activity.idle(id, now, cutoff) {
				idle = append(idle, ss)
			}
		}
	}
	for _, ss := range idle {
		b.log.Debug("closing idle client session", "session", ss.ID())
		ss.Close()
		b.metrics.sessionsExpired.Add(1)
	}
	b.activity.forget(live)
}
