// Package router is mcpgw's host-agnostic request router: the logic that runs
// inside Envoy, with no cgo and no Envoy imports.
//
// An adapter (the dynamic module or the golang filter) creates one Stream per
// HTTP request, feeds it what Envoy saw and applies the Decision it returns:
// headers to set, a body to replace, or a local JSON-RPC reply. Decisions
// are plain values, so the whole router is tested with `go test`.
package router

import (
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"sync/atomic"
	"time"

	"github.com/mcpgw/mcpgw/filter/config"
	"github.com/mcpgw/mcpgw/filter/sessionid"
)

// Options configure a Router. The zero value is usable.
type Options struct {
	// Logger receives rejections and session events; nil discards.
	Logger *slog.Logger
	// HTTPClient initializes backend sessions (default: a client with a 10s
	// timeout). Requests go straight to each server's URL.
	HTTPClient *http.Client
}

// Router routes MCP requests. It is safe for concurrent use; Apply swaps the
// configuration atomically while requests are in flight.
type Router struct {
	log      *slog.Logger
	table    atomic.Pointer[table]
	sessions *Sessions
	init     *initializer
	// bg owns the goroutines the Router starts (background.go); ownClient
	// is set when init's HTTP client is the Router's own.
	bg        *background
	ownClient bool
	Metrics   Metrics
}

// New returns a Router with no configuration; until Apply is called every
// request gets RejectNotReady. Close stops its background work.
func New(opts Options) *Router {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	client := opts.HTTPClient
	r := &Router{log: log, sessions: newSessions(config.DefaultMaxSessions), ownClient: client == nil}
	if client == nil {
		client = defaultHTTPClient()
	}
	r.bg = r.sessions.bg
	r.init = &initializer{client: client, log: log}
	return r
}

// Apply compiles c and makes it the active configuration. Credentials and
// the session key are resolved here, once, not per request. On error the
// previous configuration stays active.
func (r *Router) Apply(c *config.Config) error {
	t, err := compile(c)
	if err != nil {
		return err
	}
	r.sessions.resize(c.Gateway.MaxSessions)
	// Backend sessions of removed or moved servers are not purged here: a
	// stale one answers 404 and is then invalidated like any lost session.
	r.table.Store(t)
	r.log.Info("router config applied", "servers", len(t.servers), "virtualServers", len(t.virtual))
	return nil
}

// Sessions exposes the backend-session store (for metrics and tests).
func (r *Router) Sessions() *Sessions { return r.sessions }

// defaultHTTPClient opens backend sessions. Bursts of first calls (many
// clients arriving at once) open sessions to the same few backends
// concurrently: the default transport keeps only 2 idle connections per host
// and would close the rest, leaving thousands of sockets in TIME_WAIT.
func defaultHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	t.MaxIdleConns = 256
	return &http.Client{Timeout: 10 * time.Second, Transport: t}
}

// Server is a compiled config.Server.
type Server struct {
	Name         string
	Hostname     string
	Path         string
	UpstreamHost string
	URL          string
	Prefix       string
	// Stateless: the backend serves stateless-era calls (config.Server).
	Stateless bool
	// CredentialHeader/CredentialValue are empty when the server has none.
	CredentialHeader string
	CredentialValue  string
}

// virtualServer is a compiled config.VirtualServer: the (prefixed) tool
// names a client may call through its endpoint.
type virtualServer struct {
	name  string
	tools map[string]struct{}
}

// aliasTarget is where an alias (config.Server.Aliases) leads: a server
// and the server's own name for the tool or prompt.
type aliasTarget struct {
	srv  *Server
	bare string
}

// table is an immutable compiled configuration.
type table struct {
	servers    []*Server
	byName     map[string]*Server
	byPrefix   map[string]*Server
	aliases    map[string]aliasTarget // exact gateway names, before prefixes
	prefixLens []int                  // distinct prefix lengths, longest first
	virtual    map[string]*virtualServer
	codec      *sessionid.Codec
	maxBody    int
	// origins are the allowed Origin values; nil allows loopback origins
	// only (see originAllowed).
	origins map[string]struct{}
}

