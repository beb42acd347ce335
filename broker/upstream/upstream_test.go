package upstream

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.uber.org/goleak"

	"github.com/mcpgw/mcpgw/filter/config"
	"github.com/mcpgw/mcpgw/tests/mcptest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fast are options that keep the tests quick.
func fast() Options {
	return Options{
		PingInterval:   50 * time.Millisecond,
		RequestTimeout: 2 * time.Second,
		BackoffMin:     10 * time.Millisecond,
		BackoffMax:     50 * time.Millisecond,
	}
}

func start(t *testing.T, srv config.Server, opts Options) *Upstream {
	t.Helper()
	u := New(srv, opts)
	u.Start()
	t.Cleanup(u.Close)
	return u
}

func serve(t *testing.T, addr string, srv *mcp.Server) (string, func()) {
	t.Helper()
	url, stop, err := mcptest.Serve(t.Context(), addr, srv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return url, stop
}

// eventually polls cond until it holds, failing the test after 10s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitMore waits until n more events than now are counted and the last
// of those is handled: one more event must begin, as each begins after the
// one before it ended (a session's probes, re-lists).
func waitMore(t *testing.T, what string, counter *atomic.Int64, n int64) {
	t.Helper()
	from := counter.Load()
	eventually(t, what, func() bool { return counter.Load() > from+n })
}

func waitState(t *testing.T, u *Upstream, want State) Snapshot {
	t.Helper()
	eventually(t, "state "+string(want), func() bool { return u.Snapshot().State == want })
	return u.Snapshot()
}

func toolNames(c Catalog) []string {
	var names []string
	for _, t := range c.Tools {
		names = append(names, t.Name)
	}
	slices.Sort(names)
	return names
}

func TestReadyDiscoversEverything(t *testing.T) {
	url, _ := serve(t, "127.0.0.1:0", mcptest.NewMathServer("m1"))
	changes := make(chan Catalog, 10)
	opts := fast()
	opts.OnChange = func(c Catalog) { changes <- c }
	u := start(t, config.Server{Name: "math", URL: url}, opts)

	cat := <-changes
	if got, want := toolNames(cat), []string{"add", "whoami"}; !slices.Equal(got, want) {
		t.Errorf("tools = %v, want %v", got, want)
	}
	if len(cat.Resources) != 1 || cat.Resources[0].URI != mcptest.PiURI {
		t.Errorf("resources = %v, want %s", cat.Resources, mcptest.PiURI)
	}
	s := waitState(t, u, StateReady) // set just after OnChange
	if s.ProtocolVersion != "2025-11-25" || s.Tools != 2 || s.Resources != 1 || s.LastError != "" {
		t.Errorf("snapshot = %+v", s)
	}
	cs, err := u.Session()
	if err != nil {
		t.Fatal(err)
	}
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "whoami"})
	if err != nil || res.Content[0].(*mcp.TextContent).Text != "m1" {
		t.Fatalf("whoami = %v, %v", res, err)
	}
}

func TestCredentialHeader(t *testing.T) {
	t.Setenv("UPSTREAM_TEST_TOKEN", "Bearer s3cret")
	srv := mcptest.NewEchoServer("e1")
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil)
	var denied atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Token") != "Bearer s3cret" {
			denied.Add(1)
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { closeSessions(srv); ts.Close() })

	cred := &config.Credential{Header: "X-Token", SecretRef: config.SecretRef{Env: "UPSTREAM_TEST_TOKEN"}}
	u := start(t, config.Server{Name: "echo", URL: ts.URL, Credential: cred}, fast())
	waitState(t, u, StateReady)
	if denied.Load() != 0 {
		t.Errorf("%d requests lacked the credential", denied.Load())
	}

	bad := &config.Credential{Header: "X-Token", SecretRef: config.SecretRef{Env: "UPSTREAM_TEST_UNSET"}}
	u2 := start(t, config.Server{Name: "echo2", URL: ts.URL, Credential: bad}, fast())
	s := waitState(t, u2, StateInvalid)
	if !strings.Contains(s.LastError, "UPSTREAM_TEST_UNSET") {
		t.Errorf("lastError = %q, want it to name the variable", s.LastError)
	}
}

