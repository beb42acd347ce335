package router

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/filter/config"
)

// fakeFeed is a broker's revocation feed driven by the test: each request
// is answered with the next answer the test sends, and the queries it got
// are recorded.
type fakeFeed struct {
	srv     *httptest.Server
	answers chan config.Revocations
	queries chan url.Values
	hangups atomic.Int64 // requests whose client went away unanswered
}

func newFakeFeed(t *testing.T) *fakeFeed {
	f := &fakeFeed{answers: make(chan config.Revocations), queries: make(chan url.Values, 16)}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != config.RevocationsPath {
			http.NotFound(w, r)
			return
		}
		f.queries <- r.URL.Query()
		select {
		case a := <-f.answers:
			json.NewEncoder(w).Encode(a)
		case <-r.Context().Done():
			f.hangups.Add(1)
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// next waits for the follower's next request and checks its query.
func (f *fakeFeed) next(t *testing.T, epoch, after string) {
	t.Helper()
	select {
	case q := <-f.queries:
		if q.Get("epoch") != epoch || q.Get("after") != after || q.Get("wait") != "25" {
			t.Fatalf("query %v, want epoch=%q after=%q wait=25", q, epoch, after)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the follower did not poll the feed")
	}
}

func waitCounter(t *testing.T, what string, c *atomic.Int64, want int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for c.Load() < want {
		if time.Now().After(deadline) {
			t.Fatalf("%s = %d, want %d", what, c.Load(), want)
		}
		time.Sleep(time.Millisecond)
	}
}

func routerFollowing(t *testing.T, brokerURL string) *Router {
	t.Helper()
	r := newTestRouter(t, "")
	c := loadConfig(t, "router.yaml")
	c.Gateway.BrokerURL = brokerURL
	if err := r.Apply(c); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// The router follows the broker's feed: terminated sessions get 404 (and
// lose their backend sessions), and a broker restart ends every session
// issued before it.
func TestFollowFeed(t *testing.T) {
	feed := newFakeFeed(t)
	r := routerFollowing(t, feed.srv.URL+"/")
	c := codec(t)
	a, b := c.MintAt(time.Now().Add(-time.Minute), ""), c.Mint("")
	r.Sessions().Put(b, "default/weather", "backend-b")
	const call = 0

	feed.next(t, "", "0")
	feed.answers <- config.Revocations{Epoch: "e1", StartedAt: time.Now().Add(-time.Hour).Unix(), Seq: 4, Full: true, Sessions: []string{a, "not-an-id"}}
	waitCounter(t, "RevocationsApplied", &r.Metrics.RevocationsApplied, 1)
	if reply, rej := decideHeaders(r, a, call); !reply || rej != RejectUnknownSession {
		t.Errorf("revoked session: reply=%v %s", reply, rej)
	}
	if reply, _ := decideHeaders(r, b, call); reply {
		t.Error("live session refused")
	}

	feed.next(t, "e1", "4")
	feed.answers <- config.Revocations{Epoch: "e1", StartedAt: time.Now().Add(-time.Hour).Unix(), Seq: 5, Sessions: []string{b}}
	waitCounter(t, "RevocationsApplied", &r.Metrics.RevocationsApplied, 2)
	if reply, _ := decideHeaders(r, b, call); !reply {
		t.Error("session revoked by the feed still accepted")
	}
	if _, ok := r.Sessions().Get(b, "default/weather"); ok {
		t.Error("a revoked session's backend session is kept")
	}

	fresh := c.MintAt(time.Now().Add(-2*time.Second), "")
	feed.next(t, "e1", "5")
	feed.answers <- config.Revocations{Epoch: "e2", StartedAt: time.Now().Unix(), Seq: 0, Full: true}
	waitCounter(t, "BrokerRestarts", &r.Metrics.BrokerRestarts, 1)
	if reply, rej := decideHeaders(r, fresh, call); !reply || rej != RejectUnknownSession {
		t.Errorf("session issued before the broker restarted: reply=%v %s", reply, rej)
	}
	if reply, _ := decideHeaders(r, c.MintAt(time.Now().Add(time.Second), ""), call); reply {
		t.Error("a session of the restarted broker refused")
	}
	feed.next(t, "e2", "0")

	// Close stops the follower in its long poll and waits for it.
	f := r.follower
	r.Close()
	select {
	case <-f.done:
	default:
		t.Fatal("Close returned before the follower ended")
	}
	waitCounter(t, "hang-ups", &feed.hangups, 1)
	if err := r.Apply(loadFollowing(t, feed.srv.URL)); err != nil || r.follower != nil {
		t.Fatalf("Apply after Close: %v, follower %v", err, r.follower)
	}
}

func loadFollowing(t *testing.T, brokerURL string) *config.Config {
	c := loadConfig(t, "router.yaml")
	c.Gateway.BrokerURL = brokerURL
	return c
}

// An unreachable broker is retried with backoff and counted; Close still
// returns promptly.
func TestFollowUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	r := routerFollowing(t, "http://"+addr)
	waitCounter(t, "RevocationFeedErrors", &r.Metrics.RevocationFeedErrors, 3)
	start := time.Now()
	r.Close()
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v", d)
	}
}

// Apply moves the follower to a new broker URL, and stops it when the
// config names none.
func TestFollowMoves(t *testing.T) {
	one, two := newFakeFeed(t), newFakeFeed(t)
	r := routerFollowing(t, one.srv.URL)
	one.next(t, "", "0")
	first := r.follower
	if err := r.Apply(loadFollowing(t, one.srv.URL)); err != nil || r.follower != first {
		t.Fatalf("re-applying the same URL replaced the follower (%v)", err)
	}
	if err := r.Apply(loadFollowing(t, two.srv.URL)); err != nil {
		t.Fatal(err)
	}
	two.next(t, "", "0")
	<-first.done
	second := r.follower
	if err := r.Apply(loadFollowing(t, "")); err != nil || r.follower != nil {
		t.Fatalf("no broker URL: follower %v (%v)", r.follower, err)
	}
	<-second.done
}
