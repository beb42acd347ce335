// Package upstream keeps one MCP client session to one backend server.
//
// An Upstream connects over Streamable HTTP, checks that the backend speaks a
// protocol version the gateway supports and offers tools, prompts or
// resources, and discovers those lists. It then watches the session: list
// change notifications trigger a re-list, and a failed ping or a closed
// session (for instance a 404 for a backend that restarted and forgot it)
// triggers a reconnect with exponential backoff. Each Upstream runs in its
// own goroutine, so a slow or dead backend never holds up another.
package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgw/mcpgw/filter/config"
)

// State is where an Upstream stands with its backend.
type State string

const (
	// StateConnecting is the state before the first handshake, and after a
	// ready session was lost while the first reconnect is under way.
	StateConnecting State = "connecting"
	// StateReady means the session is up and the catalog is current.
	StateReady State = "ready"
	// StateInvalid means the backend answered but cannot be used through the
	// gateway (unsupported protocol version, no usable capability, bad
	// credential reference...). It is retried at the backoff pace, since the
	// backend may be fixed without a config change.
	StateInvalid State = "invalid"
	// StateUnreachable means the last connection attempt failed.
	StateUnreachable State = "unreachable"
)

// supportedVersions are the MCP protocol versions the gateway supports,
// newest first, for session-era backends. Only a backend marked stateless in
// the config is connected to over the session-less 2026-07-28 protocol
// (statelessVersion), so that its list_changed notifications reach the broker.
var supportedVersions = []string{"2025-11-25", "2025-06-18", "2025-03-26"}

// SupportedProtocolVersions returns the protocol versions the gateway
// supports, newest first.
func SupportedProtocolVersions() []string { return slices.Clone(supportedVersions) }

// Lists is a set of the lists a backend can announce a change of, with
// notifications/{tools,prompts,resources}/list_changed.
type Lists uint8

const (
	ToolList Lists = 1 << iota
	PromptList
	ResourceList // resources and resource templates alike
)

// Has reports whether l includes all of m.
func (l Lists) Has(m Lists) bool { return l&m == m }

// Catalog is what a backend offers, with its own (unprefixed) names.
type Catalog struct {
	Tools             []*mcp.Tool
	Prompts           []*mcp.Prompt
	Resources         []*mcp.Resource
	ResourceTemplates []*mcp.ResourceTemplate
}

// Snapshot is a point-in-time view of an Upstream, for status reporting.
type Snapshot struct {
	Name              string
	URL               string
	State             State
	ProtocolVersion   string // negotiated; empty unless a handshake succeeded
	Tools             int
	Prompts           int
	Resources         int
	ResourceTemplates int
	LastError         string    // empty while ready after a clean connect
	Since             time.Time // when State last changed
}

// Options tune an Upstream. The zero value is usable.
type Options struct {
	// Logger receives state changes; nil discards. Credentials are never logged.
	Logger *slog.Logger
	// Transport is the base HTTP transport (default: a private clone of
	// http.DefaultTransport, whose idle connections Close releases).
	Transport http.RoundTripper
	// PingInterval is how often a ready session is pinged (default 15s).
	PingInterval time.Duration
	// RequestTimeout bounds the handshake, each ping and each discovery
	// (default 10s).
	RequestTimeout time.Duration
	// BackoffMin and BackoffMax bound the reconnect delay, which doubles
	// after each failure (defaults 250ms and 30s).
	BackoffMin, BackoffMax time.Duration
	// OnChange, if set, is called with the new catalog each time it changes:
	// when the backend becomes ready, after a re-list that found a change,
	// and with an empty catalog when the backend is found unreachable or
	// invalid. Calls for one Upstream are never concurrent; OnChange must
	// not call Close.
	OnChange func(Catalog)
	// OnListChanged, if set, is called after each successful re-list that
	// the backend's list_changed notifications prompted, with the lists
	// they announced (after OnChange if the catalog changed). It is called
	// even when the catalog looks the same: the backend may have changed
	// what its definitions do not show, and the clients of those lists
	// expect the announcement. The notifications of a burst share one
	// re-list, hence one call. Calls are never concurrent with each other
	// or with OnChange; OnListChanged must not call Close.
	OnListChanged func(Lists)
	// OnResourceUpdated, if set, is called with the URI of each
	// notifications/resources/updated the backend sends, and once for each
	// subscribed URI after a reconnect re-subscribed it (the resource may
	// have changed meanwhile). It is called from the session's reader: it
	// must not block on requests to this backend.
	OnResourceUpdated func(uri string)
	// Subscriptions are resource URIs to subscribe to as if by Subscribe,
	// once a session is ready (e.g. those of the Upstream this one
	// replaces).
	Subscriptions []string
}

