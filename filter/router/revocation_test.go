package router

import (
	"strings"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/filter/config"
	"github.com/mcpgw/mcpgw/filter/sessionid"
	"github.com/mcpgw/mcpgw/internal/testenv"
)

// sessionRequests are requests naming a gateway session, one per path of
// the router that acts on a session.
var sessionRequests = []struct {
	name string
	h    RequestHeaders
	body string
}{
	{"routed tools/call", RequestHeaders{Path: "/mcp", Method: "POST", ContentType: "application/json"}, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"weather_x"}}`},
	{"forwarded tools/list", RequestHeaders{Path: "/mcp", Method: "POST", ContentType: "application/json"}, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`},
	{"relay answer", RequestHeaders{Path: "/mcp", Method: "POST", ContentType: "application/json"}, `{"jsonrpc":"2.0","id":"mcpgw:15:default/weathern1","result":{}}`},
	{"cancellation", RequestHeaders{Path: "/mcp", Method: "POST", ContentType: "application/json"}, `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}`},
	{"GET resume", RequestHeaders{Path: "/mcp", Method: "GET", LastEventID: "mcpgw:15:default/weathere7", EndOfStream: true}, ""},
	{"GET stream", RequestHeaders{Path: "/mcp", Method: "GET", EndOfStream: true}, ""},
	{"DELETE", RequestHeaders{Path: "/mcp", Method: "DELETE", EndOfStream: true}, ""},
}

// decideHeaders runs RequestHeaders (and RequestBody when buffered) for a
// session request and returns the action and the rejection.
func decideHeaders(r *Router, gw string, i int) (reply bool, rej Rejection) {
	req := sessionRequests[i]
	h := req.h
	h.SessionID, h.Path, h.ProtocolVersion, h.ContentLength = gw, "/mcp", "2025-06-18", -1
	if req.body != "" {
		h.ContentType, h.ContentLength = "application/json", int64(len(req.body))
	}
	s := r.NewStream()
	defer s.Release()
	switch s.RequestHeaders(h) {
	case HeadersReply:
		return true, s.Rejection()
	case HeadersBuffer:
		return s.RequestBody([]byte(req.body)) == Reply, s.Rejection()
	}
	return false, RejectNone
}

// A session that is over — past its lifetime, issued before the broker
// started, or revoked — gets the 404 of an unknown session on every path,
// while a live one does not.
func TestEndedSessionsGet404(t *testing.T) {
	r := newTestRouter(t, "router.yaml")
	c := codec(t)
	live := c.Mint("")
	revoked := c.Mint("")
	claims, _ := sessionid.Parse(revoked)
	r.revoked.revoke(claims, 3600)
	beforeRestart := c.MintAt(time.Now().Add(-time.Minute), "")
	ended := map[string]string{
		"expired (24h default lifetime)": c.MintAt(time.Now().Add(-24*time.Hour-time.Second), ""),
		"revoked":                        revoked,
		"issued before the broker start": beforeRestart,
	}
	r.revoked.brokerStarted(time.Now().Add(-30 * time.Second).Unix())
	for i, req := range sessionRequests {
		for what, gw := range ended {
			reply, rej := decideHeaders(r, gw, i)
			if !reply || rej != RejectUnknownSession {
				t.Errorf("%s, %s session: reply=%v rejection %s, want 404 unknown_session", req.name, what, reply, rej)
			}
		}
		if req.name == "DELETE" {
			continue // it would revoke the live one
		}
		if _, rej := decideHeaders(r, live, i); rej == RejectUnknownSession {
			t.Errorf("%s, live session: rejected", req.name)
		}
	}
	s := r.NewStream()
	s.RequestHeaders(RequestHeaders{Path: "/mcp", Method: "GET", SessionID: revoked, EndOfStream: true})
	status, body := s.Reply()
	if status != 404 || string(body) != `{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Session not found"}}` {
		t.Errorf("reply %d %s", status, body)
	}
}

// A DELETE through this router revokes the session here at once: the next
// routed call with it gets 404 (before the broker's feed says anything).
func TestDeleteRevokesAtOnce(t *testing.T) {
	r := newTestRouter(t, "router.yaml")
	gw := codec(t).Mint("")
	r.Sessions().Put(gw, "default/weather", "b1")
	const call, del = 0, 6
	if reply, _ := decideHeaders(r, gw, call); reply {
		t.Fatal("live session refused")
	}
	if reply, _ := decideHeaders(r, gw, del); reply {
		t.Fatal("DELETE refused")
	}
	if got := r.Metrics.RevocationsApplied.Load(); got != 1 {
		t.Errorf("RevocationsApplied = %d, want 1", got)
	}
	if reply, rej := decideHeaders(r, gw, call); !reply || rej != RejectUnknownSession {
		t.Fatalf("routed call after DELETE: reply=%v %s, want 404", reply, rej)
	}
}

// keyConfig is router.yaml with the session key in env MCPGW_T_CURRENT and,
// optionally, previous keys and a grace period.
func keyConfig(t *testing.T, grace config.Duration, previous ...string) *config.Config {
	t.Helper()
	c := loadConfig(t, "router.yaml")
	c.Gateway.SessionKey = config.SecretRef{Env: "MCPGW_T_CURRENT"}
	c.Gateway.SessionKeyGracePeriod = grace
	for _, env := range previous {
		c.Gateway.PreviousSessionKeys = append(c.Gateway.PreviousSessionKeys, config.SecretRef{Env: env})
	}
	return c
}

