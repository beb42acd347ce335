package broker

import (
	"net/http"
	"sync"
	"time"
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
// loses its broker session after the timeout; the session goes on the
// revocation feed (revocations.go), so its next request gets 404, routed
// calls too, and it starts a new session, as MCP clients must.

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

// trackSessions wraps a session-era handler: it records the activity of
// sessions (for SessionIdleTimeout) and the DELETEs that end one, which go
// on the revocation feed (revocations.go).
func (b *Broker) trackSessions(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(sessionIDHeader)
		switch {
		case id == "":
		case r.Method == http.MethodDelete:
			sw := &statusWriter{ResponseWriter: w}
			next.ServeHTTP(sw, r)
			if sw.status == http.StatusNoContent {
				b.revocations.add(id)
				b.metrics.sessionsDeleted.Add(1)
			}
			return
		case b.opts.SessionIdleTimeout > 0:
			defer b.activity.begin(id, r.Method == http.MethodGet)()
		}
		next.ServeHTTP(w, r)
	})
}

// statusWriter records the status of a response (the go-sdk answers a
// DELETE with 204 once the session is closed).
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// maxSweepInterval is the longest wait between two sweeps.
const maxSweepInterval = time.Minute

// sweep runs sweepSessions every quarter of the idle timeout (at most
// maxSweepInterval) until done.
func (b *Broker) sweep(done <-chan struct{}) {
	every := maxSweepInterval
	if t := b.opts.SessionIdleTimeout; t > 0 {
		every = min(max(t/4, 10*time.Millisecond), maxSweepInterval)
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case now := <-tick.C:
			b.sweepSessions(now)
		}
	}
}

// sweepSessions closes the client sessions that are over at now: idle
// since before now minus SessionIdleTimeout (when set), past
// gateway.sessionMaxLifetime, or with an id no key of the ring verifies
// any more (a grace period ended). Idle ones go on the revocation feed: the
// routers cannot tell them from their ids, as they can the others. It also
// prunes the feed.
func (b *Broker) sweepSessions(now time.Time) {
	b.mu.Lock()
	servers := b.serversLocked()
	b.mu.Unlock()
	codec := b.codec.Load()
	idleCutoff := now.Add(-b.opts.SessionIdleTimeout)
	live := map[string]bool{}
	for _, srv := range servers {
		for ss := range srv.Sessions() {
			id := ss.ID()
			live[id] = true
			forged, expired := false, false
			if codec != nil {
				forged, expired = b.sessionOver(codec, id, now)
			}
			switch {
			case forged || expired:
				b.log.Debug("closing a client session past its lifetime or key", "session", id)
				ss.Close()
				b.metrics.sessionsEnded.Add(1)
			case b.opts.SessionIdleTimeout > 0 && b.activity.idle(id, now, idleCutoff):
				b.log.Debug("closing idle client session", "session", id)
				ss.Close()
				b.revocations.add(id)
				b.metrics.sessionsExpired.Add(1)
			}
		}
	}
	b.activity.forget(live)
	b.revocations.prune(now, time.Duration(b.lifetime.Load()))
}
