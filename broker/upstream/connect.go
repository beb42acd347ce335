package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// handshakeVersion is the version the Upstream asks of session-era backends
// (the default). Asking for the newest session-based version keeps the
// go-sdk client on the classic initialize handshake instead of probing with
// server/discover.
const handshakeVersion = "2025-11-25"

// statelessVersion is the version asked of a backend marked stateless in
// the config. The go-sdk client then probes with server/discover instead of
// initialize and, when the backend declares listChanged, opens
// subscriptions/listen itself, delivering list_changed to the client's
// handlers: a stateless backend sends no list_changed any other way.
const statelessVersion = "2026-07-28"

// maxListItems bounds each discovered list, so that a misbehaving backend
// paginating forever cannot exhaust memory before the timeout.
const maxListItems = 10_000

// InvalidError reports a backend that answered but cannot be used.
type InvalidError struct{ Reason string }

func (e *InvalidError) Error() string { return e.Reason }

func invalidf(format string, args ...any) error {
	return &InvalidError{Reason: fmt.Sprintf(format, args...)}
}

// connect performs the handshake, validates the backend and discovers its
// catalog. On error the session, if any, is closed.
func (u *Upstream) connect(ctx context.Context) (*mcp.ClientSession, Catalog, error) {
	// Resolved afresh on each connection attempt, so that a fixed secret
	// is picked up on reconnect; a credential that cannot be resolved makes
	// the backend invalid.
	if err := u.cred.resolve(); err != nil {
		return nil, Catalog{}, err
	}
	var rt http.RoundTripper = u.cred.transport(u.base)
	rt = &boundedGET{base: rt, life: ctx, timeout: u.opts.RequestTimeout}
	transport := &mcp.StreamableClientTransport{
		Endpoint: u.srv.URL,
		// No Client.Timeout: it would cut the long-lived SSE stream that
		// carries list_changed notifications. Contexts bound each request.
		HTTPClient: &http.Client{Transport: &streamObserver{base: rt, opened: u.requestRelist}},
		// The go-sdk retries a failed SSE stream for up to ~20s, on a
		// context we cannot cancel, and even inside Connect. Failing at
		// once hands the reconnect to run, which does it with a fresh
		// session, a re-list and a backoff that Close can interrupt.
		MaxRetries: -1,
	}
	hctx, cancel := context.WithTimeout(ctx, u.opts.RequestTimeout)
	defer cancel()
	seen := new(initCapture)
	version := handshakeVersion
	if u.srv.Stateless {
		version = statelessVersion
	}
	cs, err := u.client.Connect(withCapture(hctx, seen), transport,
		&mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		// The go-sdk rejects versions it does not know before we see the
		// session; the capture tells that case apart from a network error.
		if res := seen.result; res != nil {
			if verr := u.validate(res); verr != nil {
				return nil, Catalog{}, verr
			}
		}
		return nil, Catalog{}, fmt.Errorf("initialize: %w", err)
	}
	if err := u.validate(cs.InitializeResult()); err != nil {
		cs.Close()
		return nil, Catalog{}, err
	}
	cat, err := discover(hctx, cs)
	if err != nil {
		cs.Close()
		return nil, Catalog{}, err
	}
	return cs, cat, nil
}

// validate checks the backend's initialize (or server/discover) result
// against what the gateway can serve. A backend marked stateless may also
// negotiate the stateless protocol; one that falls back to initialize is
// held to the session-era versions like any other.
func (u *Upstream) validate(res *mcp.InitializeResult) error {
	if res == nil {
		return invalidf("no initialize result")
	}
	versions := supportedVersions
	if u.srv.Stateless {
		versions = append([]string{statelessVersion}, supportedVersions...)
	}
	if !slices.Contains(versions, res.ProtocolVersion) {
		return invalidf("backend negotiated protocol version %q; the gateway supports %s",
			res.ProtocolVersion, strings.Join(versions, ", "))
	}
	c := res.Capabilities
	if c == nil || (c.Tools == nil && c.Prompts == nil && c.Resources == nil) {
		return invalidf("backend declares none of the tools, prompts and resources capabilities")
	}
	return nil
}

