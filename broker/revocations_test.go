package broker

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgw/mcpgw/broker/upstream"
	"github.com/mcpgw/mcpgw/filter/config"
	"github.com/mcpgw/mcpgw/filter/sessionid"
	"github.com/mcpgw/mcpgw/tests/mcptest"
)

// feed reads the revocation feed of the broker served at base.
func feed(t *testing.T, base, query string) config.Revocations {
	t.Helper()
	resp, err := http.Get(base + config.RevocationsPath + "?" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("feed: HTTP %d", resp.StatusCode)
	}
	var f config.Revocations
	if err := json.NewDecoder(resp.Body).Decode(&f); err != nil {
		t.Fatal(err)
	}
	return f
}

func deleteSession(t *testing.T, url, id string) int {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodDelete, url, nil)
	req.Header.Set(sessionIDHeader, id)
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// A DELETE goes on the feed: a new follower gets it in the full answer, a
// follower already there gets it as soon as it happens (long poll).
func TestDeleteGoesOnFeed(t *testing.T) {
	h := newHarness(t, testConfig(t))
	first := rawSession(t, h.url)
	if code := deleteSession(t, h.url, first); code != http.StatusNoContent {
		t.Fatalf("DELETE: %d", code)
	}
	f := feed(t, h.ts.URL, "")
	if !f.Full || f.Epoch == "" || f.Seq != 1 || len(f.Sessions) != 1 || f.Sessions[0] != first {
		t.Fatalf("first answer %+v, want the full feed with %s", f, first)
	}
	second := rawSession(t, h.url)
	got := make(chan config.Revocations, 1)
	start := time.Now()
	go func() { got <- feed(t, h.ts.URL, "epoch="+f.Epoch+"&after=1&wait=30") }()
	// The long poll is waiting: nothing after seq 1 yet. The DELETE ends it.
	eventually(t, "the long poll to wait", func() bool { return h.b.metrics.feedWaiting.Load() == 1 })
	if code := deleteSession(t, h.url, second); code != http.StatusNoContent {
		t.Fatalf("DELETE: %d", code)
	}
	select {
	case n := <-got:
		if n.Full || n.Seq != 2 || len(n.Sessions) != 1 || n.Sessions[0] != second {
			t.Fatalf("long-poll answer %+v, want %s after seq 1", n, second)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the long poll did not return after the DELETE")
	}
	t.Logf("the DELETE reached the long poll %v after it started", time.Since(start).Round(time.Millisecond))
	if n := h.b.metrics.sessionsDeleted.Load(); n != 2 {
		t.Errorf("sessionsDeleted = %d, want 2", n)
	}
	// A DELETE of an unknown session ends nothing and is not on the feed.
	if code := deleteSession(t, h.url, first); code != http.StatusNotFound {
		t.Errorf("second DELETE: %d, want 404", code)
	}
	if n := feed(t, h.ts.URL, "epoch="+f.Epoch+"&after=2&wait=0"); len(n.Sessions) != 0 || n.Seq != 2 {
		t.Errorf("feed after a DELETE of an unknown session: %+v", n)
	}
}

// Sessions closed for idleness go on the feed too.
func TestIdleExpiryGoesOnFeed(t *testing.T) {
	b := New(Options{Upstream: fastUpstream, Logger: testLogger(), SessionIdleTimeout: 100 * time.Millisecond})
	ts := httptest.NewServer(b.Handler())
	t.Cleanup(ts.Close)
	t.Cleanup(func() { b.Close() })
	if err := b.Apply(testConfig(t)); err != nil {
		t.Fatal(err)
	}
	id := rawSession(t, ts.URL+"/mcp")
	eventually(t, "the idle session closed", func() bool { return b.metrics.sessionsExpired.Load() == 1 })
	if f := feed(t, ts.URL, "wait=0"); len(f.Sessions) != 1 || f.Sessions[0] != id {
		t.Fatalf("feed %+v, want %s", f, id)
	}
}

// The feed tells the broker's epoch and start, and no id it mints is
// dated before that start.
func TestFeedEpochAndMinting(t *testing.T) {
	h := newHarness(t, testConfig(t))
	f := feed(t, h.ts.URL, "wait=0")
	if !f.Full || f.StartedAt < time.Now().Add(-time.Minute).Unix() || len(f.Sessions) != 0 {
		t.Fatalf("first answer %+v", f)
	}
	c, ok := sessionid.Parse(rawSession(t, h.url))
	if !ok || c.IssuedAt < f.StartedAt {
		t.Fatalf("minted id issued at %d, broker started at %d", c.IssuedAt, f.StartedAt)
	}
	other := New(Options{})
	t.Cleanup(func() { other.Close() })
	if other.revocations.epoch == h.b.revocations.epoch {
		t.Error("two broker processes share an epoch")
	}
	for _, q := range []string{"after=-1", "after=x", "wait=soon"} {
		resp, err := http.Get(h.ts.URL + config.RevocationsPath + "?" + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: HTTP %d, want 400", q, resp.StatusCode)
		}
	}
}

// Close (and the HTTP server's shutdown) end the routers' long polls.
func TestCloseEndsLongPolls(t *testing.T) {
	h := newHarness(t, testConfig(t))
	f := feed(t, h.ts.URL, "wait=0")
	done := make(chan struct{})
	go func() {
		feed(t, h.ts.URL, "epoch="+f.Epoch+"&after=0&wait=60")
		close(done)
	}()
	eventually(t, "the long poll to wait", func() bool { return h.b.metrics.feedWaiting.Load() == 1 })
	h.b.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the long poll outlived the broker")
	}
}

