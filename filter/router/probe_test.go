package router

import "testing"

func TestProbeDup(t *testing.T) {
	b := newBackend(t, true)
	r := routerFor(t, 0, map[string]*backend{"echo": b})
	gw := codec(t).Mint()
	for _, body := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo_x","name":"secret"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo_x"},"params":{"name":"secret"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo_x\r\nx-injected: 1"}}`,
	} {
		res := send(t, r, gw, "2025-06-18", body)
		tool, _ := res.request.get("x-mcp-toolname")
		t.Logf("%s\n  header toolname %q -> backend: %d %s", body, tool, res.status, res.body)
	}
}