// A refreshed credential is sent on the next request of the live session,
// without a reconnect; a refresh that fails keeps the last value.
func TestCredentialRefresh(t *testing.T) {
	t.Setenv("UPSTREAM_TEST_TOKEN", "Bearer one")
	srv := mcptest.NewEchoServer("e1")
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil)
	var last atomic.Pointer[string]
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			v := r.Header.Get("X-Token")
			last.Store(&v)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { closeSessions(srv); ts.Close() })
	cred := &config.Credential{Header: "X-Token", SecretRef: config.SecretRef{Env: "UPSTREAM_TEST_TOKEN"}}
	u := start(t, config.Server{Name: "echo", URL: ts.URL, Credential: cred}, fast())
	waitState(t, u, StateReady)
	cs, err := u.Session()
	if err != nil {
		t.Fatal(err)
	}
	call := func(want string) {
		t.Helper()
		if _, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "whoami"}); err != nil {
			t.Fatal(err)
		}
		if got := *last.Load(); got != want {
			t.Fatalf("backend got credential %q, want %q", got, want)
		}
	}
	call("Bearer one")
	os.Setenv("UPSTREAM_TEST_TOKEN", "Bearer two")
	if err := u.RefreshCredential(); err != nil {
		t.Fatal(err)
	}
	call("Bearer two")
	os.Unsetenv("UPSTREAM_TEST_TOKEN")
	if err := u.RefreshCredential(); err == nil || !strings.Contains(err.Error(), "UPSTREAM_TEST_TOKEN") {
		t.Fatalf("refresh of an unset variable: %v", err)
	}
	call("Bearer two")
	if now, _ := u.Session(); now != cs {
		t.Error("the session was replaced")
	}
}

func closeSessions(srv *mcp.Server) {
	for ss := range srv.Sessions() {
		ss.Close()
	}
}

func TestInvalidBackends(t *testing.T) {
	noCaps := mcp.NewServer(&mcp.Implementation{Name: "empty"}, &mcp.ServerOptions{Capabilities: &mcp.ServerCapabilities{}})
	oldOnly := mcp.NewServer(&mcp.Implementation{Name: "old"}, &mcp.ServerOptions{SupportedProtocolVersions: []string{"2024-11-05"}})
	mcptest.AddStaticTool(oldOnly, "t", "x")
	noCapsURL, _ := serve(t, "127.0.0.1:0", noCaps)
	oldURL, _ := serve(t, "127.0.0.1:0", oldOnly)
	future := httptest.NewServer(http.HandlerFunc(fakeInitialize("1999-01-01")))
	t.Cleanup(future.Close)

	for _, tc := range []struct{ name, url, want string }{
		{"no-capabilities", noCapsURL, "declares none of the tools, prompts and resources"},
		{"old-version", oldURL, `protocol version "2024-11-05"`},
		{"unknown-version", future.URL, `protocol version "1999-01-01"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := start(t, config.Server{Name: tc.name, URL: tc.url}, fast())
			s := waitState(t, u, StateInvalid)
			if !strings.Contains(s.LastError, tc.want) {
				t.Errorf("lastError = %q, want it to contain %q", s.LastError, tc.want)
			}
			if _, err := u.Session(); !errors.Is(err, ErrNotReady) {
				t.Errorf("Session() error = %v, want ErrNotReady", err)
			}
		})
	}
}

// fakeInitialize answers initialize with the given protocol version and a
// tools capability, and anything else with 202.
func fakeInitialize(version string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !strings.Contains(string(body), `"initialize"`) {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"`+version+
			`","capabilities":{"tools":{}},"serverInfo":{"name":"fake","version":"0"}}}`)
	}
}

