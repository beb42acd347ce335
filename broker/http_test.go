package broker

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/broker/upstream"
	"github.com/mcpgw/mcpgw/filter/sessionid"
)

const listTools = `{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}`

// post sends a JSON-RPC body to the broker's /mcp with an optional session id.
func post(t *testing.T, url, sessionID, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	if sessionID != "" {
		req.Header.Set(sessionIDHeader, sessionID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestForgedOrUnknownSessionIDIs404(t *testing.T) {
	h := twoBackends(t)
	c := connect(t, h.url, nil)
	if resp := post(t, h.url, c.ID(), listTools); resp.StatusCode != http.StatusOK {
		t.Fatalf("genuine session: status %d", resp.StatusCode)
	}

	other, err := sessionid.New([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	mine, err := sessionid.New([]byte(testKey))
	if err != nil {
		t.Fatal(err)
	}
	for name, id := range map[string]string{
		"garbage":           "not-a-session",
		"signed-by-another": other.Mint(""),
		"tampered":          c.ID()[:len(c.ID())-2] + "AA",
		"genuine-unknown":   mine.Mint(""), // e.g. minted before a broker restart
	} {
		if resp := post(t, h.url, id, listTools); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: status %d, want 404", name, resp.StatusCode)
		}
	}
	for _, method := range []string{http.MethodGet, http.MethodDelete} {
		req, _ := http.NewRequestWithContext(t.Context(), method, h.url, nil)
		req.Header.Set(sessionIDHeader, "forged")
		req.Header.Set("Accept", "text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s with a forged id: status %d, want 404", method, resp.StatusCode)
		}
	}
	if got := h.b.metrics.sessionsRejected.Load(); got != 5 {
		t.Errorf("rejected = %d, want 5 (the genuine-unknown one is the go-sdk's)", got)
	}
}

func TestNoConfigYet(t *testing.T) {
	b := New(Options{})
	defer b.Close()
	for _, path := range []string{"/mcp", "/healthz"} {
		rec := httptest.NewRecorder()
		b.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != http.StatusServiceUnavailable {
			t.Errorf("%s: status %d, want 503", path, rec.Code)
		}
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func TestStatusHealthzMetrics(t *testing.T) {
	h := twoBackends(t)
	c := connect(t, h.url, nil)
	c.toolNames(t)

	code, body := get(t, h.ts.URL+"/status")
	if code != http.StatusOK {
		t.Fatalf("/status: %d", code)
	}
	// Decode into plain maps: the field names are the contract.
	var st struct {
		Servers []map[string]any `json:"servers"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Servers) != 2 {
		t.Fatalf("servers = %v", st.Servers)
	}
	math := st.Servers[1]
	for _, field := range []string{"name", "url", "prefix", "state", "protocolVersion", "tools", "prompts", "resources", "lastError", "since"} {
		if _, ok := math[field]; !ok {
			t.Errorf("/status server lacks %q: %v", field, math)
		}
	}
	if math["name"] != "math" || math["prefix"] != "math_" || math["state"] != string(upstream.StateReady) ||
		math["tools"] != 2.0 || math["resources"] != 1.0 || math["protocolVersion"] != "2025-11-25" {
		t.Errorf("math status = %v", math)
	}

	if code, body := get(t, h.ts.URL+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz = %d %q", code, body)
	}

	code, body = get(t, h.ts.URL+"/metrics")
	for _, want := range []string{
		"# TYPE mcpgw_broker_sessions_created_total counter",
		`mcpgw_broker_servers{state="ready"} 2`,
		`mcpgw_broker_exposed{kind="tool"} 4`,
		"mcpgw_broker_sessions 1",
	} {
		if code != http.StatusOK || !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
}
