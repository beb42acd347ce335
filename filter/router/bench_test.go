package router

import (
	"fmt"
	"strings"
	"testing"
)

// Benchmarks of the router's per-request work, as an adapter drives it:
// Init + RequestHeaders + RequestBody + ApplyRequest (into a no-op writer)
// + Release, with the client's backend session already stored.
//
//	go test ./filter/router -run '^$' -bench . -benchmem
//
// Design target: under 2 µs and a handful of allocations for a routed
// tools/call with 1 KiB of arguments.

// args1KiB returns realistic tool arguments of about 1 KiB.
func args1KiB() string {
	var b strings.Builder
	b.WriteString(`{"query":"weather forecast for the next days","units":"metric","days":7,"include":["hourly","alerts"],"locations":[`)
	for i := 0; b.Len() < 1000; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"city":"City number %d","lat":48.%04d,"lon":2.%04d,"note":"caf\u00e9 \"quoted\""}`, i, i*37, i*91)
	}
	b.WriteString(`]}`)
	return b.String()
}

var replySink []byte

type benchCase struct {
	r    *Router
	h    RequestHeaders
	body []byte
}

func newBenchCase(b *testing.B, body string) benchCase {
	b.Helper()
	setTestEnv(b)
	r := New(Options{})
	b.Cleanup(r.Close)
	c := loadConfig(b, "router.yaml")
	c.Gateway.MaxRequestBodyBytes = 1 << 20
	if err := r.Apply(c); err != nil {
		b.Fatal(err)
	}
	gw := codec(b).Mint("")
	for _, srv := range []string{"default/weather", "default/github", "default/alerts", "tools/everything"} {
		r.Sessions().Put(gw, srv, "4NNY2QJ3Q7ZQ5GJ5WQ2XH7S3QK")
	}
	bb := []byte(body)
	return benchCase{r: r, h: post(gw, bb), body: bb}
}

// run is the adapter's per-request sequence; s is embedded, as in adapters.
func (bc benchCase) run(b *testing.B, want Action) {
	b.Helper()
	var s Stream
	b.SetBytes(int64(len(bc.body)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		s.Init(bc.r)
		s.RequestHeaders(bc.h)
		a := s.RequestBody(bc.body)
		if a != want {
			b.Fatalf("action %s, want %s (%s)", actions[a], actions[want], s.Rejection())
		}
		if a == Reply {
			_, replySink = s.Reply() // escapes, as in an adapter
		} else {
			s.ApplyRequest(nopWriter{})
		}
		s.Release()
	}
}

func BenchmarkRouteToolsCall1KiB(b *testing.B) {
	body := `{"jsonrpc":"2.0","id":17,"method":"tools/call","params":{"name":"weather_get_forecast","arguments":` + args1KiB() + `}}`
	if len(body) < 1024 || len(body) > 1200 {
		b.Fatalf("body is %d bytes", len(body))
	}
	newBenchCase(b, body).run(b, Route)
}

// 1 KiB of prose in one argument (a prompt, a document): string-heavy
// JSON, which the validating scan skips eight bytes at a time.
func BenchmarkRouteToolsCall1KiBText(b *testing.B) {
	text := strings.Repeat("Summarize the following report and list its action items. ", 18)[:1000]
	body := `{"jsonrpc":"2.0","id":17,"method":"tools/call","params":{"name":"weather_summarize","arguments":{"text":"` + text + `"}}}`
	newBenchCase(b, body).run(b, Route)
}

// The same call to the empty-prefix server: no body rewrite.
func BenchmarkRouteToolsCall1KiBNoRewrite(b *testing.B) {
	body := `{"jsonrpc":"2.0","id":17,"method":"tools/call","params":{"name":"get_forecast","arguments":` + args1KiB() + `}}`
	newBenchCase(b, body).run(b, Route)
}

func BenchmarkForwardToolsList(b *testing.B) {
	newBenchCase(b, `{"jsonrpc":"2.0","id":3,"method":"tools/list","params":{"cursor":"eyJwYWdlIjoyfQ"}}`).run(b, Forward)
}

// BenchmarkReject includes building the error reply.
func BenchmarkReject(b *testing.B) {
	for _, tc := range []struct{ name, body string }{
		{"parse", `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"weather_x"`},
		{"unknown-tool", `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"weather_"}}`},
		{"missing-name", `{"jsonrpc":"2.0","id":"a-string-id","method":"tools/call","params":{}}`},
	} {
		b.Run(tc.name, func(b *testing.B) {
			bc := newBenchCase(b, tc.body)
			if tc.name == "unknown-tool" {
				c := loadConfig(b, "router-nofallback.yaml")
				if err := bc.r.Apply(c); err != nil {
					b.Fatal(err)
				}
			}
			bc.run(b, Reply)
		})
	}
	b.Run("forged-session", func(b *testing.B) {
		bc := newBenchCase(b, `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"weather_x"}}`)
		bc.h.SessionID = forge(bc.h.SessionID)
		bc.run(b, Reply)
	})
}

// BenchmarkSessionsGet: the store lookup on every routed call, in parallel.
func BenchmarkSessionsGet(b *testing.B) {
	s := newSessions(100_000)
	c := codec(b)
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = c.Mint("")
		s.Put(ids[i], "default/weather", "backend")
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			s.Get(ids[i%len(ids)], "default/weather")
			i++
		}
	})
}
