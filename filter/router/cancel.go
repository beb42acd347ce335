package router

import (
	"context"
	"strings"

	"github.com/tidwall/gjson"
)

// Cancellation (session era).
//
// A client cancels a request it sent with notifications/cancelled, naming
// the request's id. For a call the router routed to a backend, only that
// backend can stop the work (closing the call's HTTP stream does not stop
// it), and it knows the call by the client's own id: the router does not
// rewrite the ids of routed calls. Rather than track every routed call on
// the hot path for the rare cancellation, the router sends the
// cancellation to every backend session of the gateway session, in the
// background, and lets it go on to the broker (which may have sent the
// request itself). A client numbers its requests within its session, so
// only the one backend that runs the call knows the id; the others ignore
// it, as MCP requires of an unknown id.
//
// A cancellation of a backend's request to the client names a relay id
// (relay.go): it is routed to that backend alone, with the original id
// restored.

// cancel handles a client's notifications/cancelled naming req
// (params.requestId; see above). It reports true when it routed the
// notification (a relay id); otherwise the notification goes on to the
// broker.
func (s *Stream) cancel(json string, req gjson.Result) bool {
	if s.gateway == "" || s.noVirtual || !s.live() {
		return false
	}
	if req.Type != gjson.String && req.Type != gjson.Number {
		return false
	}
	if req.Type == gjson.String {
		if name, kind, original, ok := parseRelayID(req.Str); ok {
			return s.routeRelayed(json, req, s.t.byName[name], kind, original)
		}
	}
	backends, initVersion := s.r.sessions.backends(s.gateway)
	if len(backends) == 0 {
		return false
	}
	s.r.Metrics.CancelsRelayed.Add(1)
	in, body := s.r.init, strings.Clone(json) // json aliases host memory
	s.eachBackend(backends, initVersion, "notifications/cancelled", func(ctx context.Context, srv *Server, sid, version string) error {
		return in.notify(ctx, srv, sid, version, body)
	})
	return false
}
