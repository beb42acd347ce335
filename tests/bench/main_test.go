// Package bench measures the latency mcpgw's router adds to a tools/call,
// through a real Envoy, against a baseline listener on the same Envoy that
// routes straight to the backend without the module, and the memory the
// router needs to hold many backend sessions.
//
// Reproduce (what `make bench` runs; Envoy from `make envoy`):
//
//	MCPGW_ENVOY=$PWD/build/envoy/envoy-1.39.1 go test -run '^$' -bench . -benchtime 3000x -timeout 20m ./tests/bench/
//
// Flags (after the package, or after -args): -envoy-concurrency N (Envoy
// worker threads, default 1), -clients N (in-flight clients of the
// concurrent cases, default 16), -sessions N (BenchmarkSessions10k, default
// 10000), -native=false (drop Envoy's own C++ MCP router listener).
// Smoke run: -benchtime 1x.
//
// Profile. pprof cannot see inside Envoy (and the pip-installed Envoy is
// stripped: perf shows its own frames as bare addresses); the test process
// (clients, go-sdk backend, broker) can be profiled with -cpuprofile. For
// Envoy and the module, run one route long and attach perf to the Envoy pid
// the benchmark prints on stderr; compare with the same for direct (the same
// Envoy without the module):
//
//	MCPGW_DYNMOD_DIR=/tmp/mod go test -run '^$' -bench 'ToolsCall/mcpgw/sequential$' -benchtime 300000x ./tests/bench/ &
//	perf stat -e task-clock,context-switches,syscalls:sys_enter_futex,syscalls:sys_enter_nanosleep -p <pid> -- sleep 5
//	perf record -F 999 -g -p <pid> -- sleep 6 && perf report --no-children --sort comm,dso
//	perf probe -x /tmp/mod/libmcpgw-dynmod.so crosscall2   # then -e probe_libmcpgw:crosscall2: C->Go entries
//
// (MCPGW_DYNMOD_DIR=/tmp/mod, holding a module built with `go build
// -buildmode=c-shared -o /tmp/mod/libmcpgw-dynmod.so ./filter/cmd/libmcpgw-dynmod`,
// keeps the .so at a fixed path for perf probe). Divide by the requests
// counted in the admin stats (http.mcp.downstream_rq_total) over the same
// seconds. Per-thread CPU: /proc/<pid>/task/*/schedstat. Where the time goes
// inside Envoy per phase: an access log with
// %COMMON_DURATION(DS_RX_BEG:US_TX_BEG:us)% and friends on both listeners.
package bench

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/filter/config"
	"github.com/mcpgw/mcpgw/filter/sessionid"
	"github.com/mcpgw/mcpgw/internal/testenv"
	"github.com/mcpgw/mcpgw/tests/harness"
	"github.com/mcpgw/mcpgw/tests/mcptest"
)

var (
	envoyConcurrency = flag.Int("envoy-concurrency", 1, "Envoy worker threads (--concurrency)")
	numClients       = flag.Int("clients", 16, "in-flight clients in the concurrent cases")
	numSessions      = flag.Int("sessions", 10_000, "gateway sessions BenchmarkSessions10k creates")
	withNative       = flag.Bool("native", true, "add a listener with Envoy's C++ mcp + mcp_router filters (the in-Envoy reference)")
)

// backendName and backendPrefix are the echo server's entry in the config.
const (
	backendName   = "bench/echo"
	backendPrefix = "echo_"
)

// stack is one gateway with one go-sdk echo backend behind it.
type stack struct {
	*harness.Stack
	backendAddr string           // host:port of the go-sdk echo server
	directAddr  string           // Envoy listener without the module
	nativeAddr  string           // Envoy listener with the C++ mcp_router; "" without -native
	codec       *sessionid.Codec // mints gateway session ids the router accepts
}

