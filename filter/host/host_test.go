package host

import (
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/filter/config"
	"github.com/mcpgw/mcpgw/filter/router"
	"github.com/mcpgw/mcpgw/filter/sessionid"
)

func TestParseFilterConfig(t *testing.T) {
	for _, tc := range []struct{ raw, err string }{
		{`{"config_path": "/etc/mcpgw/config.yaml"}`, ""},
		{"{\n \"config_path\": \"/x\"\n}\n", ""}, // a Struct, as Envoy renders it
		{" ", "filter_config is empty"},
		{`{"config_path": 1}`, "cannot unmarshal number"},
		{`{"config_path": "/x", "other": 1}`, `unknown field "other"`},
		{`{"config_path": "/x"} {}`, "unexpected data after the JSON object"},
		{`{}`, "config_path is required"},
		{`{"config_path": "x.yaml"}`, "must be absolute"},
	} {
		c, err := ParseFilterConfig("filter_config", []byte(tc.raw))
		switch {
		case tc.err == "" && (err != nil || c.ConfigPath == ""):
			t.Errorf("%s: %v %+v", tc.raw, err, c)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: error %v, want %q", tc.raw, err, tc.err)
		}
	}
}

func TestParseContentLength(t *testing.T) {
	for v, want := range map[string]int64{"": -1, "0": 0, "1234": 1234, "-1": -1, "1e3": -1,
		" 1": -1, "1234567890123456789": -1} {
		if got := ParseContentLength(v); got != want {
			t.Errorf("ParseContentLength(%q) = %d, want %d", v, got, want)
		}
	}
}

func TestCounterNames(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < NumCounters; i++ {
		n := CounterName(i)
		if !strings.HasPrefix(n, "mcpgw.") || seen[n] || strings.HasSuffix(n, ".none") {
			t.Errorf("counter %d: %q", i, n)
		}
		seen[n] = true
	}
	if ReplyDetails(router.RejectParse) != "mcpgw_parse_error" {
		t.Errorf("ReplyDetails = %q", ReplyDetails(router.RejectParse))
	}
}

// Concurrent flushes export every increment exactly once.
func TestFlushExactlyOnce(t *testing.T) {
	var m router.Metrics
	var w config.WatchStats
	var c Counters
	c.init(&m, &w)
	var mu sync.Mutex
	var total [NumCounters]uint64
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				m.Requests.Add(1)
				m.Rejected[router.RejectParse].Add(1)
				c.Flush(func(i int, d uint64) {
					mu.Lock()
					total[i] += d
					mu.Unlock()
				})
			}
		}()
	}
	wg.Wait()
	c.Flush(func(i int, d uint64) { total[i] += d })
	for i, v := range total {
		want := uint64(0)
		if n := CounterName(i); n == "mcpgw.requests" || n == "mcpgw.rejected.parse_error" {
			want = 4000
		}
		if v != want {
			t.Errorf("%s exported %d, want %d", CounterName(i), v, want)
		}
	}
}

type lines struct {
	mu    sync.Mutex
	level slog.Level
	out   []string
}

func (l *lines) Enabled(lv slog.Level) bool { return lv >= l.level }
func (l *lines) Write(_ slog.Level, b []byte) {
	l.mu.Lock()
	l.out = append(l.out, string(b))
	l.mu.Unlock()
}

func TestLogHandler(t *testing.T) {
	sink := &lines{level: slog.LevelInfo}
	log := slog.New(NewLogHandler(sink)).With("config", "/a b").WithGroup("g")
	log.Info("hello", "k", "v", "n", 3, slog.Group("sub", "x", "y\nz"), "err", errors.New("boom"))
	log.Debug("hidden")
	want := `mcpgw: hello config="/a b" g.k=v g.n=3 g.sub.x="y\nz" g.err=boom`
	if len(sink.out) != 1 || sink.out[0] != want {
		t.Errorf("lines %q\nwant %q", sink.out, want)
	}
}

func writeConfig(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	key := filepath.Join(dir, "key")
	if err := os.WriteFile(key, []byte(strings.Repeat("k", 40)), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "config.yaml")
	cfg := "version: mcpgw/v1\ngateway:\n  sessionKey: {file: " + key + "}\nservers: []\n"
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Filter configs of one file share a router until the last is released.
func TestAcquireShares(t *testing.T) {
	path := writeConfig(t)
	h := slog.DiscardHandler
	a, err := Acquire(path, h)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Acquire(path, h)
	if err != nil {
		t.Fatal(err)
	}
	if a != b || a.Router() == nil || a.Counters() == nil {
		t.Fatal("two acquires of one path do not share")
	}
	a.Release()
	c, _ := Acquire(path, h)
	if c != b {
		t.Error("released while still referenced")
	}
	c.Release()
	b.Release()
	d, _ := Acquire(path, h)
	defer d.Release()
	if d == b {
		t.Error("the last release did not drop the router")
	}
	if _, err := Acquire(filepath.Join(t.TempDir(), "missing.yaml"), h); err == nil {
		t.Error("a missing file was accepted")
	}
}

// The last Release stops the router's background work: the follower of
// the broker's revocation feed leaves its long poll.
func TestLastReleaseClosesRouter(t *testing.T) {
	polls, hangups := make(chan struct{}, 4), make(chan struct{}, 4)
	broker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		polls <- struct{}{}
		<-r.Context().Done()
		hangups <- struct{}{}
	}))
	defer broker.Close()
	path := writeConfig(t)
	b, _ := os.ReadFile(path)
	cfg := strings.Replace(string(b), "gateway:\n", "gateway:\n  brokerURL: "+broker.URL+"\n", 1)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	sr, err := Acquire(path, slog.DiscardHandler)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-polls:
	case <-time.After(5 * time.Second):
		t.Fatal("the router did not follow the broker's feed")
	}
	sr.Release()
	select {
	case <-hangups:
	case <-time.After(5 * time.Second):
		t.Fatal("the follower outlived the last Release")
	}
}

// The last Release closes the router's background work: a backend session
// a draining stream still needs is not opened any more (the stream gets a
// retryable error, and no request leaves the closed router).
func TestLastReleaseStopsSessionOpens(t *testing.T) {
	var requests atomic.Int64
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		requests.Add(1)
		http.Error(w, "no", http.StatusInternalServerError)
	}))
	defer backend.Close()
	path := writeConfig(t)
	key := filepath.Join(filepath.Dir(path), "key")
	cfg := "version: mcpgw/v1\ngateway:\n  sessionKey: {file: " + key + "}\nservers:\n" +
		"- {name: a, url: '" + backend.URL + "/mcp', hostname: a.local, prefix: a_}\n"
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	sr, err := Acquire(path, slog.DiscardHandler)
	if err != nil {
		t.Fatal(err)
	}
	codec, err := sessionid.New([]byte(strings.Repeat("k", 40)))
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a_x"}}`)
	s := sr.Router().NewStream()
	defer s.Release()
	s.RequestHeaders(router.RequestHeaders{Path: "/mcp", Method: "POST", ContentType: "application/json",
		ContentLength: int64(len(body)), SessionID: codec.Mint(""), ProtocolVersion: "2025-06-18"})
	if a := s.RequestBody(body); a != router.OpenSession {
		t.Fatalf("first call: action %d", a)
	}
	sr.Release() // the stream outlives its filter config
	if a := s.OpenSession(t.Context()); a != router.Reply || s.Rejection() != router.RejectBackendUnavailable {
		t.Fatalf("open after the last release: action %d, %s", a, s.Rejection())
	}
	if n := requests.Load(); n != 0 {
		t.Fatalf("the released router sent %d requests to the backend", n)
	}
}
