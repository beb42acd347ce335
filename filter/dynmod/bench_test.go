package dynmod_test

import (
	"testing"

	"github.com/mcpgw/mcpgw/filter/dynmod/internal/fakehost"
)

// The benchmarks run whole streams through the fake host, so their numbers
// include the fake host's own work (Go maps, C allocations per header and
// chunk): an upper bound of the adapter's cost. Profile with
// -memprofile to see the adapter's share.

func benchStream(b *testing.B, g *gateway, r request, wantBody int) {
	b.Helper()
	b.ReportAllocs()
	for b.Loop() {
		s := g.cfg.NewStream()
		s.Request.Add(":method", "POST")
		s.Request.Add(":path", "/mcp")
		s.Request.Add(":path", "/mcp")
		s.Request.Add("content-type", "application/json")
		if r.session != "" {
			s.Request.Add("mcp-session-id", r.session)
		}
		if st := s.RequestHeaders(false); st != fakehost.StopIteration {
			b.Fatalf("headers status %d", st)
		}
		if st := s.RequestBody([]byte(r.body), true); st != wantBody {
			b.Fatalf("body status %d, replies %+v", st, s.Replies)
		}
		s.Response.Add(":status", "200")
		s.ResponseHeaders(false)
		s.Destroy()
	}
}

func BenchmarkForwardedCall(b *testing.B) {
	g := newGateway(b)
	benchStream(b, g, request{body: `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`}, fakehost.Continue)
}

func BenchmarkRoutedCall(b *testing.B) {
	be := newBackend(b)
	g := newGateway(b, be.server())
	gw := g.codec.Mint("")
	s, _ := openAndRoute(b, g, be, gw, 1) // establish the backend session
	s.Destroy()
	benchStream(b, g, request{session: gw, body: toolCall(2, "weather_now")}, fakehost.Continue)
}
