package router

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/mcpgw/mcpgw/internal/testenv"
)

// unsafeString views b as a string, as adapters view host memory.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func TestSessionsPutGet(t *testing.T) {
	s := newSessions(10)
	if _, ok := s.Get("g", "a"); ok {
		t.Fatal("empty store has a session")
	}
	s.Put("g", "a", "1")
	s.Put("g", "b", "2")
	s.Put("g", "a", "3") // replaces
	s.Put("h", "a", "4")
	for _, tt := range []struct{ g, srv, want string }{{"g", "a", "3"}, {"g", "b", "2"}, {"h", "a", "4"}} {
		if got, ok := s.Get(tt.g, tt.srv); !ok || got != tt.want {
			t.Errorf("Get(%s, %s) = %q, %v; want %q", tt.g, tt.srv, got, ok, tt.want)
		}
	}
	if s.Len() != 2 {
		t.Errorf("Len = %d, want 2 gateway sessions", s.Len())
	}
	// The key is copied: the caller's buffer (host memory) may be reused.
	buf := []byte("gw-1")
	s.Put(unsafeString(buf), "a", "6")
	copy(buf, "XXXX")
	if got, ok := s.Get("gw-1", "a"); !ok || got != "6" {
		t.Fatalf("after the caller's buffer changed: %q, %v", got, ok)
	}
	if n := testing.AllocsPerRun(100, func() { s.Get("g", "b") }); n != 0 {
		t.Errorf("Get allocates %v times", n)
	}
}

func TestSessionsLRU(t *testing.T) {
	s := newSessions(3)
	for _, g := range []string{"a", "b", "c"} {
		s.Put(g, "srv", g+"1")
	}
	s.Get("a", "srv")     // a is now the most recently used
	s.Put("d", "srv", "") // evicts b, the least recently used
	for g, want := range map[string]bool{"a": true, "b": false, "c": true, "d": true} {
		if _, ok := s.Get(g, "srv"); ok != want {
			t.Errorf("%s held = %v, want %v", g, ok, want)
		}
	}
	if s.Len() != 3 {
		t.Errorf("Len = %d, want 3", s.Len())
	}
	s.resize(1)
	if s.Len() != 1 {
		t.Errorf("Len after resize(1) = %d", s.Len())
	}
	s.resize(0) // ignored
	s.Put("e", "srv", "")
	if s.Len() != 1 {
		t.Errorf("Len = %d, want 1", s.Len())
	}
}

func TestSessionsInvalidate(t *testing.T) {
	s := newSessions(10)
	s.Put("g", "a", "1")
	s.Put("g", "b", "2")
	if s.Invalidate("g", "a", "old") {
		t.Error("invalidated a session that was already replaced")
	}
	if s.Invalidate("nope", "a", "1") || s.Invalidate("g", "c", "1") {
		t.Error("invalidated an unknown session")
	}
	if !s.Invalidate("g", "a", "1") {
		t.Error("did not invalidate")
	}
	if _, ok := s.Get("g", "a"); ok {
		t.Error("invalidated session still held")
	}
	if got, _ := s.Get("g", "b"); got != "2" {
		t.Errorf("other server's session %q", got)
	}
	if s.Invalidate("g", "a", "1") {
		t.Error("invalidated twice")
	}
}

func TestSessionsDrop(t *testing.T) {
	s := newSessions(10)
	s.Put("g", "a", "1")
	s.Put("g", "b", "2")
	s.Put("h", "a", "3")
	got := s.Drop("g")
	want := []backendSession{{server: "a", id: "1"}, {server: "b", id: "2"}}
	if !slices.Equal(got, want) {
		t.Fatalf("Drop = %v, want %v", got, want)
	}
	if _, ok := s.Get("g", "a"); ok || s.Len() != 1 {
		t.Fatal("dropped session still held")
	}
	if s.Drop("g") != nil || s.Drop("never") != nil {
		t.Fatal("second Drop returned sessions")
	}
}

// Drop's result is the caller's: later changes to the store (an in-flight
// routed call invalidating, a new Put) must not write into it while the
// caller ends the sessions on the backends.
func TestSessionsDropResultIsStable(t *testing.T) {
	s := newSessions(10)
	s.Put("g", "a", "1")
	s.Put("g", "b", "2")
	gs, _ := s.cache.Peek("g") // as an Invalidate racing with Drop holds it
	got := s.Drop("g")
	snapshot := slices.Clone(got)
	// The racing Invalidate and Put now run on the entry they already had
	// (made visible again here, as they found it before Drop removed it).
	s.cache.Add("g", gs)
	s.Invalidate("g", "a", "1")
	s.Put("g", "c", "3")
	if !slices.Equal(got, snapshot) {
		t.Fatalf("Drop's result changed under the caller: %v, was %v", got, snapshot)
	}
}

