// Package broker is mcpgw's aggregating MCP server.
//
// Envoy's router sends tools/call and prompts/get straight to the owning
// backend; every other request on /mcp (initialize, the list methods,
// resources, notifications, GET streams, DELETE, ping...) reaches the broker.
// The broker keeps one client session per configured backend (package
// upstream) and exposes the union of their tools and prompts, each renamed
// prefix+name and listed again under each of its aliases (config.Server
// Aliases), and of their resources under their own URIs. A tool or prompt
// is listed under a name only if the router routes that name to it: both
// follow config.Names, so tools/list and tools/call cannot disagree. It mints the
// gateway session ids the router verifies, and it follows the config file.
//
// Calls that do reach the broker anyway (e.g. inside a JSON-RPC batch) are
// proxied to the owning backend over the broker's own session.
// completion/complete and resources/subscribe and unsubscribe are forwarded
// the same way, a backend subscription being shared by all the client
// sessions subscribed to its URI (see subscribe.go).
//
// # Virtual servers
//
// Each virtual server of the config (config.VirtualServer) is served as an
// MCP server of its own at /mcp/<name>, e.g. /mcp/team-a/dev: a client
// selects it by connecting to that URL. The selection is in the path, not
// in a header, because an MCP client's user can always set the server URL
// but often cannot add headers, and because a Streamable HTTP client sends
// every request of its session to the same URL, so the router in Envoy sees
// the selection on each tools/call and refuses the tools the virtual server
// does not list. Its tools/list holds the listed tools some backend
// provides now (it follows the backends and the config, with list_changed
// notifications); it offers no prompts or resources; its description is
// sent as the server's description and instructions. A session belongs to
// the endpoint it was initialized on (each virtual server has its own
// mcp.Server and session table). A path naming no configured virtual
// server gets HTTP 404 with a JSON-RPC error that names it.
package broker

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgw/mcpgw/broker/upstream"
	"github.com/mcpgw/mcpgw/filter/config"
	"github.com/mcpgw/mcpgw/filter/sessionid"
)

// Version is reported as the broker's MCP implementation version.
const Version = "v0.1.0"

// Options configure a Broker and Run. The zero value is usable by New;
// Run needs ConfigPath.
type Options struct {
	// ConfigPath is the watched config file (Run only).
	ConfigPath string
	// Addr is the listen address of Run (default "127.0.0.1:8090").
	Addr string
	// Listener, if set, is used by Run instead of listening on Addr.
	Listener net.Listener
	// Logger receives the broker's logs; nil discards.
	Logger *slog.Logger
	// Upstream tunes the backend connections; its Logger, callbacks
	// (On...) and Subscriptions are set by the broker.
	Upstream upstream.Options
	// SessionIdleTimeout closes client sessions that sent no request to the
	// broker and held no GET stream for that long (0: never; see idle.go).
	// Calls routed by Envoy to backends do not reach the broker and so do
	// not count. mcpgw-broker's default is DefaultSessionIdleTimeout.
	SessionIdleTimeout time.Duration
	// ShutdownTimeout bounds Run's graceful shutdown (default 10s).
	ShutdownTimeout time.Duration
	// Watch tunes the config watch of Run; its Logger is set by Run.
	Watch config.WatchOptions
}

// Broker aggregates the configured backends into one MCP server.
type Broker struct {
	opts    Options
	log     *slog.Logger
	server  *mcp.Server
	handler http.Handler
	codec   atomic.Pointer[sessionid.Codec]
	watch   atomic.Pointer[config.WatchStats]
	metrics metrics

	// revocations is the feed of terminated sessions (revocations.go);
	// lifetime is gateway.sessionMaxLifetime.
	revocations *revocationLog
	lifetime    atomic.Int64

	mu       sync.Mutex
	closed   bool
	key      string   // the resolved session key, to notice a change
	ring     [32]byte // a digest of the whole resolved key ring
	backends map[string]*backend
	reg      *registry
	closing  sync.WaitGroup // upstreams and sessions being closed in the background
	// virtual holds the virtual servers by name; virtualView is a copy the
	// HTTP handler reads without b.mu.
	virtual     map[string]*virtualServer
	virtualView atomic.Pointer[map[string]*virtualServer]

	// subMu serializes resource subscription changes (see subscribe.go); it
	// is taken before mu, never while holding it.
	subMu    sync.Mutex
	subs     map[string]*subscription        // by URI
	watched  map[*mcp.ServerSession]struct{} // subscribers whose end is watched
	watchers sync.WaitGroup                  // their watching goroutines

	activity  sessionActivity // for SessionIdleTimeout (idle.go)
	stopSweep chan struct{}   // closed by Close
}

