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