// gatewayAddr is the Envoy listener with the module.
func (s *stack) gatewayAddr() string { return fmt.Sprintf("127.0.0.1:%d", s.Envoy.Port) }

// startStack starts the echo backend, the broker and Envoy (with the direct
// and, with -native, the native listeners). Everything stops when b ends.
func startStack(b *testing.B) *stack {
	b.Helper()
	if *numClients < 1 || *numSessions < 1 || *envoyConcurrency < 1 {
		b.Fatalf("-clients, -sessions and -envoy-concurrency must be at least 1")
	}
	root, err := harness.RepoRoot()
	if err != nil {
		b.Fatal(err)
	}
	envoyBin, err := harness.FindEnvoy(root)
	if err == nil {
		_, err = os.Stat(envoyBin)
	}
	testenv.Require(b, err)
	moduleDir := harness.Module(b)

	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	backendURL, stopBackend, err := mcptest.Serve(ctx, "127.0.0.1:0", mcptest.NewEchoServer("echo"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(stopBackend)
	s := &stack{backendAddr: strings.TrimSuffix(strings.TrimPrefix(backendURL, "http://"), mcptest.Path)}

	dir := b.TempDir()
	configPath := filepath.Join(dir, "config.yaml")
	// The hostname is the backend's own address: go-sdk servers bound to
	// loopback refuse other Host headers.
	if err := harness.WriteConfig(configPath, []config.Server{
		{Name: backendName, URL: backendURL, Hostname: s.backendAddr, Prefix: backendPrefix},
	}); err != nil {
		b.Fatal(err)
	}
	if s.codec, err = loadCodec(configPath); err != nil {
		b.Fatal(err)
	}
	opts := harness.StackOptions{
		Root: root, EnvoyBinary: envoyBin, ModuleDir: moduleDir, ConfigPath: configPath,
		WorkDir: dir, DirectBackend: s.backendAddr, Concurrency: *envoyConcurrency,
	}
	if *withNative {
		port, err := harness.FreePort()
		if err != nil {
			b.Fatal(err)
		}
		if opts.Template, err = writeNativeTemplate(root, dir, port, s.backendAddr); err != nil {
			b.Fatal(err)
		}
		s.nativeAddr = fmt.Sprintf("127.0.0.1:%d", port)
	}
	if s.Stack, err = harness.StartStack(ctx, opts); err != nil {
		b.Fatal(err)
	}
	s.directAddr = fmt.Sprintf("127.0.0.1:%d", s.DirectPort)
	b.Cleanup(func() {
		if err := s.Close(); err != nil {
			b.Errorf("stack close: %v", err)
		}
		if b.Failed() {
			b.Logf("envoy output:\n%s", s.Envoy.Logs())
		}
	})
	// On stderr at once, so that perf can be attached while the run lasts.
	fmt.Fprintf(os.Stderr, "bench: %s: envoy pid %d (--concurrency %d), admin %s, gateway %s, direct %s, native %q, backend %s\n",
		b.Name(), s.Envoy.PID(), *envoyConcurrency, s.Envoy.AdminURL(), s.gatewayAddr(), s.directAddr, s.nativeAddr, s.backendAddr)
	return s
}

// loadCodec returns the session id codec of the config at path, as the
// broker and the router build it.
func loadCodec(path string) (*sessionid.Codec, error) {
	c, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	key, err := c.Gateway.SessionKey.Resolve()
	if err != nil {
		return nil, err
	}
	return sessionid.New([]byte(key))
}

// nativeListener is a listener running Envoy's own C++ MCP filters, with one
// server (so tool names stay unprefixed), and its cluster. %[1]d is the
// listener port, %[2]s the backend's host, %[3]d its port.
const (
	nativeListener = `  # Added by tests/bench: Envoy's C++ MCP router, the in-Envoy reference.
  - name: native
    address:
      socket_address: {address: 127.0.0.1, port_value: %[1]d}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: native
          route_config:
            name: native
            virtual_hosts:
            - name: native
              domains: ["*"]
              routes:
              - match: {prefix: "/"}
                route: {cluster: native_backend, timeout: 0s}
          http_filters:
          - name: envoy.filters.http.mcp
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.mcp.v3.Mcp
              traffic_mode: PASS_THROUGH
          - name: envoy.filters.http.mcp_router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.mcp_router.v3.McpRouter
              servers:
              - name: echo
                mcp_cluster: {cluster: native_backend, path: /mcp, host_rewrite_literal: "%[2]s:%[3]d"}
`
	nativeCluster = `  - name: native_backend
    type: STATIC
    connect_timeout: 2s
    load_assignment:
      cluster_name: native_backend
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {address: %[2]s, port_value: %[3]d}
`
)

// writeNativeTemplate writes a copy of envoy/local.yaml.tmpl with the native
// listener and cluster added, and returns its path.
func writeNativeTemplate(root, dir string, port int, backend string) (string, error) {
	tmpl, err := os.ReadFile(filepath.Join(root, "envoy", "local.yaml.tmpl"))
	if err != nil {
		return "", err
	}
	host, bport, err := harness.SplitHostPort(backend)
	if err != nil {
		return "", err
	}
	const marker = "\n  clusters:\n"
	before, after, ok := bytes.Cut(tmpl, []byte(marker))
	if !ok || bytes.Contains(after, []byte(marker)) {
		return "", fmt.Errorf("envoy/local.yaml.tmpl: no single %q to add the native listener before", marker)
	}
	var out []byte
	out = append(out, before...)
	out = append(out, '\n')
	out = fmt.Appendf(out, nativeListener, port, host, bport)
	out = append(out, marker[1:]...)
	out = append(out, bytes.TrimRight(after, "\n")...)
	out = append(out, '\n')
	out = fmt.Appendf(out, nativeCluster, port, host, bport)
	path := filepath.Join(dir, "bench.yaml.tmpl")
	return path, os.WriteFile(path, out, 0o644)
}

// rssBytes returns the resident set size of process pid (VmRSS).
func rssBytes(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no VmRSS", pid)
}

// cpuTime returns the CPU time process pid has used so far, summed over its
// threads from /proc/<pid>/task/*/schedstat (nanoseconds, unlike the clock
// ticks of /proc/<pid>/stat).
func cpuTime(pid int) (time.Duration, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		return 0, fmt.Errorf("no schedstat for pid %d: %v", pid, err)
	}
	var total time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // the thread just exited
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			continue
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", t, err)
		}
		total += time.Duration(ns)
	}
	return total, nil
}