// backend is one configured server and its connection.
type backend struct {
	cfg config.Server
	up  *upstream.Upstream
}

// New returns a Broker with no backends and no session key: /mcp answers
// 503 until Apply has installed a config.
func New(opts Options) *Broker {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	b := &Broker{opts: opts, log: opts.Logger, backends: map[string]*backend{}, virtual: map[string]*virtualServer{},
		subs: map[string]*subscription{}, watched: map[*mcp.ServerSession]struct{}{}}
	b.server = b.newServer(&mcp.Implementation{Name: "mcpgw", Version: Version}, "",
		// Declared up front so that clients expect tools and list_changed
		// even while no backend is ready. No logging capability: the broker
		// has nothing to log to clients. Completions and subscriptions are
		// forwarded to the backend that owns the prompt or resource.
		&mcp.ServerCapabilities{
			Tools:       &mcp.ToolCapabilities{ListChanged: true},
			Prompts:     &mcp.PromptCapabilities{ListChanged: true},
			Resources:   &mcp.ResourceCapabilities{ListChanged: true, Subscribe: true},
			Completions: &mcp.CompletionCapabilities{},
		},
		func(o *mcp.ServerOptions) {
			o.CompletionHandler = b.complete
			o.SubscribeHandler = b.subscribe
			o.UnsubscribeHandler = b.unsubscribe
		})
	b.handler = b.newHandler(b.server)
	b.reg = newRegistry(b.server, b.log, proxy{b}, func() { b.metrics.registrationFailures.Add(1) })
	b.activity.byID = map[string]*activity{}
	b.revocations = newRevocationLog(time.Now())
	b.lifetime.Store(int64(config.DefaultSessionMaxLifetime))
	b.stopSweep = make(chan struct{})
	b.watchers.Go(func() { b.sweep(b.stopSweep) })
	return b
}

// newServer returns an MCP server whose sessions get gateway session ids;
// each of more may adjust its options.
func (b *Broker) newServer(impl *mcp.Implementation, instructions string, caps *mcp.ServerCapabilities,
	more ...func(*mcp.ServerOptions)) *mcp.Server {
	opts := &mcp.ServerOptions{
		Logger:       b.log,
		GetSessionID: b.mintSessionID,
		Instructions: instructions,
		// newHandler serves both eras on the same endpoint.
		SupportedProtocolVersions: protocolVersions(),
		Capabilities:              caps,
	}
	for _, f := range more {
		f(opts)
	}
	srv := mcp.NewServer(impl, opts)
	srv.AddReceivingMiddleware(b.advertiseTasks)
	return srv
}

// statelessVersion is the first protocol version of the stateless era: no
// initialize, no session; every request carries its version (header
// MCP-Protocol-Version and _meta).
const statelessVersion = "2026-07-28"

