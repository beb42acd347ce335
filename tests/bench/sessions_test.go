package bench

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/filter/sessionid"
	"github.com/mcpgw/mcpgw/tests/harness"
)

// BenchmarkSessions10k makes the router hold -sessions (10,000) backend
// sessions: it mints that many gateway session ids with the config's key (no
// broker involved) and makes one tools/call on each through Envoy, from
// -clients clients at a time; each first call makes the router open a
// backend session. It reports Envoy's resident memory before and after
// (VmRSS), the bytes per held session, how long the creation took and the
// latency of those first calls. Then the timed loop makes calls on sessions
// picked across the 10,000 held ones: ns/op, p50-µs and p99-µs are the
// steady-state call latency with a full session table.
//
// The creation runs once per benchmark run, whatever -benchtime says (b.Loop
// runs the body once); -benchtime only sets the number of timed calls.
func BenchmarkSessions10k(b *testing.B) {
	s := startStack(b)
	admin, pid, n := s.Envoy.AdminURL(), s.Envoy.PID(), *numSessions

	// Warm up every part (the Go runtime inside Envoy, the router's session
	// table and HTTP client) before the first memory reading.
	warm := &route{name: "mcpgw", addr: s.gatewayAddr(), tool: backendPrefix + "echo"}
	if err := warm.connect(1); err != nil {
		b.Fatal(err)
	}
	warm.clients[0].conn.Close()
	// The warm-up opened one backend session; its count is exported when
	// its stream ends, maybe just after the client got the response.
	inits0, err := harness.WaitCounter(admin, "mcpgw.session_inits", 1)
	if err != nil {
		b.Fatal(err)
	}
	fails0, err := harness.Counter(admin, "mcpgw.session_init_failures")
	if err != nil {
		b.Fatal(err)
	}
	rss0, err := rssBytes(pid)
	if err != nil {
		b.Fatal(err)
	}

	clients := make([]*client, *numClients)
	for i := range clients {
		h := requestHeaders{host: s.gatewayAddr(), path: "/mcp", sessionID: s.codec.Mint(""), version: protocolVersion}
		clients[i] = &client{conn: newHTTPConn(s.gatewayAddr()), call: newToolCall(h, backendPrefix+"echo")}
		defer clients[i].conn.Close()
	}
	start := time.Now()
	ids, firstCalls, rssHalf, err := createSessions(s, clients, n, pid)
	created := time.Since(start)
	if err != nil {
		b.Fatal(err)
	}
	inits, err := harness.WaitCounter(admin, "mcpgw.session_inits", inits0+int64(n))
	if err != nil {
		b.Fatal(err)
	}
	fails, err := harness.Counter(admin, "mcpgw.session_init_failures")
	if err != nil {
		b.Fatal(err)
	}
	if inits-inits0 != int64(n) || fails != fails0 {
		b.Fatalf("router opened %d backend sessions (%d failed) for %d new gateway sessions", inits-inits0, fails-fails0, n)
	}
	rss1, err := rssBytes(pid)
	if err != nil {
		b.Fatal(err)
	}
	// Envoy reaches the backend over a few pooled connections; what closed
	// recently is the router's session-init client.
	closed, err := timeWaitTo(s.backendAddr)
	if err != nil {
		b.Fatal(err)
	}
	first := percentiles(firstCalls)

	// Timed: calls on held sessions, spread over the whole table.
	c := clients[0]
	var lat []time.Duration
	for i := 0; b.Loop(); i++ {
		c.call.setSession(ids[(i*7919)%n])
		d, err := c.do(int(callIDs.Add(1)))
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, d)
	}
	held := percentiles(lat)

	perSession := float64(rss1-rss0) / float64(n)
	// The second half's growth leaves out what any load costs once (heap
	// and buffers growing to their working size).
	marginal := float64(rss1-rssHalf) / float64(n-n/2)
	b.ReportMetric(float64(n), "sessions")
	b.ReportMetric(mib(rss0), "rss-before-MiB")
	b.ReportMetric(mib(rss1), "rss-after-MiB")
	b.ReportMetric(perSession, "B/session")
	b.ReportMetric(marginal, "marginal-B/session")
	b.ReportMetric(created.Seconds(), "create-s")
	b.ReportMetric(micros(first.p50), "first-call-p50-µs")
	b.ReportMetric(micros(first.p99), "first-call-p99-µs")
	b.ReportMetric(micros(held.p50), "p50-µs")
	b.ReportMetric(micros(held.p99), "p99-µs")
	b.Logf("%d gateway sessions (ids of %d bytes) each made one call through Envoy --concurrency %d, %d clients in flight: "+
		"%v (%.0f sessions/s); first call p50 %.0f µs, p99 %.0f µs; router opened %d backend sessions",
		n, sessionid.Len, *envoyConcurrency, len(clients), created.Round(time.Millisecond), float64(n)/created.Seconds(),
		micros(first.p50), micros(first.p99), inits-inits0)
	b.Logf("Envoy VmRSS %.1f MiB -> %.1f MiB (%.1f MiB at %d sessions): %+.1f MiB, %.0f bytes per held session; "+
		"%.0f bytes per session over the second half",
		mib(rss0), mib(rss1), mib(rssHalf), n/2, mib(rss1-rss0), perSession, marginal)
	b.Logf("connections to the backend in TIME_WAIT after the creation: %d (the router's session-init HTTP client "+
		"closing connections it could not keep idle)", closed)
	b.Logf("then %d calls on held sessions: p50 %.1f µs, p99 %.1f µs", held.n, micros(held.p50), micros(held.p99))
}

// createSessions mints n gateway session ids and makes one validated call
// on each, spread over clients (one goroutine each). It returns the ids, the
// latency of each first call and Envoy's RSS when half were created.
func createSessions(s *stack, clients []*client, n, pid int) (ids []string, firstCalls []time.Duration, rssHalf int64, err error) {
	ids = make([]string, n)
	firstCalls = make([]time.Duration, n)
	var (
		next    atomic.Int64
		errOnce sync.Once
		wg      sync.WaitGroup
	)
	for _, c := range clients {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if i == n/2 {
					rssHalf, _ = rssBytes(pid) // one writer; read after wg.Wait
				}
				ids[i] = s.codec.Mint("")
				c.call.setSession(ids[i])
				d, callErr := c.do(int(callIDs.Add(1)))
				if callErr != nil {
					errOnce.Do(func() { err = fmt.Errorf("session %d: %w", i, callErr) })
					next.Store(int64(n)) // stop the others
					return
				}
				firstCalls[i] = d
			}
		})
	}
	wg.Wait()
	return ids, firstCalls, rssHalf, err
}

func mib(bytes int64) float64 { return float64(bytes) / (1 << 20) }
