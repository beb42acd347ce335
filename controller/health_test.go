package controller

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// TestHealthPoller: a reading that changes what statuses are made of sends
// one event; one that only moves the broker's timestamps sends none.
func TestHealthPoller(t *testing.T) {
	var mu sync.Mutex
	status := http.StatusOK
	servers := []BrokerServer{{Name: "ns/a", URL: "http://a/mcp", State: "connecting", Since: time.Unix(1, 0)}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if status != http.StatusOK {
			w.WriteHeader(status)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"servers": servers})
	}))
	defer srv.Close()
	set := func(code int, f func()) {
		mu.Lock()
		defer mu.Unlock()
		status = code
		if f != nil {
			f()
		}
	}

	p := NewHealthPoller(srv.URL, time.Hour, nil)
	ctx := context.Background()
	expectEvent := func(want bool) {
		t.Helper()
		select {
		case <-p.Events():
			if !want {
				t.Error("unexpected event")
			}
		default:
			if want {
				t.Error("no event")
			}
		}
	}

	p.poll(ctx)
	expectEvent(true)
	if h := p.Health(); !h.Polled || h.Err != nil || h.Servers["ns/a"].State != "connecting" {
		t.Fatalf("health = %+v", h)
	}
	set(http.StatusOK, func() { servers[0].Since = time.Unix(2, 0) })
	p.poll(ctx)
	expectEvent(false)
	set(http.StatusOK, func() { servers[0].State, servers[0].Tools = "ready", 5 })
	p.poll(ctx)
	expectEvent(true)
	set(http.StatusServiceUnavailable, nil)
	p.poll(ctx)
	expectEvent(true)
	if h := p.Health(); h.Err == nil || len(h.Servers) != 0 {
		t.Errorf("health after a failed read = %+v", h)
	}
	p.poll(ctx)
	expectEvent(false)
}