// newHandler serves srv over Streamable HTTP to both protocol eras on one
// endpoint. The go-sdk (v1.8.0) serves the stateless era only from a
// handler in stateless mode, and sessions only from one in stateful mode,
// so there are two handlers over the same server: a request whose
// MCP-Protocol-Version header names the stateless era goes to the
// stateless one (its clients must send the header with every request),
// anything else (initialize, session requests, GET streams, DELETE) to the
// stateful one, with its own session table. A stateless request without the
// header thus gets the stateful handler's 400 (header required), as the
// spec wants.
func (b *Broker) newHandler(srv *mcp.Server) http.Handler {
	getServer := func(*http.Request) *mcp.Server { return srv }
	stateful := mcp.NewStreamableHTTPHandler(getServer, &mcp.StreamableHTTPOptions{
		Logger: b.log,
		// Envoy forwards the client's Host to a broker on loopback, which
		// the go-sdk's DNS-rebinding check would refuse with 403.
		DisableLocalhostProtection: true,
		// No SessionTimeout: it counts only POSTs (see idle.go).
	})
	stateless := mcp.NewStreamableHTTPHandler(getServer, &mcp.StreamableHTTPOptions{
		Logger:                     b.log,
		DisableLocalhostProtection: true,
		Stateless:                  true,
	})
	tracked := b.trackSessions(stateful)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isStateless(r) {
			if isTaskRequest(r) && b.serveTask(w, r) {
				return
			}
			if !b.refuseInvalid(w, r) {
				stateless.ServeHTTP(w, r)
			}
			return
		}
		if !b.refuseInvalid(w, r) {
			tracked.ServeHTTP(w, r)
		}
	})
}

// isStateless reports whether r is a stateless-era request: its
// MCP-Protocol-Version header is 2026-07-28 or later (versions are dates,
// so they compare as strings) and it names no session.
func isStateless(r *http.Request) bool {
	v := r.Header.Get("Mcp-Protocol-Version")
	return v >= statelessVersion && r.Header.Get(sessionIDHeader) == ""
}

// Server returns the broker's MCP server.
func (b *Broker) Server() *mcp.Server { return b.server }

// mintSessionID mints the id of a new client session (sessionid documents
// the format). It is never dated before the broker started (rounded up to
// the second), so that a router ending the sessions issued before a
// restart (revocations.go) cannot end one of this process's.
func (b *Broker) mintSessionID() string {
	b.metrics.sessionsMinted.Add(1)
	issued := max(time.Now().Unix(), b.revocations.startedAt)
	return b.codec.Load().MintAt(time.Unix(issued, 0), anonymous) // serveMCP ensures a codec is installed
}

// anonymous is the principal of every session while the gateway
// authenticates nobody (sessionid: ids are bound to a principal).
const anonymous = ""

// sessionOver reports whether the session id is not one to serve: not
// signed by a key of the ring, or past gateway.sessionMaxLifetime at now.
func (b *Broker) sessionOver(codec *sessionid.Codec, id string, now time.Time) (forged, expired bool) {
	c, ok := codec.Verify(id, anonymous)
	if !ok {
		return true, false
	}
	return false, now.Unix()-c.IssuedAt >= int64(time.Duration(b.lifetime.Load())/time.Second)
}

var errClosed = errors.New("broker is closed")

// Apply reconciles the broker with cfg: it installs the session key ring,
// connects new servers, drops removed ones, reconnects those whose URL or
// credential reference changed, and re-reads the credentials of the others
// (config.Watch applies again when a secret's value changes: the new value
// goes out with the next request, over the live connection). It never
// blocks on a backend. The servers are applied even when the session keys
// cannot be resolved, in which case the previous ring stays in effect and
// the error is returned.
func (b *Broker) Apply(cfg *config.Config) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errClosed
	}
	b.metrics.configApplies.Add(1)
	keyErr := b.applyKeyLocked(cfg.Gateway)
	b.lifetime.Store(int64(cfg.Gateway.MaxLifetime()))
	want := map[string]config.Server{}
	for _, s := range cfg.Servers {
		want[s.Name] = s
	}
	carry := map[string][]string{} // subscriptions of replaced connections
	b.reg.setNames(cfg.Servers)
	for name, be := range b.backends {
		s, keep := want[name]
		if keep && sameConnection(be.cfg, s) {
			be.cfg = s // e.g. a new hostname, which only the router uses
			if err := be.up.RefreshCredential(); err != nil {
				b.log.Error("credential not re-read; the last value stays in use", "server", name, "error", err)
			}
			continue
		}
		if keep {
			carry[name] = be.up.Subscriptions()
		}
		b.removeLocked(be)
	}
	for _, s := range cfg.Servers {
		if _, ok := b.backends[s.Name]; !ok {
			b.addLocked(s, carry[s.Name])
		}
	}
	b.applyVirtualLocked(cfg.VirtualServers)
	if keyErr != nil {
		b.metrics.configApplyErrors.Add(1)
	}
	return keyErr
}

