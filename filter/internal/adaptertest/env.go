// Package adaptertest holds one behavioural table of requests and their
// expected outcome, run against every Envoy adapter of the router (the
// dynamic module through its fake host, the golang filter through its fake
// API and through its fake Envoy host, and the dynamic module in a real
// Envoy: envoy_test.go), so the adapters cannot drift apart.
// Each adapter's tests implement Host; Run plays the table.
//
// Only _test.go files import this package.
package adaptertest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/tidwall/gjson"

	"github.com/mcpgw/mcpgw/filter/sessionid"
)

// SessionKey is the gateway session key of the test configs.
const SessionKey = "0123456789abcdef0123456789abcdef-test-key"

// Server is one backend entry of a config file.
type Server struct {
	Name, URL, Hostname, Prefix string
	Stateless                   bool   // serves the stateless era (config.Server.Stateless)
	Alias                       string // if set, an alias of this name for the server's tool of the same name
}

// Env is a config file and what the table needs to talk about it.
type Env struct {
	// Path is the config file's absolute path, for the filter config.
	Path  string
	Codec *sessionid.Codec
	// Backend is the live MCP server the config routes "weather_*" to.
	Backend *Backend
	// Dead is a server that refuses connections ("dead_*").
	Dead Server
}

// NewEnv writes a config file with the backend and a dead server.
func NewEnv(t testing.TB) *Env {
	t.Helper()
	b := NewBackend(t)
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	e := &Env{Backend: b, Dead: Server{Name: "default/dead", URL: dead.URL + "/mcp", Hostname: "dead.svc", Prefix: "dead_"}}
	e.Path = WriteConfig(t, t.TempDir(), b.Entry(), e.Dead)
	codec, err := sessionid.New([]byte(SessionKey))
	if err != nil {
		t.Fatal(err)
	}
	e.Codec = codec
	return e
}

// VirtualServer is the virtual server every config has: it offers
// weather_now (the backend's tool) and nothing else.
const VirtualServer = "team-a/weather-only"

// WriteConfig writes a config file for servers into dir (with the session
// key in a file next to it) and returns its path. Called again with the same
// dir it rewrites the file (a reload).
func WriteConfig(t testing.TB, dir string, servers ...Server) string {
	t.Helper()
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte(SessionKey), 0o600); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "version: mcpgw/v1\ngateway:\n  sessionKey: {file: %q}\nservers:", keyFile)
	if len(servers) == 0 {
		b.WriteString(" []")
	}
	b.WriteString("\n")
	for _, s := range servers {
		fmt.Fprintf(&b, "- {name: %q, url: %q, hostname: %q, prefix: %q, stateless: %t", s.Name, s.URL, s.Hostname, s.Prefix, s.Stateless)
		if s.Alias != "" {
			fmt.Fprintf(&b, ", aliases: {%q: %q}", s.Alias, s.Alias)
		}
		b.WriteString("}\n")
	}
	// Served at /mcp/<VirtualServer>, offering the backend's tool only.
	fmt.Fprintf(&b, "virtualServers:\n- {name: %q, tools: [weather_now]}\n", VirtualServer)
	path := filepath.Join(dir, "config.yaml")
	// Write then rename: a watcher never sees a half-written file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// Backend is a real go-sdk MCP server with the tool "now".
type Backend struct {
	*httptest.Server
	// Inits receives the id of every session opened on it.
	Inits chan string
	// InitBodies receives the initialize request body of every session
	// opened on it.
	InitBodies chan string
	// LoseCalls makes the next tools/call requests on a session answer 404
	// (a lost session) without reaching the MCP server, as many as it
	// counts.
	LoseCalls atomic.Int32
}

// NewBackend starts a backend, closed when the test ends.
func NewBackend(t testing.TB) *Backend {
	t.Helper()
	srv := mcp.NewServer(&mcp.Implementation{Name: "weather", Version: "v0.0.1"}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: "now", Description: "current weather"},
		func(context.Context, *mcp.CallToolRequest, struct {
			City string `json:"city"`
		}) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "sunny"}}}, nil, nil
		})
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil)
	b := &Backend{Inits: make(chan string, 64), InitBodies: make(chan string, 64)}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if r.Header.Get("Mcp-Session-Id") != "" && gjson.GetBytes(body, "method").Str == "tools/call" && takeOne(&b.LoseCalls) {
			http.Error(w, "session not found", http.StatusNotFound)
			return
		}
		h.ServeHTTP(w, r)
		if sid := w.Header().Get("Mcp-Session-Id"); sid != "" && r.Header.Get("Mcp-Session-Id") == "" {
			select {
			case b.InitBodies <- string(body):
			default:
			}
			select {
			case b.Inits <- sid:
			default:
			}
		}
	}))
	t.Cleanup(func() {
		b.Close()
		for ss := range srv.Sessions() {
			ss.Close() // the sessions the routers opened: nobody ends them
		}
	})
	return b
}

// takeOne decrements n if it is positive, and reports whether it did.
func takeOne(n *atomic.Int32) bool {
	for v := n.Load(); v > 0; v = n.Load() {
		if n.CompareAndSwap(v, v-1) {
			return true
		}
	}
	return false
}

// Server returns the backend's config entry: tools "weather_*".
func (b *Backend) Entry() Server {
	return Server{Name: "default/weather", URL: b.URL + "/mcp", Hostname: "weather.default.svc", Prefix: "weather_", Stateless: true, Alias: "now"}
}

// ToolCall is a tools/call request body.
func ToolCall(id int, name string) string {
	return `{"jsonrpc":"2.0","id":` + strconv.Itoa(id) + `,"method":"tools/call","params":{"name":"` + name +
		`","arguments":{"city":"Paris"}}}`
}
