package bench

import (
	"fmt"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/tests/harness"
)

// route is one way to reach the echo backend.
type route struct {
	name string // sub-benchmark prefix
	addr string // where the clients connect
	tool string // the echo tool's name on this route
	// counter, if set, is an Envoy counter that must grow by one per call
	// (proof that calls took this route).
	counter string
	// noEnvoy: the route bypasses Envoy (its CPU use is not the route's).
	noEnvoy bool
	clients []*client
}

// BenchmarkToolsCall measures one tools/call of echo with 1 KiB of text on an
// established session, over keep-alive connections, by route:
//
//	backend  the go-sdk server itself, no Envoy (the floor)
//	direct   Envoy without the module, straight to the backend (the baseline)
//	mcpgw    Envoy with the module: the router routes echo_echo to the backend
//	native   Envoy's own C++ mcp + mcp_router filters (reference; -native)
//
// <route>/sequential: one client, one call at a time; <route>/concurrent:
// -clients clients, each with its own session and connection.
// paired/sequential and paired/concurrent make the same calls interleaved:
// each round calls every route once, in rotating order, so that all routes
// are measured under the same load. On a shared machine, where load changes
// from one sub-benchmark to the next, the paired difference is the one to
// trust. Every response is validated. Each case reports p50-µs and p99-µs
// (paired: per route); the parent prints them side by side with the latency
// mcpgw (and native) add over direct.
func BenchmarkToolsCall(b *testing.B) {
	s := startStack(b)
	routes := []*route{
		{name: "backend", addr: s.backendAddr, tool: "echo", noEnvoy: true},
		{name: "direct", addr: s.directAddr, tool: "echo"},
		{name: "mcpgw", addr: s.gatewayAddr(), tool: backendPrefix + "echo", counter: "mcpgw.routed"},
	}
	if s.nativeAddr != "" {
		routes = append(routes, &route{name: "native", addr: s.nativeAddr, tool: "echo"})
	}
	for _, r := range routes {
		if err := r.connect(*numClients); err != nil {
			b.Fatal(err)
		}
	}
	b.Cleanup(func() {
		for _, r := range routes {
			for _, c := range r.clients {
				c.conn.Close()
			}
		}
	})

	results := map[string]map[string]stats{} // mode -> route -> stats
	modes := []struct {
		name    string
		clients int
	}{{"sequential", 1}, {"concurrent", *numClients}}
	for _, m := range modes {
		for _, r := range routes {
			b.Run(r.name+"/"+m.name, func(b *testing.B) {
				results[m.name] = merge(results[m.name], measure(b, s, []*route{r}, m.clients))
			})
		}
		b.Run("paired/"+m.name, func(b *testing.B) {
			results["paired "+m.name] = measure(b, s, routes, m.clients)
		})
	}
	table := resultsTable(results, routes, modes[1].clients)
	fmt.Print(table)
	b.Log("\n" + table)
}

func merge(dst, src map[string]stats) map[string]stats {
	if dst == nil {
		dst = map[string]stats{}
	}
	maps.Copy(dst, src)
	return dst
}

// connect opens n sessions on the route and makes one validated warm-up
// call on each (through mcpgw this opens the router's backend session).
func (r *route) connect(n int) error {
	for i := range n {
		conn, h, err := initialize(r.addr, requestHeaders{host: r.addr, path: "/mcp"})
		if err != nil {
			return fmt.Errorf("%s: %w", r.name, err)
		}
		c := &client{conn: conn, call: newToolCall(h, r.tool)}
		r.clients = append(r.clients, c)
		if _, err := c.do(0); err != nil {
			return fmt.Errorf("%s: warm-up call %d: %w", r.name, i, err)
		}
	}
	return nil
}

// callIDs numbers calls across runs, so that no session sees an id twice.
var callIDs atomic.Int64

