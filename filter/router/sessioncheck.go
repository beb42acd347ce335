package router

import (
	"time"

	"github.com/tidwall/gjson"

	"github.com/mcpgw/mcpgw/filter/sessionid"
)

// sessionState is the router's verdict on a request's gateway session id.
type sessionState uint8

const (
	sessionNone   sessionState = iota // no id, or not checked
	sessionForged                     // not signed by a key of the ring (or not an id)
	sessionEnded                      // genuine, but over (revocation.go)
	sessionLive                       // genuine and live
)

// checkSession verifies the request's gateway session id and applies the
// termination rules (revocation.go); the verdict is kept in s.session. An
// id that is not ours (forged, or of a key no longer in the ring) is left
// to the broker on the paths it serves, which answers 404 itself. It does
// not allocate.
func (s *Stream) checkSession() sessionState {
	c, ok := s.t.codec.Verify(s.gateway, anonymous)
	switch {
	case !ok:
		s.session = sessionForged
	case s.r.revoked.ended(&c, time.Now().Unix(), s.t.maxLifetime):
		s.session = sessionEnded
	default:
		s.session = sessionLive
	}
	return s.session
}

// anonymous is the principal of every session while the gateway
// authenticates nobody.
const anonymous = ""

// live reports whether the request names a live gateway session.
func (s *Stream) live() bool { return s.session == sessionLive }

// rejectEnded refuses a message naming a session that is over (404, as for
// an unknown session), echoing the message's id if it has a valid one.
func (s *Stream) rejectEnded(m *message) Action {
	if m.kind == '{' && !m.ambiguous && m.jsonrpc.Str == "2.0" &&
		(m.id.Type == gjson.String || m.id.Type == gjson.Number) {
		s.keepID(m.id.Raw)
	}
	return s.rejectBody(RejectUnknownSession)
}

// minted reports whether id (a new session's, from the broker's answer to
// an initialize) is signed by a key of the ring.
func (s *Stream) minted(id string) bool {
	_, ok := s.t.codec.Verify(id, anonymous)
	return ok
}

// terminate handles the client's DELETE of its live gateway session: the
// router revokes it at once (the broker, which the DELETE goes on to, ends
// the session and tells the other routers through its feed), forgets its
// backend sessions and ends them on the backends in the background.
func (s *Stream) terminate() {
	if c, ok := sessionid.Parse(s.gateway); ok && s.r.revoked.revoke(c, s.t.maxLifetime) {
		s.r.Metrics.RevocationsApplied.Add(1)
	}
	dropped := s.r.sessions.Drop(s.gateway)
	if len(dropped) == 0 {
		return
	}
	// Capture what the goroutine needs: the Stream itself may be Released
	// and Init'ed for the adapter's next request while it runs.
	s.r.closeBackends(s.t, dropped)
}
