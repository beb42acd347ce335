package router

import "strings"

// Stream resumption (session era, SSE).
//
// A backend that keeps an event store may end a routed call's SSE stream
// early (2025-11-25, SEP-1699: "poll later") or lose it to the network; the
// client then resumes with a GET carrying Last-Event-ID. The router gives
// the events of routed streams gateway event ids that name the server
// (relay.go, appendEventID), so that GET goes to that server's backend
// session of the client's gateway session, with the backend's own event id.
// A GET with any other Last-Event-ID is the broker's (its own streams).

// routeResume routes a resuming GET whose Last-Event-ID is a gateway event
// id. It reports false, leaving the request to the broker, otherwise.
func (s *Stream) routeResume(lastEventID string) bool {
	if s.gateway == "" || s.noVirtual || s.stateless || !s.live() {
		return false
	}
	name, kind, original, ok := splitRelayID(lastEventID)
	if !ok || kind != 'e' || original == "" {
		return false
	}
	srv := s.t.byName[name]
	if srv == nil {
		return false
	}
	backend, ok := s.r.sessions.Get(s.gateway, srv.Name)
	if !ok {
		return false
	}
	s.resumeID = strings.Clone(original) // the header's memory is the host's
	s.server, s.backend, s.routed, s.toolName = srv, backend, true, ""
	s.r.Metrics.StreamsResumed.Add(1)
	s.routeNow()
	return true
}
