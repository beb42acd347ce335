package router

import (
	"context"
	"strings"
)

// OpenSession opens the backend session an OpenSession action asked for.
// It blocks on network I/O: call it on a goroutine, never on a host worker
// thread. It returns Route or Reply; concurrent first calls of one client to
// one server share a single backend session.
func (s *Stream) OpenSession(ctx context.Context) Action {
	id, err := s.ensureBackend(ctx)
	if err != nil {
		s.r.log.Warn("backend session init failed", "server", s.server.Name, "error", err)
		return s.rejectBody(RejectBackendUnavailable)
	}
	s.backend = id
	return s.routeNow()
}

// ensureBackend returns the gateway session's backend session with the
// call's server, opening one (shared with concurrent callers) if there is
// none.
func (s *Stream) ensureBackend(ctx context.Context) (string, error) {
	srv := s.server
	// The open may outlive this call (ensure runs it detached), and the
	// adapter may then release and reuse the Stream: it must capture what it
	// needs, never read s.
	// gateway may alias s.gatewayBuf, which the adapter's next request
	// overwrites: the detached open gets its own copy.
	r, header, gateway := s.r, s.protocolVersion, strings.Clone(s.gateway)
	return r.sessions.ensure(ctx, gateway, srv.Name, func(ctx context.Context) (string, error) {
		var c clientContext
		c.capabilities, c.version, c.level = r.sessions.Client(gateway)
		c.version = backendVersion(header, c.version)
		id, err := r.init.open(ctx, srv, c)
		if err != nil {
			r.Metrics.SessionInitFail.Add(1)
			return "", err
		}
		r.Metrics.SessionInits.Add(1)
		// A logging/setLevel that arrived during the open was forwarded to
		// the sessions known then, without this one: catch up.
		if _, _, level := r.sessions.Client(gateway); level != c.level && level != "" && id != "" {
			if err := r.init.setLevel(ctx, srv, id, c.version, level); err != nil {
				r.log.Warn("backend logging/setLevel failed", "server", srv.Name, "error", err)
			}
		}
		return id, nil
	})
}