// measure runs b.N rounds on `workers` goroutines, worker w using the w-th
// client of every route. A round calls each route once, starting with a
// different route each round. It validates every response and the routes'
// counters, reports latency percentiles (per route when there are several)
// and the CPU time Envoy spent per call (all its threads, the module's Go
// threads included: unlike latency, it hardly depends on what else runs on
// the machine), and returns the percentiles by route name.
func measure(b *testing.B, s *stack, routes []*route, workers int) map[string]stats {
	adminURL := s.Envoy.AdminURL()
	before := make([]int64, len(routes))
	for k, r := range routes {
		if r.counter != "" {
			var err error
			if before[k], err = harness.Counter(adminURL, r.counter); err != nil {
				b.Fatal(err)
			}
		}
	}
	lat := make([][]time.Duration, len(routes)) // [route][round]
	for k := range lat {
		lat[k] = make([]time.Duration, b.N)
	}
	base := int(callIDs.Add(int64(b.N))) - b.N
	var (
		next     atomic.Int64
		errOnce  sync.Once
		firstErr error
	)
	work := func(w int) {
		for {
			i := int(next.Add(1) - 1)
			if i >= b.N {
				return
			}
			for j := range routes {
				k := (i + j) % len(routes)
				d, err := routes[k].clients[w].do(base + i + 1)
				if err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("%s: %w", routes[k].name, err) })
					next.Store(int64(b.N)) // stop the others
					return
				}
				lat[k][i] = d
			}
		}
	}
	cpu0, err := cpuTime(s.Envoy.PID())
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	if workers == 1 {
		work(0)
	} else {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() { work(w) })
		}
		wg.Wait()
	}
	b.StopTimer()
	cpu1, err := cpuTime(s.Envoy.PID())
	if err != nil {
		b.Fatal(err)
	}
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	// Envoy's CPU per call is only attributable when one route ran.
	var cpuPerCall time.Duration
	if len(routes) == 1 && !routes[0].noEnvoy {
		cpuPerCall = (cpu1 - cpu0) / time.Duration(b.N)
		b.ReportMetric(micros(cpuPerCall), "envoy-cpu-µs/call")
	}
	out := map[string]stats{}
	for k, r := range routes {
		if r.counter != "" {
			after, err := harness.WaitCounter(adminURL, r.counter, before[k]+int64(b.N))
			if err != nil {
				b.Fatal(err)
			}
			if after-before[k] < int64(b.N) {
				b.Fatalf("%s grew by %d during %d calls: calls did not take the %s route", r.counter, after-before[k], b.N, r.name)
			}
		}
		st := percentiles(lat[k])
		st.envoyCPU = cpuPerCall
		out[r.name] = st
		unit := ""
		if len(routes) > 1 {
			unit = r.name + "-"
		}
		b.ReportMetric(micros(st.p50), unit+"p50-µs")
		b.ReportMetric(micros(st.p99), unit+"p99-µs")
	}
	if workers > 1 {
		b.ReportMetric(float64(b.N*len(routes))/b.Elapsed().Seconds(), "calls/s")
	}
	return out
}

// resultsTable lays out every route's percentiles per mode, with the
// difference and ratio to direct in the same mode, and Envoy's CPU per call.
func resultsTable(results map[string]map[string]stats, routes []*route, clients int) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "tools/call echo, 1 KiB text; Envoy --concurrency %d; concurrent = %d clients in flight; "+
		"paired = routes called in turn, same moment\n", *envoyConcurrency, clients)
	fmt.Fprintf(&sb, "%-19s %-8s %6s %9s %9s   %-20s %-20s %s\n", "mode", "route", "calls",
		"p50 µs", "p99 µs", "p50 vs direct", "p99 vs direct", "Envoy CPU µs/call")
	diff := func(v, base time.Duration) string {
		return fmt.Sprintf("%+9.1f µs %5.2fx", micros(v-base), float64(v)/float64(base))
	}
	for _, mode := range []string{"sequential", "paired sequential", "concurrent", "paired concurrent"} {
		direct, hasDirect := results[mode]["direct"]
		for _, r := range routes {
			st, ok := results[mode][r.name]
			if !ok {
				continue
			}
			vs50, vs99, cpu := "", "", ""
			if r.name != "direct" && hasDirect && direct.p50 > 0 {
				vs50, vs99 = diff(st.p50, direct.p50), diff(st.p99, direct.p99)
			}
			if st.envoyCPU > 0 {
				cpu = fmt.Sprintf("%6.1f", micros(st.envoyCPU))
				if r.name != "direct" && hasDirect && direct.envoyCPU > 0 {
					cpu += fmt.Sprintf(" (%+.1f)", micros(st.envoyCPU-direct.envoyCPU))
				}
			}
			fmt.Fprintf(&sb, "%-19s %-8s %6d %9.1f %9.1f   %-20s %-20s %s\n",
				mode, r.name, st.n, micros(st.p50), micros(st.p99), vs50, vs99, cpu)
		}
	}
	return sb.String()
}
