package broker

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/filter/config"
)

const initialize = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25",` +
	`"capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`

// rawSession opens a session with plain POSTs (no GET stream, unlike the
// go-sdk client) and returns its id.
func rawSession(t *testing.T, url string) string {
	t.Helper()
	resp := post(t, url, "", initialize)
	id := resp.Header.Get(sessionIDHeader)
	if resp.StatusCode != http.StatusOK || id == "" {
		t.Fatalf("initialize: status %d, session %q", resp.StatusCode, id)
	}
	if resp := post(t, url, id, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("initialized: status %d", resp.StatusCode)
	}
	return id
}

// Sessions without requests to the broker and without a GET stream are
// closed after the idle timeout; a GET stream or requests keep one alive.
func TestIdleSessionsClosed(t *testing.T) {
	const timeout = 300 * time.Millisecond
	b := New(Options{Upstream: fastUpstream, Logger: testLogger(), SessionIdleTimeout: timeout})
	ts := httptest.NewServer(b.Handler())
	t.Cleanup(ts.Close)
	t.Cleanup(func() { b.Close() })
	if err := b.Apply(testConfig(t, config.Server{Name: "echo", URL: "http://127.0.0.1:1/mcp", Prefix: "echo_"})); err != nil {
		t.Fatal(err)
	}
	url := ts.URL + "/mcp"

	streaming := connect(t, url, nil) // holds a GET stream, sends nothing
	<-streaming.streamUp
	idle, busy := rawSession(t, url), rawSession(t, url)
	for end := time.Now().Add(4 * timeout); time.Now().Before(end); time.Sleep(timeout / 3) {
		if resp := post(t, url, busy, listTools); resp.StatusCode != http.StatusOK {
			t.Fatalf("busy session: status %d", resp.StatusCode)
		}
	}
	if resp := post(t, url, idle, listTools); resp.StatusCode != http.StatusNotFound {
		t.Errorf("idle session: status %d, want 404 (closed)", resp.StatusCode)
	}
	if resp := post(t, url, streaming.ID(), listTools); resp.StatusCode != http.StatusOK {
		t.Errorf("session with a GET stream: status %d, want 200", resp.StatusCode)
	}
	if n := b.metrics.sessionsExpired.Load(); n != 1 {
		t.Errorf("sessions expired: %d, want 1", n)
	}
}
