package router

import (
	"github.com/mcpgw/mcpgw/filter/config"
)

// ResponseAction tells the adapter what to do with response headers.
type ResponseAction uint8

const (
	// ResponseContinue: apply ApplyResponse and let the response through.
	ResponseContinue ResponseAction = iota
	// ResponseReply: replace the response with Stream.Reply().
	ResponseReply
	// ResponseReplay: the backend lost the call's session before running
	// the call (replay.go). Stop the response (drop its body and
	// trailers), call Stream.Replay on a goroutine (it does network I/O),
	// then come back to the host's thread and send what it decided, in
	// place of the response.
	ResponseReplay
	// ResponseAnswer (from Replay only): send the replayed call's answer,
	// Stream.Answer() with the headers ApplyAnswer writes, in place of the
	// response.
	ResponseAnswer
)

// ResponseHeaders watches the response to a routed call. fromUpstream must
// be true only when the backend itself produced the status (not Envoy).
//
// A backend 404 means the backend forgot our session (it restarted, or
// expired it) and did not run the call. The router forgets the session too
// and replays the call on a new one (replay.go); what cannot be replayed
// (an answer to a backend's request, a cancellation, a resumed stream:
// they belong to the lost session) gets a retryable JSON-RPC error instead
// of the 404: passed through, a 404 would tell the client its gateway
// session is gone.
//
// A stateless-era call holds no backend session: a 404 is the backend's
// answer (e.g. method not found, as that era specifies) and passes.
func (s *Stream) ResponseHeaders(status int, fromUpstream bool) ResponseAction {
	if !s.routed || status != 404 || !fromUpstream || s.stateless {
		// No replay: the copy kept for one goes now, rather than stay
		// with a long-lived (SSE) response until the stream ends.
		putBuf(&s.replayBody)
		return ResponseContinue
	}
	s.invalidateBackend()
	if s.replayable() {
		return ResponseReplay
	}
	s.rejection = RejectBackendSessionLost
	s.r.Metrics.Rejected[RejectBackendSessionLost].Add(1)
	return ResponseReply
}

// invalidateBackend forgets the backend session the call used, unless a
// newer one replaced it meanwhile.
func (s *Stream) invalidateBackend() {
	if s.r.sessions.Invalidate(s.gateway, s.server.Name, s.backend) {
		s.r.Metrics.SessionsLost.Add(1)
		s.r.log.Info("backend session lost; invalidated", "server", s.server.Name)
	}
}

// ApplyResponse rewrites response headers of a routed call: the client must
// only ever see its gateway session id, never a backend's.
//
// A JSON body whose task id gets rewritten (WatchResponseBody) changes
// length: its content-length goes, and Envoy frames the body itself.
func (s *Stream) ApplyResponse(h HeaderWriter) {
	if s.routed && s.gateway != "" {
		h.Set(config.HeaderSessionID, s.gateway)
	}
	if s.sse.on && s.sse.whole {
		h.Remove("content-length")
	}
}
