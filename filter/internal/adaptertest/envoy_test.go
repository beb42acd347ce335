package adaptertest_test

// The behavioural table through a real Envoy (the pinned stock Envoy, see
// envoy/ENVOY_VERSION) with the router loaded as a dynamic module: the
// fake hosts of filter/dynmod and filter/golang play the same table, so
// this is where a fake host's idea of Envoy meets the real one.
//
// It lives here, not in tests/e2e: Go forbids importing an internal
// package (filter/internal/adaptertest) from outside filter/.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/filter/internal/adaptertest"
	"github.com/mcpgw/mcpgw/internal/testenv"
	"github.com/mcpgw/mcpgw/tests/harness"
)

// TestAdapterTable plays the table through a real Envoy. What a real Envoy
// cannot show is relaxed per row, and logged (see envoyHost.Do).
func TestAdapterTable(t *testing.T) {
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := harness.FindEnvoy(root)
	testenv.Require(t, err) // skips without Envoy, fails under CI=true
	moduleDir := harness.Module(t)

	env := adaptertest.NewEnv(t)
	h := &envoyHost{seen: make(chan upstreamRequest, 4)}
	broker := httptest.NewServer(h.capture("broker"))
	t.Cleanup(broker.Close)
	backend := httptest.NewServer(h.capture("backend"))
	t.Cleanup(backend.Close)

	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	admin, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "table.yaml.tmpl")
	if err := os.WriteFile(tmpl, []byte(strings.ReplaceAll(tableTemplate, "@BACKEND_PORT@",
		strconv.Itoa(backend.Listener.Addr().(*net.TCPAddr).Port))), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e, err := harness.StartEnvoy(ctx, harness.EnvoyOptions{
		Binary: bin, ModuleDir: moduleDir, Template: tmpl, WorkDir: dir,
		Config: harness.EnvoyConfig{Port: port, AdminPort: admin, ConfigPath: env.Path,
			BrokerHost: "127.0.0.1", BrokerPort: broker.Listener.Addr().(*net.TCPAddr).Port},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.Stop()
		if t.Failed() {
			t.Logf("envoy output:\n%s", e.Logs())
		}
	})
	h.addr = fmt.Sprintf("127.0.0.1:%d", port)
	adaptertest.Run(t, env, h)
}

// tableTemplate is envoy/local.yaml.tmpl cut to what the table needs, with
// test instruments:
//   - both clusters are STATIC, pointing at capture servers that record
//     what Envoy forwards: "broker" for the broker route, "backend" for the
//     route selected by x-mcp-servername (the local stack's ORIGINAL_DST on
//     x-mcp-upstream-host would reach adaptertest.Backend, which the
//     router's session init talks to directly anyway);
//   - every route requires x-table-no-route to be absent, so a request
//     carrying it meets Envoy's own 404 (route_not_found) once the router
//     cleared the route cache;
//   - local replies carry their response code details in x-table-details
//     (the access log would have them too, but flushed once a second);
//   - trailers are enabled on the HTTP/1 listener, so a chunked body ending
//     with trailers reaches the filter's trailers hook.
const tableTemplate = `
admin:
  address:
    socket_address: {address: 127.0.0.1, port_value: {{.AdminPort}}}
static_resources:
  listeners:
  - name: mcp
    address:
      socket_address: {address: 127.0.0.1, port_value: {{.Port}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: mcp
          http_protocol_options: {enable_trailers: true}
          local_reply_config:
            mappers:
            - filter:
                status_code_filter:
                  comparison: {op: GE, value: {default_value: 0, runtime_key: table.unused}}
              headers_to_add:
              - header: {key: x-table-details, value: "%RESPONSE_CODE_DETAILS%"}
          route_config:
            name: mcp
            virtual_hosts:
            - name: mcp
              domains: ["*"]
              routes:
              - name: mcp-backend
                match:
                  prefix: "/"
                  headers:
                  - {name: x-mcp-servername, present_match: true}
                  - {name: x-table-no-route, present_match: true, invert_match: true}
                route: {cluster: mcp_servers, timeout: 10s}
              - name: mcp-broker
                match:
                  prefix: "/mcp"
                  headers:
                  - {name: x-table-no-route, present_match: true, invert_match: true}
                route: {cluster: broker, timeout: 10s}
          http_filters:
          - name: envoy.filters.http.dynamic_modules
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter
              dynamic_module_config:
                name: mcpgw-dynmod
                do_not_close: true
              filter_name: mcpgw
              filter_config:
                "@type": type.googleapis.com/google.protobuf.StringValue
                value: '{"config_path": "{{.ConfigPath}}"}'
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: broker
    type: STATIC
    connect_timeout: 2s
    load_assignment:
      cluster_name: broker
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {address: {{.BrokerHost}}, port_value: {{.BrokerPort}}}
  - name: mcp_servers
    type: STATIC
    connect_timeout: 2s
    load_assignment:
      cluster_name: mcp_servers
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {address: 127.0.0.1, port_value: @BACKEND_PORT@}
`

// upstreamRequest is a request as a capture server received it.
type upstreamRequest struct {
	route   string // "broker" or "backend": the capture that got it
	headers map[string][]string
	body    string
}

// envoyHost is an adaptertest.Host: a real Envoy, observed on the wire.
type envoyHost struct {
	addr string // Envoy's listener
	seen chan upstreamRequest

	mu   sync.Mutex
	resp *adaptertest.Response // what the captures answer
}