// A session past gateway.sessionMaxLifetime is refused, and the sweep
// closes it.
func TestSessionLifetime(t *testing.T) {
	cfg := testConfig(t)
	cfg.Gateway.SessionMaxLifetime = "1h"
	h := newHarness(t, cfg)
	id := rawSession(t, h.url)
	codec, _ := sessionid.New([]byte(testKey))
	if resp := post(t, h.url, codec.MintAt(time.Now().Add(-time.Hour), ""), listTools); resp.StatusCode != http.StatusNotFound {
		t.Errorf("an id past its lifetime: HTTP %d, want 404", resp.StatusCode)
	}
	if n := h.b.metrics.sessionsOver.Load(); n != 1 {
		t.Errorf("sessionsOver = %d, want 1", n)
	}
	h.b.sweepSessions(time.Now().Add(59 * time.Minute))
	if resp := post(t, h.url, id, listTools); resp.StatusCode != http.StatusOK {
		t.Fatalf("a session within its lifetime: HTTP %d", resp.StatusCode)
	}
	h.b.sweepSessions(time.Now().Add(61 * time.Minute))
	if n := h.b.metrics.sessionsEnded.Load(); n != 1 {
		t.Errorf("sessionsEnded = %d, want 1", n)
	}
	eventually(t, "the session closed", func() bool {
		for range h.b.Server().Sessions() {
			return false
		}
		return true
	})
}

// A session key that changes keeps verifying for the grace period (the
// default, 1h), and a previous key of the ring verifies.
func TestSessionKeyGrace(t *testing.T) {
	h := twoBackends(t)
	c := connect(t, h.url, nil)
	t.Setenv(keyEnv+"_NEW", strings.Repeat("n", 32))
	cfg := testConfig(t)
	cfg.Gateway.SessionKey.Env = keyEnv + "_NEW"
	if err := h.b.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	if resp := post(t, h.url, c.ID(), listTools); resp.StatusCode != http.StatusOK {
		t.Errorf("session of the old key within the grace period: HTTP %d", resp.StatusCode)
	}
	fresh := connect(t, h.url, nil)
	newCodec, _ := sessionid.New([]byte(strings.Repeat("n", 32)))
	if !valid(newCodec, fresh.ID()) {
		t.Error("a new session's id is not of the new key")
	}
	// With the old key listed as a previous key, no grace is needed.
	cfg.Gateway.SessionKeyGracePeriod = "0s"
	cfg.Gateway.PreviousSessionKeys = []config.SecretRef{{Env: keyEnv}}
	if err := h.b.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	if resp := post(t, h.url, c.ID(), listTools); resp.StatusCode != http.StatusOK {
		t.Errorf("session of a previous key: HTTP %d", resp.StatusCode)
	}
}

// A credential whose value changed reaches the backend on the broker's
// live session once the config is applied again (as config.Watch does).
func TestCredentialRotationReachesBackend(t *testing.T) {
	t.Setenv("BROKER_TEST_TOKEN", "Bearer one")
	srv := mcptest.NewEchoServer("e1")
	h0 := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil)
	var last atomic.Pointer[string]
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			v := r.Header.Get("Authorization")
			last.Store(&v)
		}
		h0.ServeHTTP(w, r)
	}))
	t.Cleanup(backend.Close)
	s := config.Server{Name: "echo", URL: backend.URL, Prefix: "echo_",
		Credential: &config.Credential{SecretRef: config.SecretRef{Env: "BROKER_TEST_TOKEN"}}}
	cfg := testConfig(t, s)
	h := newHarness(t, cfg)
	h.waitState(t, "echo", upstream.StateReady)
	up := h.b.upstream("echo")
	c := connect(t, h.url, nil)
	call := func(want string) {
		t.Helper()
		if _, err := c.CallTool(t.Context(), &mcp.CallToolParams{Name: "echo_whoami"}); err != nil {
			t.Fatal(err)
		}
		if got := *last.Load(); got != want {
			t.Fatalf("backend got %q, want %q", got, want)
		}
	}
	call("Bearer one")
	os.Setenv("BROKER_TEST_TOKEN", "Bearer two")
	if err := h.b.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	call("Bearer two")
	if h.b.upstream("echo") != up {
		t.Error("the credential change reconnected the backend")
	}
	t.Cleanup(func() { closeAll(srv) })
}

func closeAll(srv *mcp.Server) {
	for ss := range srv.Sessions() {
		ss.Close()
	}
}