// sameConnection reports whether two versions of a server share a session:
// any change in where or how we connect needs a new one.
func sameConnection(a, b config.Server) bool {
	if a.URL != b.URL {
		return false
	}
	if a.Credential == nil || b.Credential == nil {
		return a.Credential == b.Credential
	}
	return *a.Credential == *b.Credential
}

// applyKeyLocked installs the codec of g's key ring when the ring changed.
// An old session key that is no longer in the ring keeps verifying for
// gateway.sessionKeyGracePeriod; the sessions whose ids the new ring does
// not vouch for (no grace) are closed, since the router rejects them
// already, and the sweep (idle.go) closes those of a grace that ends.
func (b *Broker) applyKeyLocked(g config.Gateway) error {
	current, previous, err := g.SessionKeys()
	if err != nil {
		return err
	}
	ring := ringDigest(current, previous)
	if ring == b.ring {
		return nil
	}
	old := b.codec.Load()
	codec, err := old.Rotate(time.Now(), g.KeyGracePeriod(), current, previous...)
	if err != nil {
		return fmt.Errorf("gateway.sessionKey: %w", err)
	}
	changed := old != nil && string(current) != b.key
	b.key, b.ring = string(current), ring
	b.codec.Store(codec)
	if old == nil {
		return nil
	}
	if changed {
		b.log.Info("session key changed: new sessions get ids of the new key", "gracePeriod", g.KeyGracePeriod())
	}
	// In the background: Close waits for the session's requests in
	// flight, and a proxied one may be waiting for b.mu.
	servers := b.serversLocked()
	b.closing.Go(func() {
		for _, srv := range servers {
			for ss := range srv.Sessions() {
				if _, ok := codec.Verify(ss.ID(), anonymous); !ok {
					ss.Close()
				}
			}
		}
	})
	return nil
}

// ringDigest identifies a key ring without keeping it.
func ringDigest(current []byte, previous [][]byte) [32]byte {
	h := sha256.New()
	for _, k := range append([][]byte{current}, previous...) {
		fmt.Fprintf(h, "%d:%s", len(k), k)
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

// addLocked connects a new backend; subs are resource URIs to subscribe to
// once it is ready (those of the connection it replaces).
func (b *Broker) addLocked(s config.Server, subs []string) {
	be := &backend{cfg: s}
	opts := b.opts.Upstream
	opts.Logger = b.log
	opts.OnChange = func(cat upstream.Catalog) {
		b.whileCurrent(be, func() {
			b.metrics.catalogUpdates.Add(1)
			b.reg.sync(be.cfg.Name, cat)
		})
	}
	opts.OnListChanged = func(lists upstream.Lists) {
		b.whileCurrent(be, func() { b.reg.relay(be.cfg.Name, lists) })
	}
	opts.OnResourceUpdated = b.resourceUpdated
	opts.Subscriptions = subs
	be.up = upstream.New(s, opts)
	b.backends[s.Name] = be
	b.log.Info("server added", "server", s.Name, "url", s.URL, "prefix", s.Prefix)
	be.up.Start()
}

// removeLocked withdraws a backend's entries and closes its connection in
// the background: Close waits for the upstream's goroutine, which may itself
// be waiting for b.mu in whileCurrent.
func (b *Broker) removeLocked(be *backend) {
	delete(b.backends, be.cfg.Name)
	b.reg.drop(be.cfg.Name)
	b.log.Info("server removed", "server", be.cfg.Name)
	b.closing.Go(be.up.Close)
}

// whileCurrent runs f, an upstream callback of be, under b.mu, unless be
// was removed or replaced meanwhile: its upstream runs until Close
// returns, which removeLocked does not wait for.
func (b *Broker) whileCurrent(be *backend, f func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.backends[be.cfg.Name] == be {
		f()
	}
}

// upstream returns the current connection to the named backend, or nil.
func (b *Broker) upstream(name string) *upstream.Upstream {
	b.mu.Lock()
	defer b.mu.Unlock()
	if be := b.backends[name]; be != nil {
		return be.up
	}
	return nil
}

// Close disconnects every backend and closes every client session.
func (b *Broker) Close() error {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.stopSweep)
		b.revocations.stop()
		for _, be := range b.backends {
			b.removeLocked(be)
		}
	}
	b.mu.Unlock()
	b.closing.Wait()
	b.closeSessions()
	b.watchers.Wait()
	return nil
}

