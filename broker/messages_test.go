package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgw/mcpgw/filter/sessionid"
)

// rawPost sends body to url with the headers of one era and returns the
// status, the Content-Type and the body of the answer.
func rawPost(t *testing.T, url string, header map[string]string, body string) (int, string, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for k, v := range header {
		if v == "" {
			req.Header.Del(k)
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), out
}

// jsonrpcError decodes a JSON-RPC error response (or the first of a
// batch's), failing the test if the answer is anything else.
func jsonrpcError(t *testing.T, contentType string, body []byte) (id string, code int64) {
	t.Helper()
	if !strings.HasPrefix(contentType, "application/json") {
		t.Fatalf("answer is %q, not JSON: %q", contentType, body)
	}
	var msg struct {
		ID    json.RawMessage `json:"id"`
		Error *struct {
			Code    int64  `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if strings.HasPrefix(string(body), "[") {
		var batch []json.RawMessage
		if err := json.Unmarshal(body, &batch); err != nil || len(batch) == 0 {
			t.Fatalf("batch answer %q: %v", body, err)
		}
		body = batch[0]
	}
	if err := json.Unmarshal(body, &msg); err != nil || msg.Error == nil || msg.Error.Message == "" {
		t.Fatalf("not a JSON-RPC error with a message: %q (%v)", body, err)
	}
	return string(msg.ID), msg.Error.Code
}

// TestInvalidMessagesGetJSONRPCErrors: every invalid message gets a
// JSON-RPC error echoing its id, in both eras, where the go-sdk answered
// text/plain or accepted with 202 and no answer.
func TestInvalidMessagesGetJSONRPCErrors(t *testing.T) {
	h := twoBackends(t)
	c := connect(t, h.url, nil)
	session := map[string]string{"Mcp-Protocol-Version": "2025-11-25", sessionIDHeader: c.ID()}
	stateless := map[string]string{"Mcp-Protocol-Version": statelessVersion, "Mcp-Method": "tools/frobnicate"}
	for _, tc := range []struct {
		name     string
		header   map[string]string
		body     string
		status   int
		code     int64
		id       string
		accepted bool // the go-sdk's own answer (checked: not refused)
	}{
		{"session unknown method", session, `{"jsonrpc":"2.0","id":1,"method":"tools/frobnicate","params":{}}`, 200, -32601, "1", false},
		{"stateless unknown method", stateless, `{"jsonrpc":"2.0","id":"a","method":"tools/frobnicate","params":{}}`, 404, -32601, `"a"`, false},
		{"session no method, no result", session, `{"jsonrpc":"2.0","id":2}`, 400, -32600, "2", false},
		{"stateless no method, no result", stateless, `{"jsonrpc":"2.0","id":2}`, 400, -32600, "2", false},
		{"result and error", session, `{"jsonrpc":"2.0","id":3,"result":{},"error":{"code":1,"message":"x"}}`, 400, -32600, "3", false},
		{"error not an object", session, `{"jsonrpc":"2.0","id":3,"error":"x"}`, 400, -32600, "3", false},
		{"answer without id", session, `{"jsonrpc":"2.0","result":{}}`, 400, -32600, "null", false},
		{"unknown notification", session, `{"jsonrpc":"2.0","method":"notifications/frobnicate"}`, 400, -32601, "null", false},
		{"notification with id", session, `{"jsonrpc":"2.0","id":4,"method":"notifications/initialized"}`, 400, -32600, "4", false},
		{"request without id", session, `{"jsonrpc":"2.0","method":"tools/list"}`, 400, -32600, "null", false},
		{"null id", session, `{"jsonrpc":"2.0","id":null,"method":"tools/list"}`, 400, -32600, "null", false},
		{"fractional id", session, `{"jsonrpc":"2.0","id":4.5,"method":"ping"}`, 400, -32600, "null", false},
		{"method not a string", session, `{"jsonrpc":"2.0","id":5,"method":7}`, 400, -32600, "5", false},
		{"missing params", session, `{"jsonrpc":"2.0","id":6,"method":"initialize"}`, 200, -32602, "6", false},
		{"miscased member", session, `{"jsonrpc":"2.0","id":7,"Method":"ping"}`, 400, -32600, "7", false},
		{"not an object", session, `42`, 400, -32600, "null", false},
		{"empty body", session, ``, 400, -32700, "null", false},
		{"not JSON", session, `{"jsonrpc":`, 400, -32700, "null", false},
		{"empty batch", map[string]string{"Mcp-Protocol-Version": "2025-03-26", sessionIDHeader: c.ID()}, `[]`, 400, -32600, "null", false},
		{"batch with an invalid message", map[string]string{"Mcp-Protocol-Version": "2025-03-26", sessionIDHeader: c.ID()},
			`[{"jsonrpc":"2.0","id":8,"method":"ping"},{"jsonrpc":"2.0","id":9}]`, 400, -32600, "9", false},
		{"unsupported version", map[string]string{"Mcp-Protocol-Version": "2024-11-05", sessionIDHeader: c.ID()},
			`{"jsonrpc":"2.0","id":10,"method":"ping"}`, 400, -32022, "10", false},
		{"future version", map[string]string{"Mcp-Protocol-Version": "2099-01-01", "Mcp-Method": "ping"},
			`{"jsonrpc":"2.0","id":13,"method":"ping"}`, 400, -32022, "13", false},
		{"garbage version", map[string]string{"Mcp-Protocol-Version": "banana", "Mcp-Method": "ping"},
			`{"jsonrpc":"2.0","id":14,"method":"ping"}`, 400, -32022, "14", false},
		{"session-era request without a session", map[string]string{"Mcp-Protocol-Version": "2025-11-25"},
			`{"jsonrpc":"2.0","id":15,"method":"tools/list"}`, 400, -32600, "15", false},
		// The go-sdk's own refusals, rewritten.
		{"no Accept", map[string]string{"Mcp-Protocol-Version": "2025-11-25", sessionIDHeader: c.ID(), "Accept": ""},
			`{"jsonrpc":"2.0","id":11,"method":"ping"}`, 400, -32600, "11", false},
		{"valid message passes", session, `{"jsonrpc":"2.0","id":12,"method":"ping"}`, 200, 0, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, ct, body := rawPost(t, h.url, tc.header, tc.body)
			if status != tc.status {
				t.Errorf("status %d, want %d (%s %q)", status, tc.status, ct, body)
			}
			if tc.accepted {
				if !strings.Contains(string(body), `"result"`) {
					t.Errorf("valid message not answered: %s %q", ct, body)
				}
				return
			}
			if id, code := jsonrpcError(t, ct, body); code != tc.code || id != tc.id {
				t.Errorf("error code %d id %s, want %d %s (%q)", code, id, tc.code, tc.id, body)
			}
		})
	}
	// 24: the refusals before the go-sdk (not its own, rewritten ones).
	if _, body := get(t, h.ts.URL+"/metrics"); !strings.Contains(body, "\nmcpgw_broker_messages_refused_total 24\n") {
		t.Errorf("/metrics lacks mcpgw_broker_messages_refused_total 24:\n%s", body)
	}
}

// TestRefusalsOfSessionsAreJSONRPC: the 404 of a forged id (the broker's)
// and of a genuine but unknown one (the go-sdk's) are JSON-RPC errors with
// the request's id; a missing config is too.
func TestRefusalsOfSessionsAreJSONRPC(t *testing.T) {
	h := twoBackends(t)
	mine, err := sessionid.New([]byte(testKey))
	if err != nil {
		t.Fatal(err)
	}
	for name, sid := range map[string]string{"forged": "forged", "genuine-unknown": mine.Mint("")} {
		status, ct, body := rawPost(t, h.url, map[string]string{"Mcp-Protocol-Version": "2025-11-25", sessionIDHeader: sid}, listTools)
		if id, code := jsonrpcError(t, ct, body); status != 404 || code != -32600 || id != "2" {
			t.Errorf("%s: HTTP %d code %d id %s, want 404 -32600 2", name, status, code, id)
		}
	}
	b := New(Options{})
	defer b.Close()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/mcp", strings.NewReader(listTools))
	req.Header.Set("Content-Type", "application/json")
	b.Handler().ServeHTTP(rec, req)
	if id, code := jsonrpcError(t, rec.Header().Get("Content-Type"), rec.Body.Bytes()); rec.Code != 503 || code != -32603 || id != "2" {
		t.Errorf("no config: HTTP %d code %d id %s, want 503 -32603 2", rec.Code, code, id)
	}
}

// TestServerMethodsMatchGoSDK checks serverMethods against the go-sdk
// handler itself (no broker checks in front): each method is known to it,
// with the shape the table says. A go-sdk upgrade that adds, drops or
// reshapes a method fails here.
func TestServerMethodsMatchGoSDK(t *testing.T) {
	b := New(Options{})
	defer b.Close()
	ts := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return b.server },
		&mcp.StreamableHTTPOptions{Stateless: true}))
	defer ts.Close()
	header := map[string]string{"Mcp-Protocol-Version": "2025-11-25"}
	send := func(msg string) string {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL, strings.NewReader(msg))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return fmt.Sprintf("%d %s", resp.StatusCode, out)
	}
	for method, kind := range serverMethods {
		withID := fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":%q}`, method)
		noID := fmt.Sprintf(`{"jsonrpc":"2.0","method":%q}`, method)
		var probes map[string]string // message → what the go-sdk must say
		switch kind {
		case callWithParams:
			probes = map[string]string{withID: `missing required "params"`, noID: "missing id"}
		case call:
			probes = map[string]string{noID: "missing id"}
			if got := send(withID); strings.Contains(got, "params") || strings.Contains(got, "unsupported") {
				t.Errorf("%s without params: %s (the table says params are optional)", method, got)
			}
		case notice:
			probes = map[string]string{withID: "unexpected id"}
		case noticeWithParams:
			probes = map[string]string{withID: "unexpected id", noID: `missing required "params"`}
		}
		for msg, want := range probes {
			if got := send(msg); !strings.Contains(got, want) {
				t.Errorf("go-sdk answers %s with %q, want %q", msg, got, want)
			}
		}
	}
	if got := send(`{"jsonrpc":"2.0","id":1,"method":"tools/frobnicate"}`); !strings.Contains(got, "unsupported") {
		t.Errorf("an unknown method: %q, want the go-sdk's unsupported", got)
	}
}
