package golang_test

import (
	"testing"

	"github.com/mcpgw/mcpgw/filter/internal/adaptertest"
)

// The benchmarks run whole streams through the pure-Go fake of the golang
// filter, so their numbers include the fake's own work (Go maps, copies):
// an upper bound of the adapter's Go-side cost, without the cgo crossings
// of the real shim. Profile with -memprofile to see the adapter's share.

func benchStream(b *testing.B, fc *filterConfig, r adaptertest.Request) {
	b.Helper()
	b.ReportAllocs()
	for b.Loop() {
		if res := fc.Do(b, r); !res.Continued {
			b.Fatalf("not continued: %+v", res.Replies)
		}
	}
}

func BenchmarkForwardedCall(b *testing.B) {
	fc := newFilterConfig(b, adaptertest.WriteConfig(b, b.TempDir()))
	benchStream(b, fc, adaptertest.Request{Body: `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`})
}

func BenchmarkRoutedCall(b *testing.B) {
	env := adaptertest.NewEnv(b)
	fc := newFilterConfig(b, env.Path)
	r := adaptertest.Request{Body: adaptertest.ToolCall(2, "weather_now"),
		Headers:  [][2]string{{"mcp-session-id", env.Codec.Mint("")}},
		Response: &adaptertest.Response{Status: 200, Details: "via_upstream"}}
	fc.Do(b, r) // opens the backend session
	benchStream(b, fc, r)
}
