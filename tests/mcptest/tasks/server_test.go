package tasks

import (
	"net/http"
	"testing"
)

func TestTaskIDMismatch(t *testing.T) {
	get := []byte(`{"jsonrpc":"2.0","id":7,"method":"tasks/get","params":{"taskId":"abc"}}`)
	for _, tc := range []struct {
		name   string
		header http.Header
		body   []byte
		bad    bool
	}{
		{"match", http.Header{"Mcp-Name": {"abc"}}, get, false},
		{"mismatch", http.Header{"Mcp-Name": {"xyz"}}, get, true},
		{"missing", http.Header{}, get, true},
		{"other method", http.Header{}, []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`), false},
		{"no taskId", http.Header{}, []byte(`{"jsonrpc":"2.0","id":1,"method":"tasks/cancel","params":{}}`), false},
		{"not json", http.Header{}, []byte(`{`), false},
	} {
		id, msg, bad := taskIDMismatch(tc.header, tc.body)
		if bad != tc.bad {
			t.Errorf("%s: bad = %v (%s), want %v", tc.name, bad, msg, tc.bad)
		}
		if bad && string(id) != "7" {
			t.Errorf("%s: id = %s, want 7", tc.name, id)
		}
	}
}

func TestDeclaresExtension(t *testing.T) {
	for _, tc := range []struct {
		name string
		meta map[string]any
		want bool
	}{
		{"declared", map[string]any{"io.modelcontextprotocol/clientCapabilities": map[string]any{
			"extensions": map[string]any{ExtensionID: map[string]any{}}}}, true},
		{"other extension", map[string]any{"io.modelcontextprotocol/clientCapabilities": map[string]any{
			"extensions": map[string]any{"x/y": map[string]any{}}}}, false},
		{"no capabilities", map[string]any{}, false},
		{"nil meta", nil, false},
	} {
		if got := declaresExtension(tc.meta); got != tc.want {
			t.Errorf("%s: declaresExtension = %v, want %v", tc.name, got, tc.want)
		}
	}
}
