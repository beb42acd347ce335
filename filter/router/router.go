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
	"sync"
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
	// timeout), and replays calls whose backend session was lost through
	// its Transport, without its Timeout (a replayed call runs as long as
	// the client's stream lives). Requests go straight to each server's URL.
	HTTPClient *http.Client
}

// Router routes MCP requests. It is safe for concurrent use; Apply swaps the
// configuration atomically while requests are in flight.
type Router struct {
	log      *slog.Logger
	table    atomic.Pointer[table]
	sessions *Sessions
	init     *initializer
	revoked  *revocations // terminated sessions (revocation.go)
	// bg owns the goroutines the Router starts (background.go); ownClient
	// is set when init's HTTP client is the Router's own.
	bg        *background
	ownClient bool
	Metrics   Metrics

	mu       sync.Mutex // guards follower and closed; Apply and Close
	follower *follower  // the broker's revocation feed, nil without brokerURL
	closed   bool
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
	r.revoked = newRevocations()
	r.bg = r.sessions.bg
	calls := *client
	calls.Timeout = 0
	r.init = &initializer{client: client, calls: &calls, log: log}
	return r
}

// Apply compiles c and makes it the active configuration. Credentials and
// the session keys are resolved here, not per request: config.Watch calls
// Apply again when one of them resolves differently, and the calls routed
// (and backend sessions opened) after that use the new values. A session
// key that changed keeps verifying for gateway.sessionKeyGracePeriod. Apply
// starts (or moves) the revocation feed follower when the config names the
// broker. On error the previous configuration stays active.
func (r *Router) Apply(c *config.Config) error {
	var prev *sessionid.Codec
	if old := r.table.Load(); old != nil {
		prev = old.codec
	}
	t, err := compile(c, prev)
	if err != nil {
		return err
	}
	r.sessions.resize(c.Gateway.MaxSessions)
	// Backend sessions of removed or moved servers are not purged here: a
	// stale one answers 404 and is then invalidated like any lost session.
	r.table.Store(t)
	r.follow(c.Gateway.BrokerURL)
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

// table is an immutable compiled configuration.
type table struct {
	servers []*Server // in config order: names' server indexes
	byName  map[string]*Server
	// names resolves tool and prompt names to servers, by the rule the
	// broker lists them by.
	names   *config.Names
	virtual map[string]*virtualServer
	codec   *sessionid.Codec
	// maxLifetime is gateway.sessionMaxLifetime in seconds.
	maxLifetime int64
	maxBody     int
	// origins are the allowed Origin values; nil allows loopback origins
	// only (see originAllowed).
	origins map[string]struct{}
}

// compile builds the table of c; prev is the codec of the table it
// replaces (nil for the first), whose current key the new codec keeps for
// the grace period if the key changed.
func compile(c *config.Config, prev *sessionid.Codec) (*table, error) {
	current, previous, err := c.Gateway.SessionKeys()
	if err != nil {
		return nil, err
	}
	codec, err := prev.Rotate(time.Now(), c.Gateway.KeyGracePeriod(), current, previous...)
	if err != nil {
		return nil, fmt.Errorf("gateway.sessionKey: %w", err)
	}
	t := &table{
		byName:      make(map[string]*Server, len(c.Servers)),
		names:       config.NewNames(c.Servers),
		virtual:     make(map[string]*virtualServer, len(c.VirtualServers)),
		codec:       codec,
		maxLifetime: int64(c.Gateway.MaxLifetime() / time.Second),
		maxBody:     c.Gateway.MaxRequestBodyBytes,
	}
	if len(c.Gateway.AllowedOrigins) > 0 {
		t.origins = make(map[string]struct{}, len(c.Gateway.AllowedOrigins))
		for _, o := range c.Gateway.AllowedOrigins {
			t.origins[o] = struct{}{}
		}
	}
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
	}
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
// for it, by config.Names: the broker lists a name only where this is the
// server and name it came from, so a listed tool never runs elsewhere. It
// does not allocate.
func (t *table) lookup(name string) (*Server, string) {
	i, bare, ok := t.names.Resolve(name)
	if !ok {
		return nil, ""
	}
	return t.servers[i], bare
}

// Metrics count router outcomes. Adapters export them to the host.
type Metrics struct {
	Requests         atomic.Int64 // POST bodies decided
	Routed           atomic.Int64 // calls routed to a backend
	RoutedByHeaders  atomic.Int64 // of those, routed on Mcp-Method/Mcp-Name alone
	Forwarded        atomic.Int64 // requests left to the broker
	SessionInits     atomic.Int64 // backend sessions initialized
	SessionInitFail  atomic.Int64 // backend session initializations that failed
	SessionsLost     atomic.Int64 // backend 404s that invalidated a session
	RequestsRelayed  atomic.Int64 // backend requests to clients given relay ids
	AnswersRouted    atomic.Int64 // client answers routed back by relay id
	TasksRouted      atomic.Int64 // tasks requests routed by gateway task id
	CancelsRelayed   atomic.Int64 // client cancellations sent to backends
	StreamsResumed   atomic.Int64 // SSE streams resumed on a backend (Last-Event-ID)
	Replays          atomic.Int64 // calls replayed after a lost backend session
	ReplaysSucceeded atomic.Int64 // of those, answered by the backend on a new session
	Rejected         [numRejections]atomic.Int64

	// Session termination (revocation.go, follow.go).
	RevocationsApplied   atomic.Int64 // terminated sessions learned of: DELETEs forwarded, the broker's feed
	RevocationFeedErrors atomic.Int64 // failed polls of the broker's revocation feed
	BrokerRestarts       atomic.Int64 // new broker epochs seen on the feed (not counting the first)
}