func TestKeyRing(t *testing.T) {
	oldKey, newKey := strings.Repeat("o", 32), strings.Repeat("n", 32)
	mint := func(k string) string {
		c, err := sessionid.New([]byte(k))
		if err != nil {
			t.Fatal(err)
		}
		return c.Mint("")
	}
	const call = 0
	t.Run("previous keys verify", func(t *testing.T) {
		r := newTestRouter(t, "")
		t.Setenv("MCPGW_T_CURRENT", newKey)
		t.Setenv("MCPGW_T_OLD", oldKey)
		if err := r.Apply(keyConfig(t, "", "MCPGW_T_OLD")); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{oldKey, newKey} {
			if reply, rej := decideHeaders(r, mint(k), call); reply {
				t.Errorf("id of a ring key refused: %s", rej)
			}
		}
		if reply, _ := decideHeaders(r, mint(strings.Repeat("x", 32)), call); !reply {
			t.Error("id of a key outside the ring accepted")
		}
	})
	for _, tc := range []struct {
		grace    config.Duration
		oldValid bool
	}{{"", true}, {"1m", true}, {"0s", false}} {
		t.Run("key changed at runtime, grace "+string(tc.grace), func(t *testing.T) {
			r := newTestRouter(t, "")
			t.Setenv("MCPGW_T_CURRENT", oldKey)
			if err := r.Apply(keyConfig(t, tc.grace)); err != nil {
				t.Fatal(err)
			}
			old := mint(oldKey)
			t.Setenv("MCPGW_T_CURRENT", newKey) // the watcher re-applies on this
			if err := r.Apply(keyConfig(t, tc.grace)); err != nil {
				t.Fatal(err)
			}
			if reply, _ := decideHeaders(r, old, call); reply == tc.oldValid {
				t.Errorf("id of the old key: refused=%v, want %v", reply, !tc.oldValid)
			}
			if reply, rej := decideHeaders(r, mint(newKey), call); reply {
				t.Errorf("id of the new key refused: %s", rej)
			}
		})
	}
}

// The session lifetime comes from the config.
func TestSessionMaxLifetime(t *testing.T) {
	r := newTestRouter(t, "")
	c := loadConfig(t, "router.yaml")
	c.Gateway.SessionMaxLifetime = "1h"
	if err := r.Apply(c); err != nil {
		t.Fatal(err)
	}
	cd := codec(t)
	if reply, _ := decideHeaders(r, cd.MintAt(time.Now().Add(-59*time.Minute), ""), 0); reply {
		t.Error("a 59-minute-old id refused with a 1h lifetime")
	}
	if reply, rej := decideHeaders(r, cd.MintAt(time.Now().Add(-61*time.Minute), ""), 0); !reply || rej != RejectUnknownSession {
		t.Errorf("a 61-minute-old id: reply=%v %s, want 404", reply, rej)
	}
}

// The broker's internal endpoints are not reachable through the gateway.
func TestInternalPathRefused(t *testing.T) {
	r := newTestRouter(t, "router.yaml")
	for _, p := range []string{config.RevocationsPath + "?after=0", "/mcp/../.mcpgw/v1/revocations", "/%2Emcpgw/v1/revocations"} {
		s := r.NewStream()
		if a := s.RequestHeaders(RequestHeaders{Method: "GET", Path: p, EndOfStream: true}); a != HeadersReply || s.Rejection() != RejectInternalPath {
			t.Errorf("GET %s: %s %s, want a 404 reply", p, headersActions[a], s.Rejection())
		}
		if status, _ := s.Reply(); status != 404 {
			t.Errorf("GET %s: status %d", p, status)
		}
		s.Release()
	}
}

// The session checks add no allocation, with a ring of several keys and a
// populated revocation set.
func TestSessionCheckAllocations(t *testing.T) {
	testenv.SkipUnderRace(t)
	r := newTestRouter(t, "")
	t.Setenv("MCPGW_T_CURRENT", testKey)
	t.Setenv("MCPGW_T_OLD", strings.Repeat("o", 32))
	if err := r.Apply(keyConfig(t, "", "MCPGW_T_OLD")); err != nil {
		t.Fatal(err)
	}
	c := codec(t)
	for range 1000 {
		claims, _ := sessionid.Parse(c.Mint(""))
		r.revoked.revoke(claims, 3600)
	}
	gw := c.Mint("")
	r.Sessions().Put(gw, "default/weather", "backend-1")
	body := []byte(sessionRequests[0].body)
	h := post(gw, body)
	var s Stream
	n := testing.AllocsPerRun(100, func() {
		s.Init(r)
		s.RequestHeaders(h)
		if a := s.RequestBody(body); a != Route {
			t.Fatalf("action %s (%s)", actions[a], s.Rejection())
		}
		s.ApplyRequest(nopWriter{})
		s.Release()
	})
	if n != 0 {
		t.Errorf("%v allocations", n)
	}
}