func TestListChangedRelists(t *testing.T) {
	srv := mcptest.NewEchoServer("e1")
	url, _ := serve(t, "127.0.0.1:0", srv)
	changes := make(chan Catalog, 10)
	opts := fast()
	opts.PingInterval = time.Hour // only the notification may trigger the re-list
	opts.OnChange = func(c Catalog) { changes <- c }
	start(t, config.Server{Name: "echo", URL: url}, opts)
	<-changes

	mcptest.AddStaticTool(srv, "extra", "hi")
	if got := toolNames(<-changes); !slices.Contains(got, "extra") {
		t.Fatalf("after add: tools = %v", got)
	}
	srv.RemoveTools("extra")
	if got := toolNames(<-changes); slices.Contains(got, "extra") {
		t.Fatalf("after remove: tools = %v", got)
	}
}

// OnListChanged reports the lists a backend announced, also when the
// re-list finds nothing new, and only those: the re-lists the Upstream
// makes on its own (a stateless backend's probes here) report nothing.
func TestOnListChangedReportsAnnouncements(t *testing.T) {
	srv := mcptest.NewEchoServer("e1")
	probes := mcptest.CountRequests(srv, "tools/list") // a stateless backend's probe re-lists
	ts := httptest.NewServer(mcp.NewStreamableHTTPHandler(
		func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{Stateless: true}))
	t.Cleanup(ts.Close)
	changes, announced := make(chan Catalog, 10), make(chan Lists, 10)
	opts := fast()
	opts.OnChange = func(c Catalog) { changes <- c }
	opts.OnListChanged = func(l Lists) { announced <- l }
	u := start(t, config.Server{Name: "echo", URL: ts.URL, Stateless: true}, opts)
	<-changes
	waitState(t, u, StateReady)

	for _, want := range []bool{true, false} { // added, then the same again
		mcptest.AddStaticTool(srv, "extra", "hi")
		select {
		case l := <-announced:
			if l != ToolList {
				t.Errorf("announced %b, want tools only (%b)", l, ToolList)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no OnListChanged")
		}
		if changed := len(changes) > 0; changed != want { // OnChange precedes OnListChanged
			t.Errorf("OnChange called: %v, want %v", changed, want)
		}
		for len(changes) > 0 {
			<-changes
		}
	}
	waitMore(t, "three probes", probes, 3)
	if len(announced) != 0 || len(changes) != 0 {
		t.Errorf("probes reported %d announcements, %d changes", len(announced), len(changes))
	}
}

func TestBackendDownThenBack(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: the first attempts are refused

	changes := make(chan Catalog, 10)
	opts := fast()
	opts.OnChange = func(c Catalog) { changes <- c }
	u := start(t, config.Server{Name: "echo", URL: "http://" + addr + mcptest.Path}, opts)
	s := waitState(t, u, StateUnreachable)
	if s.LastError == "" {
		t.Error("unreachable without lastError")
	}

	srv := mcptest.NewEchoServer("e1")
	_, stop := serve(t, addr, srv)
	if got := toolNames(<-changes); !slices.Contains(got, "echo") {
		t.Fatalf("tools = %v", got)
	}
	first, _ := u.Session()

	// A restart: the new process does not know the old session. The broker
	// must notice (404 on the SSE stream or a failed ping) and reconnect.
	stop()
	_, stop = serve(t, addr, srv)
	eventually(t, "a new session", func() bool {
		cs, err := u.Session()
		return err == nil && cs != first
	})

	// Down for good: the catalog is withdrawn.
	stop()
	waitState(t, u, StateUnreachable)
	for c := range changes {
		if len(c.Tools) == 0 {
			break
		}
	}
}

// TestBackoffPacing runs the reconnect loop against a transport that always
// fails, in a synctest bubble so that minutes of default backoff take no
// real time.
func TestBackoffPacing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var attempts []time.Time
		rt := roundTripFunc(func(*http.Request) (*http.Response, error) {
			attempts = append(attempts, time.Now())
			return nil, errors.New("connection refused")
		})
		u := New(config.Server{Name: "down", URL: "http://down.invalid/mcp"}, Options{Transport: rt})
		u.Start()
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		u.Close()

		if s := u.Snapshot(); s.State != StateUnreachable || !strings.Contains(s.LastError, "connection refused") {
			t.Errorf("snapshot = %+v", s)
		}
		// 250ms doubling to the 30s cap, jittered within [d/2, d]: about 12
		// attempts in two minutes, never two within the cap's half at the end.
		if n := len(attempts); n < 9 || n > 16 {
			t.Errorf("%d attempts in 2m, want about 12", n)
		}
		if gap := attempts[len(attempts)-1].Sub(attempts[len(attempts)-2]); gap < 15*time.Second || gap > 30*time.Second {
			t.Errorf("last gap = %v, want within [15s, 30s]", gap)
		}
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestBackoffBounds(t *testing.T) {
	b := backoff{min: 100 * time.Millisecond, max: time.Second}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		w *= time.Millisecond
		if d := b.next(); d < w/2 || d > w {
			t.Errorf("attempt %d: delay %v outside [%v, %v]", i, d, w/2, w)
		}
	}
	b.reset()
	if d := b.next(); d > 100*time.Millisecond {
		t.Errorf("after reset: %v", d)
	}
}

