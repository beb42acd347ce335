package dynmod_test

import (
	"testing"

	"github.com/mcpgw/mcpgw/filter/dynmod/internal/fakehost"
)

// Since Envoy 1.40 the destroy hook runs after the stream is gone, and
// Envoy asks modules to do their end-of-stream bookkeeping in
// stream_complete: a stream's counters are exported there, once.
func TestCountersExportedAtStreamComplete(t *testing.T) {
	g := newGateway(t, server{name: "a", url: "http://a.svc/mcp", hostname: "a.svc", prefix: "a_"})
	s, st := g.post(request{session: g.codec.Mint(""), body: `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`})
	if st != fakehost.Continue {
		t.Fatalf("body status = %d, want Continue (forwarded to the broker)", st)
	}
	s.Complete()
	if n := counter(t, g.cfg, "mcpgw.forwarded"); n != 1 {
		t.Errorf("after stream_complete: mcpgw.forwarded = %d, want 1", n)
	}
	s.Destroy()
	if n := counter(t, g.cfg, "mcpgw.forwarded"); n != 1 {
		t.Errorf("after destroy: mcpgw.forwarded = %d, want 1 (exported once)", n)
	}
}