// captureMark marks responses that came from a capture (an upstream).
const captureMark = "x-table-upstream"

// capture records a request Envoy forwarded and answers it with the
// current row's Response (200 when it has none).
func (h *envoyHost) capture(route string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		// The request as Envoy's upstream codec sent it, pseudo-headers
		// included (HTTP/1: :authority is Host, :path the request target).
		hs := map[string][]string{":method": {r.Method}, ":path": {r.RequestURI}, ":authority": {r.Host}}
		for k, v := range r.Header {
			hs[strings.ToLower(k)] = v
		}
		h.mu.Lock()
		resp := h.resp
		h.mu.Unlock()
		h.seen <- upstreamRequest{route: route, headers: hs, body: string(body)}
		w.Header().Set(captureMark, route)
		status := http.StatusOK
		if resp != nil {
			status = resp.Status
			if sid := resp.SessionHeader(hs); sid != "" {
				w.Header().Set("mcp-session-id", sid)
			}
		}
		if resp != nil && resp.NoBody {
			w.WriteHeader(status)
			return
		}
		w.Header().Set("content-type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, adaptertest.ResponseBody)
	})
}

func (h *envoyHost) Do(t testing.TB, r adaptertest.Request) adaptertest.Result {
	t.Helper()
	// Envoy's own response to a routed request: a route_not_found 404 we
	// can select, other details we cannot produce faithfully.
	envoyOwn := r.Response != nil && r.Response.Details != "via_upstream"
	if envoyOwn && r.Response.Details != "route_not_found" {
		// A row no real Envoy can reproduce must not pass silently in CI.
		testenv.Require(t, fmt.Errorf("no way to make a real Envoy answer %d %s", r.Response.Status, r.Response.Details))
	}
	for len(h.seen) > 0 {
		<-h.seen
	}
	h.mu.Lock()
	h.resp = r.Response
	h.mu.Unlock()

	resp, body := h.send(t, r, envoyOwn)

	// Route cache clears happen inside Envoy: not countable from outside.
	// (That a clear took effect shows in the route the request took,
	// checked below.)
	res := adaptertest.Result{RouteCacheClears: adaptertest.Unobservable}
	select {
	case up := <-h.seen:
		// Continued: the request reached an upstream, whole (the capture
		// read it to its end).
		res.Continued, res.Headers, res.Body = true, up.headers, up.body
		want := "broker"
		if len(up.headers["x-mcp-servername"]) > 0 {
			want = "backend"
		}
		if up.route != want {
			t.Errorf("real Envoy routed the request to the %s, want the %s (route cache not cleared?)", up.route, want)
		}
	default:
	}
	hs := lowerKeys(resp.Header)
	details := resp.Header.Get("x-table-details")
	delete(hs, "x-table-details")
	switch {
	case resp.Header.Get(captureMark) != "":
		// The upstream's response, through the filter.
		if r.Response != nil {
			res.ResponseHeaders = hs
		}
	case envoyOwn && resp.StatusCode == r.Response.Status && details == r.Response.Details:
		// Envoy's own 404 is the row's Response, through the filter. The
		// request never reached an upstream: what continued is unseen.
		res.ResponseHeaders = hs
		res.RequestUnseen = true
		t.Logf("real Envoy answered %d %s itself", resp.StatusCode, details)
	default:
		res.Replies = []adaptertest.Reply{{Status: resp.StatusCode, ContentType: resp.Header.Get("content-type"),
			Body: body, Details: details, SessionID: resp.Header.Get("mcp-session-id")}}
	}
	return res
}

// send writes r to Envoy over a fresh HTTP/1.1 connection, byte for byte
// (a client library would not send a content-length its body contradicts),
// and reads the response.
func (h *envoyHost) send(t testing.TB, r adaptertest.Request, noRoute bool) (*http.Response, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", h.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	method := r.Method
	if method == "" {
		method = "POST"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nhost: gateway.example\r\n", method, r.PathOr())
	if r.Body != "" && !has(r.Headers, "content-type") {
		b.WriteString("content-type: application/json\r\n")
	}
	if r.Body != "" && !has(r.Headers, "content-length") && !r.Trailers {
		fmt.Fprintf(&b, "content-length: %d\r\n", len(r.Body))
	}
	for _, hd := range r.Headers {
		fmt.Fprintf(&b, "%s: %s\r\n", hd[0], hd[1])
	}
	if noRoute {
		b.WriteString("x-table-no-route: 1\r\n")
	}
	switch {
	case r.Trailers:
		// HTTP/1 carries trailers on a chunked body only (so no
		// content-length), and Envoy hands empty ones to no filter: this
		// one has a field.
		fmt.Fprintf(&b, "transfer-encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\nx-table-trailer: 1\r\n\r\n", len(r.Body), r.Body)
	default:
		b.WriteString("\r\n" + r.Body)
	}
	if _, err := io.WriteString(conn, b.String()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading Envoy's response: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading Envoy's response body: %v", err)
	}
	return resp, string(body)
}

func has(hs [][2]string, name string) bool {
	for _, h := range hs {
		if strings.EqualFold(h[0], name) {
			return true
		}
	}
	return false
}

func lowerKeys(h http.Header) map[string][]string {
	m := make(map[string][]string, len(h))
	for k, v := range h {
		m[strings.ToLower(k)] = v
	}
	return m
}