// TestHangingStreamDoesNotHang covers a backend that accepts the standalone
// SSE GET but never answers it: Connect must give up after RequestTimeout
// rather than hang, and Close must return promptly.
func TestHangingStreamDoesNotHang(t *testing.T) {
	srv := mcptest.NewEchoServer("e1")
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			<-r.Context().Done()
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { closeSessions(srv); ts.Close() })

	opts := fast()
	opts.RequestTimeout = 100 * time.Millisecond
	u := New(config.Server{Name: "hang", URL: ts.URL}, opts)
	u.Start()
	s := waitState(t, u, StateUnreachable)
	if !strings.Contains(s.LastError, "SSE") {
		t.Errorf("lastError = %q, want the SSE stream failure", s.LastError)
	}
	start := time.Now()
	u.Close()
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v", d)
	}
}

// subscribingServer is a math server that records subscriptions.
func subscribingServer(subs *sync.Map) *mcp.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: "subs", Version: "v0"}, &mcp.ServerOptions{
		SubscribeHandler: func(_ context.Context, req *mcp.SubscribeRequest) error {
			subs.Store(req.Params.URI, true)
			return nil
		},
		UnsubscribeHandler: func(_ context.Context, req *mcp.UnsubscribeRequest) error {
			subs.Delete(req.Params.URI)
			return nil
		},
	})
	srv.AddResource(&mcp.Resource{URI: mcptest.PiURI, Name: "pi"},
		func(context.Context, *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			return &mcp.ReadResourceResult{}, nil
		})
	return srv
}

func TestSubscribeAndResubscribe(t *testing.T) {
	// Not ready: nothing is subscribed, and nothing will be.
	down := start(t, config.Server{Name: "down", URL: "http://127.0.0.1:1/mcp"}, fast())
	if err := down.Subscribe(t.Context(), mcptest.PiURI); !errors.Is(err, ErrNotReady) {
		t.Errorf("Subscribe while not ready = %v, want ErrNotReady", err)
	}
	if s := down.Subscriptions(); len(s) != 0 {
		t.Errorf("subscriptions = %v", s)
	}

	// Seeded subscriptions are made on connect and reported as updates.
	var subs sync.Map
	url, _ := serve(t, "127.0.0.1:0", subscribingServer(&subs))
	updated := make(chan string, 10)
	opts := fast()
	opts.Subscriptions = []string{mcptest.PiURI}
	opts.OnResourceUpdated = func(uri string) { updated <- uri }
	u := start(t, config.Server{Name: "subs", URL: url}, opts)
	waitState(t, u, StateReady)
	eventually(t, "seeded subscription", func() bool { _, ok := subs.Load(mcptest.PiURI); return ok })
	select {
	case uri := <-updated:
		if uri != mcptest.PiURI {
			t.Errorf("updated %q", uri)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no update after re-subscribing")
	}

	if err := u.Unsubscribe(t.Context(), mcptest.PiURI); err != nil {
		t.Fatal(err)
	}
	if _, ok := subs.Load(mcptest.PiURI); ok {
		t.Error("still subscribed")
	}
	if s := u.Subscriptions(); len(s) != 0 {
		t.Errorf("subscriptions = %v", s)
	}
}