// timeWaitTo counts the local TCP sockets in TIME_WAIT whose peer is addr
// (IPv4 host:port): connections closed on this machine shortly before.
func timeWaitTo(addr string) (int, error) {
	host, port, err := harness.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	ip := net.ParseIP(host).To4()
	if ip == nil {
		return 0, fmt.Errorf("%s: not IPv4", addr)
	}
	// /proc/net/tcp: "sl local rem st ...", addresses as little-endian hex.
	want := fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], port)
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return 0, err
	}
	n := 0
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) > 3 && f[2] == want && f[3] == "06" { // 06: TIME_WAIT
			n++
		}
	}
	return n, nil
}

// stats are latency percentiles of one case.
type stats struct {
	n        int
	p50, p99 time.Duration
	envoyCPU time.Duration // Envoy's CPU time per call; 0 when not measured
}

// percentiles computes nearest-rank p50 and p99 (it sorts lat).
func percentiles(lat []time.Duration) stats {
	slices.Sort(lat)
	rank := func(p float64) time.Duration {
		i := int(p*float64(len(lat))+0.999999) - 1
		return lat[max(0, min(i, len(lat)-1))]
	}
	if len(lat) == 0 {
		return stats{}
	}
	return stats{n: len(lat), p50: rank(0.50), p99: rank(0.99)}
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