func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.PingInterval <= 0 {
		o.PingInterval = 15 * time.Second
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 10 * time.Second
	}
	if o.BackoffMin <= 0 {
		o.BackoffMin = 250 * time.Millisecond
	}
	if o.BackoffMax < o.BackoffMin {
		o.BackoffMax = max(30*time.Second, o.BackoffMin)
	}
	if o.OnChange == nil {
		o.OnChange = func(Catalog) {}
	}
	if o.OnListChanged == nil {
		o.OnListChanged = func(Lists) {}
	}
	if o.OnResourceUpdated == nil {
		o.OnResourceUpdated = func(string) {}
	}
}

// ErrNotReady is returned by Session when the backend has no usable session.
var ErrNotReady = errors.New("backend not ready")

// Upstream is the gateway's connection to one backend server.
type Upstream struct {
	srv    config.Server
	opts   Options
	log    *slog.Logger
	client *mcp.Client
	// ownTransport is set when Options.Transport was nil, so Close can drop
	// the idle connections of the clone it made.
	ownTransport *http.Transport
	base         http.RoundTripper
	cred         credential
	relist       chan struct{} // capacity 1: pending list_changed signals coalesce

	cancel context.CancelFunc
	done   chan struct{}

	mu         sync.Mutex
	snap       Snapshot
	catalog    Catalog
	catalogSig []byte             // JSON of catalog, to skip no-op updates
	session    *mcp.ClientSession // non-nil only while ready
	// subs are the resource URIs subscribed to with Subscribe, which a
	// new session re-subscribes.
	subs map[string]bool
	// announced are the lists the backend announced a change of since the
	// last re-list took them (see OnListChanged).
	announced Lists
}

// New returns an Upstream for srv. Call Start to connect.
func New(srv config.Server, opts Options) *Upstream {
	opts.setDefaults()
	u := &Upstream{
		srv:    srv,
		opts:   opts,
		log:    opts.Logger.With("server", srv.Name, "url", srv.URL),
		relist: make(chan struct{}, 1),
		done:   make(chan struct{}),
		snap:   Snapshot{Name: srv.Name, URL: srv.URL, State: StateConnecting, Since: time.Now()},
		subs:   map[string]bool{},
	}
	for _, uri := range opts.Subscriptions {
		u.subs[uri] = true
	}
	u.catalogSig, _ = json.Marshal(u.catalog) // the empty catalog is not news
	u.base = opts.Transport
	if u.base == nil {
		u.ownTransport = http.DefaultTransport.(*http.Transport).Clone()
		u.base = u.ownTransport
	}
	u.cred.ref = srv.Credential
	u.client = u.newClient()
	return u
}

// Start connects in the background and keeps the session alive until Close.
func (u *Upstream) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	u.cancel = cancel
	go u.run(ctx)
}

// Close stops the Upstream, ends its backend session and waits for its
// goroutine. It must follow Start.
func (u *Upstream) Close() {
	u.cancel()
	<-u.done
	if u.ownTransport != nil {
		u.ownTransport.CloseIdleConnections()
	}
}

// Server returns the configuration the Upstream was made with.
func (u *Upstream) Server() config.Server { return u.srv }

// Snapshot returns the current status.
func (u *Upstream) Snapshot() Snapshot {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.snap
}

// Catalog returns the last discovered catalog. It survives a lost session
// until a reconnect attempt fails, and is empty before the first success.
func (u *Upstream) Catalog() Catalog {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.catalog
}

// Session returns the live session to the backend, for proxying requests,
// or an error wrapping ErrNotReady.
func (u *Upstream) Session() (*mcp.ClientSession, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.session == nil {
		return nil, fmt.Errorf("%w: server %q is %s", ErrNotReady, u.srv.Name, u.snap.State)
	}
	return u.session, nil
}

// newClient makes the go-sdk client used for every connection attempt. Its
// list_changed handlers only record the announcement and signal the run
// loop: re-listing from inside a notification handler would hold up the
// session's reader.
func (u *Upstream) newClient() *mcp.Client {
	c := mcp.NewClient(&mcp.Implementation{Name: "mcpgw-broker", Version: "v1"}, &mcp.ClientOptions{
		Logger:                     u.log,
		Capabilities:               &mcp.ClientCapabilities{}, // no roots, sampling or elicitation to offer
		ToolListChangedHandler:     func(context.Context, *mcp.ToolListChangedRequest) { u.announce(ToolList) },
		PromptListChangedHandler:   func(context.Context, *mcp.PromptListChangedRequest) { u.announce(PromptList) },
		ResourceListChangedHandler: func(context.Context, *mcp.ResourceListChangedRequest) { u.announce(ResourceList) },
		ResourceUpdatedHandler: func(_ context.Context, req *mcp.ResourceUpdatedNotificationRequest) {
			if req.Params != nil && req.Params.URI != "" {
				u.opts.OnResourceUpdated(req.Params.URI)
			}
		},
	})
	c.AddSendingMiddleware(captureInitialize)
	return c
}

// announce records the backend's list_changed for lists and makes the run
// loop re-list.
func (u *Upstream) announce(lists Lists) {
	u.mu.Lock()
	u.announced |= lists
	u.mu.Unlock()
	u.requestRelist()
}

