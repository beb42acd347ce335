package harness

import (
	"bufio"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// AdminStats returns Envoy's counters and gauges whose names match filter
// (an RE2 regex), from the admin interface.
func AdminStats(adminURL, filter string) (map[string]int64, error) {
	resp, err := http.Get(adminURL + "/stats?filter=" + url.QueryEscape(filter))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	stats := map[string]int64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ": ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(value, 10, 64); err == nil {
			stats[name] = n // histograms ("P0(...)") are skipped
		}
	}
	return stats, sc.Err()
}

// Counter returns the value of an Envoy counter. name may lack the
// namespace Envoy puts in front of a dynamic module's counters
// ("dynamicmodulescustom." by default): "mcpgw.routed" matches it.
func Counter(adminURL, name string) (int64, error) {
	stats, err := AdminStats(adminURL, `(^|\.)`+strings.ReplaceAll(name, ".", `\.`)+"$")
	if err != nil {
		return 0, err
	}
	var n int64
	found := false
	for full, v := range stats {
		if full == name || strings.HasSuffix(full, "."+name) {
			n, found = n+v, true
		}
	}
	if !found {
		return 0, fmt.Errorf("envoy has no counter %q", name)
	}
	return n, nil
}

// WaitCounter polls the counter until it reaches want (the module exports
// counters when streams end, which may be just after the client got its
// response) or a second passes, and returns the last value.
func WaitCounter(adminURL, name string, want int64) (int64, error) {
	deadline := time.Now().Add(time.Second)
	for {
		n, err := Counter(adminURL, name)
		if err != nil || n >= want || time.Now().After(deadline) {
			return n, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// BrokerCounter returns one series of the broker's /metrics (Prometheus
// text format), named as it is written there, labels included:
// `mcpgw_broker_proxied_requests_total{kind="tool"}`.
func BrokerCounter(brokerAddr, series string) (int64, error) {
	code, body, err := get("http://"+brokerAddr+"/metrics", "")
	if err != nil {
		return 0, err
	}
	if code != http.StatusOK {
		return 0, fmt.Errorf("broker /metrics: HTTP %d", code)
	}
	for line := range strings.Lines(body) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), series+" "); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("broker /metrics has no %s", series)
}

// Routing is how the gateway's tools/call and prompts/get went: routed by
// the router straight to a backend, or served by the broker's fallback
// path (which forwards them over its own backend sessions).
type Routing struct {
	Routed           int64 // mcpgw.routed: requests the router routed to backends
	UpstreamRequests int64 // Envoy's requests to the backends' cluster (mcp_servers)
	BrokerTools      int64 // tools/call the broker proxied itself
	BrokerPrompts    int64 // prompts/get the broker proxied itself
}

// Routing reads the counters, waiting (about a second) for mcpgw.routed to
// reach atLeast: the module exports its counters as streams end, which may
// be just after the client got its response.
func (s *Stack) Routing(atLeast int64) (Routing, error) {
	var r Routing
	var err error
	admin := s.Envoy.AdminURL()
	if r.Routed, err = WaitCounter(admin, "mcpgw.routed", atLeast); err != nil {
		return r, err
	}
	if r.UpstreamRequests, err = Counter(admin, "cluster.mcp_servers.upstream_rq_total"); err != nil {
		return r, err
	}
	if r.BrokerTools, err = BrokerCounter(s.BrokerAddr, `mcpgw_broker_proxied_requests_total{kind="tool"}`); err != nil {
		return r, err
	}
	r.BrokerPrompts, err = BrokerCounter(s.BrokerAddr, `mcpgw_broker_proxied_requests_total{kind="prompt"}`)
	return r, err
}

// CheckRouted returns an error unless calls tools/call and prompts/get (at
// least) took the router's path: the router routed at least that many
// requests, Envoy sent at least that many to the backends, and the broker
// proxied none, so its fallback (which would serve them as well) served
// none of them.
func (s *Stack) CheckRouted(calls int64) (Routing, error) {
	r, err := s.Routing(calls)
	switch {
	case err != nil:
		return r, err
	case r.Routed < calls || r.UpstreamRequests < calls:
		return r, fmt.Errorf("%d calls made, but the router routed %d requests and Envoy sent %d to the backends (%+v)",
			calls, r.Routed, r.UpstreamRequests, r)
	case r.BrokerTools != 0 || r.BrokerPrompts != 0:
		return r, fmt.Errorf("the broker's fallback served %d tools/call and %d prompts/get (%+v)",
			r.BrokerTools, r.BrokerPrompts, r)
	}
	return r, nil
}