// discover lists everything the backend declared, following pagination.
func discover(ctx context.Context, cs *mcp.ClientSession) (Catalog, error) {
	var cat Catalog
	var err error
	caps := cs.InitializeResult().Capabilities
	if caps.Tools != nil {
		if cat.Tools, err = collect("tools/list", cs.Tools(ctx, nil)); err != nil {
			return Catalog{}, err
		}
	}
	if caps.Prompts != nil {
		if cat.Prompts, err = collect("prompts/list", cs.Prompts(ctx, nil)); err != nil {
			return Catalog{}, err
		}
	}
	if caps.Resources != nil {
		if cat.Resources, err = collect("resources/list", cs.Resources(ctx, nil)); err != nil {
			return Catalog{}, err
		}
		if cat.ResourceTemplates, err = collect("resources/templates/list", cs.ResourceTemplates(ctx, nil)); err != nil {
			return Catalog{}, err
		}
	}
	return cat, nil
}

// collect drains a paginated list. A JSON-RPC error means the backend is up
// but refuses a list it declared, which makes it invalid.
func collect[T any](method string, seq iter.Seq2[*T, error]) ([]*T, error) {
	var out []*T
	for item, err := range seq {
		if err != nil {
			// The go-sdk reports a request that never reached the backend
			// as a JSON-RPC error too, wrapping the HTTP client's error.
			if uerr := (*url.Error)(nil); errors.As(err, &uerr) {
				return nil, fmt.Errorf("%s: %w", method, err)
			}
			if werr := (*jsonrpc.Error)(nil); errors.As(err, &werr) {
				return nil, invalidf("%s: %v", method, err)
			}
			return nil, fmt.Errorf("%s: %w", method, err)
		}
		if len(out) == maxListItems {
			return nil, invalidf("%s: more than %d items", method, maxListItems)
		}
		out = append(out, item)
	}
	return out, nil
}

// streamObserver asks for a re-list each time the standalone SSE stream
// (the GET that carries list_changed notifications) opens or reopens. A
// go-sdk server drops the notifications it sends while that stream is not
// attached, e.g. just after initialize, so the lists may be stale by then.
type streamObserver struct {
	base   http.RoundTripper
	opened func()
}

func (t *streamObserver) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	if err == nil && r.Method == http.MethodGet && resp.StatusCode == http.StatusOK {
		t.opened()
	}
	return resp, err
}

// boundedGET bounds the wait for the response headers of GET requests (the
// standalone SSE stream) and ties the stream to the Upstream's lifetime. The
// go-sdk opens that stream inside Connect on a context detached from ours,
// so a backend that never answers it would otherwise hang Connect, and
// Close with it. POSTs are left alone: a proxied tool call may legitimately
// take longer than any header timeout, and its caller's context bounds it.
type boundedGET struct {
	base    http.RoundTripper
	life    context.Context
	timeout time.Duration
}

func (t *boundedGET) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method != http.MethodGet {
		return t.base.RoundTrip(r)
	}
	ctx, cancel := context.WithCancel(r.Context())
	stopLife := context.AfterFunc(t.life, cancel)
	timer := time.AfterFunc(t.timeout, cancel)
	resp, err := t.base.RoundTrip(r.WithContext(ctx))
	timer.Stop()
	release := func() { stopLife(); cancel() }
	if err != nil {
		release()
		return nil, err
	}
	resp.Body = &releasingBody{ReadCloser: resp.Body, release: release}
	return resp, nil
}

// releasingBody releases the request's context once the body is closed.
type releasingBody struct {
	io.ReadCloser
	release func()
}

func (b *releasingBody) Close() error {
	err := b.ReadCloser.Close()
	b.release()
	return err
}

// initCapture records the initialize result as it arrives, before the
// go-sdk client validates it.
type initCapture struct{ result *mcp.InitializeResult }

type captureKey struct{}

func withCapture(ctx context.Context, c *initCapture) context.Context {
	return context.WithValue(ctx, captureKey{}, c)
}

// captureInitialize is client middleware filling the initCapture found in
// the context of an initialize request.
func captureInitialize(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		res, err := next(ctx, method, req)
		if c, ok := ctx.Value(captureKey{}).(*initCapture); ok {
			if ir, ok := res.(*mcp.InitializeResult); ok {
				c.result = ir
			}
		}
		return res, err
	}
}