// closeSessions ends every client session, of the gateway and of every
// virtual server, which also releases their hanging GET streams (so an
// http.Server can shut down).
func (b *Broker) closeSessions() {
	b.mu.Lock()
	servers := b.serversLocked()
	b.mu.Unlock()
	for _, srv := range servers {
		for ss := range srv.Sessions() {
			ss.Close()
		}
	}
}

// serversLocked returns the aggregated server and the virtual servers'.
func (b *Broker) serversLocked() []*mcp.Server {
	servers := []*mcp.Server{b.server}
	for _, vs := range b.virtual {
		servers = append(servers, vs.server)
	}
	return servers
}

// ServerStatus is one backend in GET /status. The JSON names are a stable
// contract (the controller reads them).
type ServerStatus struct {
	Name              string         `json:"name"`
	URL               string         `json:"url"`
	Prefix            string         `json:"prefix"`
	State             upstream.State `json:"state"`
	ProtocolVersion   string         `json:"protocolVersion"`
	Tools             int            `json:"tools"`
	Prompts           int            `json:"prompts"`
	Resources         int            `json:"resources"`
	ResourceTemplates int            `json:"resourceTemplates"`
	LastError         string         `json:"lastError"`
	Since             time.Time      `json:"since"`
}

// Status is the body of GET /status.
type Status struct {
	Servers        []ServerStatus        `json:"servers"`
	VirtualServers []VirtualServerStatus `json:"virtualServers"`
}

// Status reports every configured backend and virtual server, sorted by
// name.
func (b *Broker) Status() Status {
	type entry struct {
		prefix string
		up     *upstream.Upstream
	}
	b.mu.Lock()
	entries := make([]entry, 0, len(b.backends))
	for _, be := range b.backends {
		entries = append(entries, entry{be.cfg.Prefix, be.up})
	}
	st := Status{Servers: make([]ServerStatus, 0, len(entries)), VirtualServers: make([]VirtualServerStatus, 0, len(b.virtual))}
	for name, vs := range b.virtual {
		st.VirtualServers = append(st.VirtualServers, VirtualServerStatus{Name: name, Tools: b.reg.viewTools(name), Listed: len(vs.cfg.Tools)})
	}
	b.mu.Unlock()
	slices.SortFunc(st.VirtualServers, func(x, y VirtualServerStatus) int { return strings.Compare(x.Name, y.Name) })
	for _, e := range entries {
		s := e.up.Snapshot() // outside b.mu: the upstream has its own lock
		st.Servers = append(st.Servers, ServerStatus{
			Name: s.Name, URL: s.URL, Prefix: e.prefix, State: s.State,
			ProtocolVersion: s.ProtocolVersion, Tools: s.Tools, Prompts: s.Prompts,
			Resources: s.Resources, ResourceTemplates: s.ResourceTemplates,
			LastError: s.LastError, Since: s.Since.UTC(),
		})
	}
	slices.SortFunc(st.Servers, func(x, y ServerStatus) int { return strings.Compare(x.Name, y.Name) })
	return st
}