func TestEnsure(t *testing.T) {
	s := newSessions(10)
	var opens atomic.Int64
	open := func(id string, err error) func(context.Context) (string, error) {
		return func(context.Context) (string, error) { opens.Add(1); return id, err }
	}
	ctx := context.Background()
	if _, err := s.ensure(ctx, "g", "a", open("", errors.New("down"))); err == nil {
		t.Fatal("error not returned")
	}
	if _, ok := s.Get("g", "a"); ok {
		t.Fatal("failed open stored")
	}
	if id, err := s.ensure(ctx, "g", "a", open("1", nil)); id != "1" || err != nil {
		t.Fatalf("ensure = %q, %v", id, err)
	}
	if id, _ := s.ensure(ctx, "g", "a", open("2", nil)); id != "1" {
		t.Fatalf("ensure reopened: %q", id)
	}
	if opens.Load() != 2 {
		t.Fatalf("%d opens, want 2", opens.Load())
	}
	if len(s.inflight) != 0 {
		t.Fatalf("inflight left: %v", s.inflight)
	}
}

// A caller that gives up (its client hung up) returns at once, but neither
// cancels the shared open nor fails the callers waiting on it, and the
// session opened is stored for the next call.
func TestEnsureLeaderCancelled(t *testing.T) {
	s := newSessions(10)
	leaderCtx, cancelLeader := context.WithCancel(context.Background())
	started, release := make(chan struct{}), make(chan struct{})
	leaderDone := make(chan error, 1)
	go func() {
		_, err := s.ensure(leaderCtx, "g", "a", func(ctx context.Context) (string, error) {
			close(started)
			<-release
			return "id1", ctx.Err() // a cancelled ctx here would fail everyone
		})
		leaderDone <- err
	}()
	<-started
	cancelLeader()
	waiterCtx, cancelWaiter := context.WithCancel(context.Background())
	gaveUp := make(chan error, 1)
	go func() {
		_, err := s.ensure(waiterCtx, "g", "a", nil)
		gaveUp <- err
	}()
	follower := make(chan string, 1)
	go func() {
		id, _ := s.ensure(context.Background(), "g", "a", nil)
		follower <- id
	}()
	cancelWaiter()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v, want context.Canceled", err)
	}
	if err := <-leaderDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled leader: %v, want context.Canceled at once", err)
	}
	close(release)
	if id := <-follower; id != "id1" {
		t.Fatalf("follower got %q, want the shared session id1", id)
	}
	if id, ok := s.Get("g", "a"); !ok || id != "id1" {
		t.Fatalf("the open finished for nobody's stream was not stored: %q %v", id, ok)
	}
}

// Concurrent ensures for one key open one session, even when some arrive
// just as the first completes (they must then find its result).
func TestEnsureSingleflight(t *testing.T) {
	s := newSessions(1000)
	for round := range 300 {
		g := fmt.Sprint("g", round)
		var opens atomic.Int64
		var wg sync.WaitGroup
		ids := make([]string, 8)
		for i := range ids {
			wg.Go(func() {
				ids[i], _ = s.ensure(context.Background(), g, "a", func(context.Context) (string, error) {
					runtime.Gosched()
					return fmt.Sprint("id", opens.Add(1)), nil
				})
			})
		}
		wg.Wait()
		if opens.Load() != 1 {
			t.Fatalf("round %d: %d opens for one key (ids %q)", round, opens.Load(), ids)
		}
	}
}

// TestMemoryPerSession measures what one held gateway session with one
// backend session costs: the LRU entry, the key copy, the backend id and the
// client context (capabilities, version, level).
func TestMemoryPerSession(t *testing.T) {
	testenv.SkipIfShort(t, "measures the heap")
	const n = 10_000
	c := codec(t)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s := newSessions(2 * n)
	for i := range n {
		// The gateway id is garbage once Put copied it; the backend id
		// (26 chars, like go-sdk's) is held, as an HTTP header value is.
		gw := c.Mint("")
		s.Put(gw, "default/weather", fmt.Sprintf("%026d", i))
		// A client context as a real client sends it (copied per session,
		// as rememberInitialize does), and a level.
		s.setClient(gw, strings.Clone(`{"elicitation":{"form":{},"url":{}},"sampling":{"tools":{}},"roots":{"listChanged":true}}`), "2025-11-25")
		s.setLevel(gw, "info")
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perSession := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n
	runtime.KeepAlive(s)
	t.Logf("%d gateway sessions with one backend each: %.0f bytes/session (HeapAlloc %d -> %d)",
		n, perSession, before.HeapAlloc, after.HeapAlloc)
	if s.Len() != n {
		t.Fatalf("Len = %d", s.Len())
	}
	if perSession > 1024 {
		t.Errorf("%.0f bytes per session, want < 1 KiB", perSession)
	}
}
