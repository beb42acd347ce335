package router

import (
	"context"
	"strings"
	"time"

	"github.com/tidwall/gjson"
)

// The client context: what a client said about itself in its initialize
// (capabilities, protocolVersion) and its last logging/setLevel, per gateway
// session. The router opens backend sessions on the client's behalf; it
// passes them on, so that backends elicit, sample and log as they would if
// the client had connected to them directly.

// maxCapabilities bounds the client capabilities kept per gateway session
// (raw JSON). Real clients send well under 200 bytes; a larger object is
// replaced by {} (the backend then sees a client with no capabilities, as
// before the router kept them) so that a session stays well under 1 KiB.
const maxCapabilities = 512

// maxVersionLen bounds the protocol version kept from an initialize.
const maxVersionLen = 32

// clientContext is kept in gatewaySession. Its strings are owned (copies or
// constants).
type clientContext struct {
	capabilities string // raw JSON object; "" means {}
	version      string // protocolVersion the client asked for in initialize
	level        string // last logging/setLevel level; "" when never set
}

// logLevels are the MCP logging levels (RFC 5424 severities), as constants
// so that keeping one does not allocate.
var logLevels = [...]string{"debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"}

// internLevel returns the constant for a valid MCP logging level, else "".
func internLevel(v gjson.Result) string {
	if v.Type != gjson.String {
		return ""
	}
	for _, l := range logLevels {
		if v.Str == l {
			return l
		}
	}
	return ""
}

// rememberInitialize keeps the client context of an initialize request until
// its response reveals the new gateway session (InitializeResponse).
func (s *Stream) rememberInitialize(m *message) {
	if !m.get(memberParams).IsObject() {
		return
	}
	c := &clientContext{}
	if caps := m.get(memberCapabilities); caps.IsObject() {
		if len(caps.Raw) <= maxCapabilities {
			c.capabilities = strings.Clone(caps.Raw)
		} else {
			s.r.log.Info("client capabilities too large to keep; backends see none", "bytes", len(caps.Raw))
		}
	}
	if v := m.get(memberProtocolVersion); v.Type == gjson.String && len(v.Str) <= maxVersionLen {
		c.version = internVersion(v.Str)
	}
	s.clientInit = c
}

// AwaitsSessionID reports whether the adapter must call InitializeResponse
// with the response's status and mcp-session-id header: the request was an
// initialize forwarded to the broker, whose response names the new gateway
// session. It is false for every other request.
func (s *Stream) AwaitsSessionID() bool { return s.clientInit != nil }

// InitializeResponse records the client context of an initialize under the
// gateway session its response created. sessionID (the response's
// mcp-session-id) may alias host memory; it is copied if kept.
func (s *Stream) InitializeResponse(status int, sessionID string) {
	c := s.clientInit
	s.clientInit = nil
	if c == nil || status != 200 || sessionID == "" || s.t == nil || !s.minted(sessionID) {
		return
	}
	s.r.sessions.setClient(sessionID, c.capabilities, c.version)
}

// recordLevel keeps the level v (params.level) of a logging/setLevel for
// the gateway session (the request itself goes on to the broker) and
// forwards it, in the background, to the backend sessions the router opened
// for the client; backend sessions opened later get it right after their
// initialize.
func (s *Stream) recordLevel(v gjson.Result) {
	if !s.live() {
		return
	}
	level := internLevel(v)
	if level == "" {
		return // the broker answers the invalid params
	}
	backends, initVersion := s.r.sessions.setLevel(s.gateway, level)
	in := s.r.init
	s.eachBackend(backends, initVersion, "logging/setLevel", func(ctx context.Context, srv *Server, sid, version string) error {
		return in.setLevel(ctx, srv, sid, version, level)
	})
}

// eachBackend calls send, in the background (owned by the Router: Close
// cancels it), for each of the gateway session's backend sessions, with
// the protocol version offered to backends; failures are logged. send must
// not read s: the adapter reuses the Stream meanwhile.
func (s *Stream) eachBackend(backends []backendSession, initVersion, what string,
	send func(ctx context.Context, srv *Server, sid, version string) error) {
	if len(backends) == 0 {
		return
	}
	t, log, version := s.t, s.r.log, backendVersion(s.protocolVersion, initVersion)
	s.r.bg.goOwned(func(bgCtx context.Context) {
		for _, b := range backends {
			srv := t.byName[b.server]
			if srv == nil || b.id == "" {
				continue // removed from the config, or stateless (no session)
			}
			ctx, cancel := context.WithTimeout(bgCtx, 10*time.Second)
			err := send(ctx, srv, b.id, version)
			cancel()
			if err != nil {
				log.Warn("sending to backend session failed", "what", what, "server", srv.Name, "error", err)
			}
		}
	})
}

// backendVersion is the protocol version offered to backends: the one the
// client uses with the gateway (its header), else the one it asked for in
// initialize, else DefaultProtocolVersion.
func backendVersion(header, initVersion string) string {
	switch {
	case header != "":
		return header
	case initVersion != "":
		return initVersion
	}
	return DefaultProtocolVersion
}

// Client returns the client context kept for gateway: its initialize
// capabilities (raw JSON, "" if none), protocol version and logging level.
func (s *Sessions) Client(gateway string) (capabilities, version, level string) {
	gs, ok := s.cache.Peek(gateway)
	if !ok {
		return "", "", ""
	}
	gs.mu.Lock()
	defer gs.mu.Unlock()
	return gs.client.capabilities, gs.client.version, gs.client.level
}

// entry returns gateway's entry, creating it (with a copy of gateway as key)
// if there is none.
func (s *Sessions) entry(gateway string) *gatewaySession {
	gs, ok := s.cache.Get(gateway)
	if !ok {
		gs = &gatewaySession{}
		// Another caller may race us here; PeekOrAdd keeps whichever came first.
		if prev, found, _ := s.cache.PeekOrAdd(strings.Clone(gateway), gs); found {
			gs = prev
		}
	}
	return gs
}

func (s *Sessions) setClient(gateway, capabilities, version string) {
	gs := s.entry(gateway)
	gs.mu.Lock()
	defer gs.mu.Unlock()
	gs.client.capabilities, gs.client.version = capabilities, version
}

// setLevel records level for gateway and returns a copy of its backend
// sessions, to forward the level to, and the client's initialize version.
func (s *Sessions) setLevel(gateway, level string) ([]backendSession, string) {
	gs := s.entry(gateway)
	gs.mu.Lock()
	defer gs.mu.Unlock()
	gs.client.level = level
	return append([]backendSession(nil), gs.backends...), gs.client.version
}

// backends returns a copy of gateway's backend sessions and the client's
// initialize version.
func (s *Sessions) backends(gateway string) ([]backendSession, string) {
	gs, ok := s.cache.Peek(gateway)
	if !ok {
		return nil, ""
	}
	gs.mu.Lock()
	defer gs.mu.Unlock()
	return append([]backendSession(nil), gs.backends...), gs.client.version
}