// takeAnnounced returns and clears the lists announced so far. A re-list
// takes them before listing, so that an announcement made while it lists
// waits for the re-list it signals, which sees that change.
func (u *Upstream) takeAnnounced() Lists {
	u.mu.Lock()
	defer u.mu.Unlock()
	l := u.announced
	u.announced = 0
	return l
}

// requestRelist makes the run loop re-list, without blocking.
func (u *Upstream) requestRelist() {
	select {
	case u.relist <- struct{}{}:
	default: // a re-list is already pending; it will see this change too
	}
}

// setState records a state change and logs it.
func (u *Upstream) setState(st State, version string, err error) {
	u.mu.Lock()
	prev := u.snap.State
	if st != prev {
		u.snap.Since = time.Now()
	}
	u.snap.State = st
	u.snap.ProtocolVersion = version
	u.snap.LastError = ""
	if err != nil {
		u.snap.LastError = err.Error()
	}
	u.mu.Unlock()
	switch {
	case st == prev:
	case err != nil:
		u.log.Warn("backend "+string(st), "error", err)
	default:
		u.log.Info("backend "+string(st), "protocolVersion", version)
	}
}

// publish installs a session (nil when unusable) and a catalog, and tells
// OnChange if the catalog differs from the previous one: re-lists are often
// triggered for nothing (e.g. when the SSE stream reopens).
func (u *Upstream) publish(cat Catalog, cs *mcp.ClientSession) {
	sig, err := json.Marshal(cat)
	if err != nil { // cannot happen with decoded JSON; treat as a change
		sig = nil
	}
	u.mu.Lock()
	changed := sig == nil || !bytes.Equal(sig, u.catalogSig)
	u.catalog, u.catalogSig = cat, sig
	u.session = cs
	u.snap.Tools = len(cat.Tools)
	u.snap.Prompts = len(cat.Prompts)
	u.snap.Resources = len(cat.Resources)
	u.snap.ResourceTemplates = len(cat.ResourceTemplates)
	u.mu.Unlock()
	if changed {
		u.log.Debug("backend lists changed", "tools", len(cat.Tools), "prompts", len(cat.Prompts),
			"resources", len(cat.Resources), "resourceTemplates", len(cat.ResourceTemplates))
		u.opts.OnChange(cat)
	}
}

// dropSession forgets the session but keeps the catalog, so that a backend
// that restarts is not removed from the aggregated lists for the moment it
// takes to reconnect.
func (u *Upstream) dropSession() {
	u.mu.Lock()
	u.session = nil
	u.mu.Unlock()
}

// Subscribe subscribes to the resource at uri on the backend, and again on
// every later session until Unsubscribe. It fails, subscribing to nothing,
// when the backend is not ready or refuses.
func (u *Upstream) Subscribe(ctx context.Context, uri string) error {
	u.mu.Lock()
	cs := u.session
	if cs == nil {
		st := u.snap.State
		u.mu.Unlock()
		return fmt.Errorf("%w: server %q is %s", ErrNotReady, u.srv.Name, st)
	}
	// Recorded before sending, so that a session that replaces cs
	// meanwhile re-subscribes it (see resubscribe).
	had := u.subs[uri]
	u.subs[uri] = true
	u.mu.Unlock()
	err := cs.Subscribe(ctx, &mcp.SubscribeParams{URI: uri})
	if err != nil && !had {
		u.mu.Lock()
		delete(u.subs, uri)
		u.mu.Unlock()
	}
	return err
}

// Unsubscribe undoes Subscribe. The URI is forgotten even if the backend
// cannot be told (a lost session has lost its subscriptions anyway).
func (u *Upstream) Unsubscribe(ctx context.Context, uri string) error {
	u.mu.Lock()
	delete(u.subs, uri)
	cs := u.session
	u.mu.Unlock()
	if cs == nil {
		return nil
	}
	return cs.Unsubscribe(ctx, &mcp.UnsubscribeParams{URI: uri})
}

// Subscriptions returns the subscribed URIs, sorted.
func (u *Upstream) Subscriptions() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Sorted(maps.Keys(u.subs))
}

// resubscribe subscribes a new session to the URIs subscribed on the
// previous ones. It runs after publish made cs the session: a Subscribe
// that came before that is in subs, and one that comes after sends on cs
// itself (a duplicate subscription is harmless). Each URI is reported to
// OnResourceUpdated, since it may have changed while disconnected.
func (u *Upstream) resubscribe(ctx context.Context, cs *mcp.ClientSession) {
	for _, uri := range u.Subscriptions() {
		sctx, cancel := context.WithTimeout(ctx, u.opts.RequestTimeout)
		err := cs.Subscribe(sctx, &mcp.SubscribeParams{URI: uri})
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			u.log.Warn("re-subscribing to a resource failed", "uri", uri, "error", err)
			continue
		}
		u.opts.OnResourceUpdated(uri)
	}
}
