package router

import (
	"context"
	"net/http"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Close cancels a session open that is waiting on its backend and returns
// once it has: no goroutine of the Router is left and no request is in
// flight. Later opens fail at once, without contacting the backend.
func TestCloseStopsBackgroundWork(t *testing.T) {
	b := newBackend(t, true)
	b.initGate = make(chan struct{})
	t.Cleanup(func() { close(b.initGate) }) // releases the backend's handler
	r := routerFor(t, 0, map[string]*backend{"echo": b})
	ignore := goleak.IgnoreCurrent()
	gw := codec(t).Mint("")
	opened := make(chan Action)
	s := r.NewStream()
	defer s.Release()
	body := []byte(call(1, "echo_x", "held"))
	s.RequestHeaders(post(gw, body))
	if a := s.RequestBody(body); a != OpenSession {
		t.Fatalf("first call: %s", actions[a])
	}
	go func() { opened <- s.OpenSession(context.Background()) }()
	for deadline := time.Now().Add(5 * time.Second); b.initCount() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the backend never got the initialize")
		}
	}

	r.Close() // returns only once the held open has given up
	if a := <-opened; a != Reply || s.Rejection() != RejectBackendUnavailable {
		t.Fatalf("open during Close: %s (%s)", actions[a], s.Rejection())
	}
	// Not even the open's goroutine (the backend's handler still holds
	// the initialize, until the test ends).
	goleak.VerifyNone(t, ignore, goleak.IgnoreTopFunction("github.com/mcpgw/mcpgw/filter/router.(*backend).serve"))

	late := r.NewStream()
	defer late.Release()
	late.RequestHeaders(post(gw, body))
	if a := late.RequestBody(body); a != OpenSession {
		t.Fatalf("call after Close: %s", actions[a])
	}
	if a := late.OpenSession(context.Background()); a != Reply || late.Rejection() != RejectBackendUnavailable {
		t.Fatalf("open after Close: %s (%s)", actions[a], late.Rejection())
	}
	if n := b.initCount(); n != 1 {
		t.Fatalf("%d initializes reached the backend, want only the one before Close", n)
	}
	r.Close() // idempotent
}

// The background sends (cancellations, logging levels, session ends) are
// owned as well: Close cancels those in flight and waits for them, and
// none starts after it.
func TestCloseCancelsBackgroundSends(t *testing.T) {
	setTestEnv(t)
	tr := &blockingTransport{started: make(chan string, 8)}
	r := New(Options{HTTPClient: &http.Client{Transport: tr}})
	if err := r.Apply(loadConfig(t, "router.yaml")); err != nil {
		t.Fatal(err)
	}
	ignore := goleak.IgnoreCurrent()
	gw := codec(t).Mint("")
	r.Sessions().Put(gw, "default/alerts", "b1")
	cancelled := []byte(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}`)
	s := r.NewStream()
	defer s.Release()
	s.RequestHeaders(post(gw, cancelled))
	if a := s.RequestBody(cancelled); a != Forward {
		t.Fatalf("cancellation: %s", actions[a])
	}
	if got := <-tr.started; got != "POST" {
		t.Fatalf("background send: %s", got)
	}
	r.Close() // would block forever if it did not cancel the held send
	goleak.VerifyNone(t, ignore)
	if r.bg.goOwned(func(context.Context) { t.Error("background work ran after Close") }) {
		t.Fatal("background work started after Close")
	}
	del := r.NewStream()
	defer del.Release()
	del.RequestHeaders(RequestHeaders{Path: "/mcp", Method: "DELETE", SessionID: gw, ContentLength: -1, EndOfStream: true})
	goleak.VerifyNone(t, ignore)
	if len(tr.started) != 0 {
		t.Fatalf("a request reached the transport after Close: %s", <-tr.started)
	}
}

// blockingTransport reports each request's method, then holds it until its
// context is done.
type blockingTransport struct{ started chan string }

func (b *blockingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	b.started <- req.Method
	<-req.Context().Done()
	return nil, req.Context().Err()
}