func compile(c *config.Config) (*table, error) {
	key, err := c.Gateway.SessionKey.Resolve()
	if err != nil {
		return nil, fmt.Errorf("gateway.sessionKey: %w", err)
	}
	codec, err := sessionid.New([]byte(key))
	if err != nil {
		return nil, fmt.Errorf("gateway.sessionKey: %w", err)
	}
	t := &table{
		byName:   make(map[string]*Server, len(c.Servers)),
		byPrefix: make(map[string]*Server, len(c.Servers)),
		aliases:  map[string]aliasTarget{},
		virtual:  make(map[string]*virtualServer, len(c.VirtualServers)),
		codec:    codec,
		maxBody:  c.Gateway.MaxRequestBodyBytes,
	}
	if len(c.Gateway.AllowedOrigins) > 0 {
		t.origins = make(map[string]struct{}, len(c.Gateway.AllowedOrigins))
		for _, o := range c.Gateway.AllowedOrigins {
			t.origins[o] = struct{}{}
		}
	}
	lens := map[int]bool{}
	for i := range c.Servers {
		cs := &c.Servers[i]
		s := &Server{
			Name: cs.Name, Hostname: cs.Hostname, Path: cs.Path(),
			UpstreamHost: cs.HostPort(), URL: cs.URL, Prefix: cs.Prefix,
			Stateless: cs.Stateless,
		}
		if cs.Credential != nil {
			v, err := cs.Credential.Resolve()
			if err != nil {
				return nil, fmt.Errorf("servers[%d].credential: %w", i, err)
			}
			s.CredentialHeader, s.CredentialValue = cs.Credential.HeaderName(), v
		}
		t.servers = append(t.servers, s)
		t.byName[s.Name] = s
		t.byPrefix[s.Prefix] = s
		lens[len(s.Prefix)] = true
		for alias, bare := range cs.Aliases {
			t.aliases[alias] = aliasTarget{srv: s, bare: bare}
		}
	}
	for l := range lens {
		t.prefixLens = append(t.prefixLens, l)
	}
	sort.Sort(sort.Reverse(sort.IntSlice(t.prefixLens)))
	for _, cv := range c.VirtualServers {
		v := &virtualServer{name: cv.Name, tools: make(map[string]struct{}, len(cv.Tools))}
		for _, tool := range cv.Tools {
			v.tools[tool] = struct{}{}
		}
		t.virtual[v.name] = v
	}
	return t, nil
}

// lookup finds the server owning name and returns the server's own name
// for it: an alias's target, or else the name without the longest matching
// prefix. An alias wins over prefixes (config.Server.validateAliases says
// why). It does not allocate.
func (t *table) lookup(name string) (*Server, string) {
	if a, ok := t.aliases[name]; ok {
		return a.srv, a.bare
	}
	for _, l := range t.prefixLens {
		if l > len(name) || (l == len(name) && l > 0) {
			continue // an empty remainder is not a tool name
		}
		if s, ok := t.byPrefix[name[:l]]; ok {
			return s, name[l:]
		}
	}
	return nil, ""
}

// Metrics count router outcomes. Adapters export them to the host.
type Metrics struct {
	Requests        atomic.Int64 // POST bodies decided
	Routed          atomic.Int64 // calls routed to a backend
	RoutedByHeaders atomic.Int64 // of those, routed on Mcp-Method/Mcp-Name alone
	Forwarded       atomic.Int64 // requests left to the broker
	SessionInits    atomic.Int64 // backend sessions initialized
	SessionInitFail atomic.Int64 // backend session initializations that failed
	SessionsLost    atomic.Int64 // backend 404s that invalidated a session
	RequestsRelayed atomic.Int64 // backend requests to clients given relay ids
	AnswersRouted   atomic.Int64 // client answers routed back by relay id
	TasksRouted     atomic.Int64 // tasks requests routed by gateway task id
	CancelsRelayed  atomic.Int64 // client cancellations sent to backends
	StreamsResumed  atomic.Int64 // SSE streams resumed on a backend (Last-Event-ID)
	Rejected        [numRejections]atomic.Int64
}
