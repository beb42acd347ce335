package broker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Completions and resource subscriptions of the aggregated server.
//
// completion/complete is forwarded to the backend owning the referenced
// prompt (ref/prompt, by its prefixed name) or resource template
// (ref/resource, by its URI template, or a resource's URI).
//
// resources/subscribe is forwarded to the backend owning the URI, once per
// URI however many client sessions subscribe: the broker counts the client
// sessions subscribed to each URI and unsubscribes from the backend when
// the last one unsubscribes or ends. The backend's
// notifications/resources/updated are relayed to the subscribed sessions
// (the go-sdk server knows which). The upstream re-subscribes a new backend
// session, e.g. after a backend restart, and the broker carries the
// subscriptions over to a connection that replaces another one (a new URL or
// credential in the config).

// subscription is one resource URI some client sessions subscribed to.
type subscription struct {
	backend  string                          // the owner the backend subscription was made with
	sessions map[*mcp.ServerSession]struct{} // the subscribed client sessions
}

// backendTimeout bounds the backend requests the broker makes on its own
// (unsubscribing for a session that ended).
func (b *Broker) backendTimeout() time.Duration {
	if d := b.opts.Upstream.RequestTimeout; d > 0 {
		return d
	}
	return 10 * time.Second
}

func invalidParams(format string, args ...any) error {
	return &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf(format, args...)}
}

// complete forwards completion/complete to the owner of its ref.
func (b *Broker) complete(ctx context.Context, req *mcp.CompleteRequest) (*mcp.CompleteResult, error) {
	params := *req.Params // the go-sdk checked that Ref is set
	ref := *params.Ref
	var backend string
	var ok bool
	b.mu.Lock()
	switch ref.Type {
	case "ref/prompt":
		backend, ref.Name, ok = b.reg.promptOwner(ref.Name)
		if !ok {
			b.mu.Unlock()
			return nil, invalidParams("unknown prompt %q", params.Ref.Name)
		}
	case "ref/resource":
		backend, ok = b.reg.resourceOwner(ref.URI)
		if !ok {
			b.mu.Unlock()
			return nil, invalidParams("unknown resource template %q", ref.URI)
		}
	default: // the go-sdk rejects other types when decoding
		b.mu.Unlock()
		return nil, invalidParams("unsupported reference type %q", ref.Type)
	}
	b.mu.Unlock()
	p := proxy{b}
	cs, err := p.session(backend)
	if err != nil {
		return nil, p.done(proxiedCompletion, backend, err)
	}
	if caps := cs.InitializeResult().Capabilities; caps == nil || caps.Completions == nil {
		// A client must not ask a server that did not declare completions;
		// there is simply nothing to suggest.
		return &mcp.CompleteResult{Completion: mcp.CompletionResultDetails{Values: []string{}}}, nil
	}
	params.Ref = &ref
	params.Meta = sessionMeta(params.Meta)
	res, err := cs.Complete(ctx, &params)
	return res, p.done(proxiedCompletion, backend, err)
}

// subscribe adds the session to the URI's subscribers, subscribing to the
// owning backend for the first one. On success the go-sdk server records
// the session's subscription, which directs resourceUpdated's relays.
func (b *Broker) subscribe(ctx context.Context, req *mcp.SubscribeRequest) error {
	uri, ss := req.Params.URI, req.Session
	b.subMu.Lock()
	defer b.subMu.Unlock()
	old := b.subs[uri]
	if old != nil && b.upstream(old.backend) != nil {
		old.sessions[ss] = struct{}{}
		b.watchLocked(ss)
		return nil
	}
	// No subscription, or one whose backend was removed from the config
	// since: subscribe to the current owner, for all its sessions.
	b.mu.Lock()
	backend, ok := b.reg.resourceOwner(uri)
	b.mu.Unlock()
	if !ok {
		return mcp.ResourceNotFoundError(uri)
	}
	p := proxy{b}
	up := b.upstream(backend)
	if up == nil { // removed meanwhile
		return p.done(proxiedSubscription, backend, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "not configured"})
	}
	if err := up.Subscribe(ctx, uri); err != nil {
		if werr := (*jsonrpc.Error)(nil); !errors.As(err, &werr) {
			err = &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: err.Error()}
		}
		return p.done(proxiedSubscription, backend, err)
	}
	p.done(proxiedSubscription, backend, nil)
	sub := &subscription{backend: backend, sessions: map[*mcp.ServerSession]struct{}{ss: {}}}
	if old != nil {
		maps.Copy(sub.sessions, old.sessions)
	}
	b.subs[uri] = sub
	b.watchLocked(ss)
	return nil
}

// unsubscribe removes the session from the URI's subscribers. It succeeds
// for a URI the session is not subscribed to.
func (b *Broker) unsubscribe(ctx context.Context, req *mcp.UnsubscribeRequest) error {
	b.subMu.Lock()
	defer b.subMu.Unlock()
	b.leaveLocked(ctx, req.Params.URI, req.Session)
	return nil
}

// leaveLocked removes ss from uri's subscribers and unsubscribes from the
// backend when it was the last one. A backend's failure is only logged: the
// client's subscription is gone either way.
func (b *Broker) leaveLocked(ctx context.Context, uri string, ss *mcp.ServerSession) {
	s := b.subs[uri]
	if s == nil {
		return
	}
	if _, ok := s.sessions[ss]; !ok {
		return
	}
	delete(s.sessions, ss)
	if len(s.sessions) > 0 {
		return
	}
	delete(b.subs, uri)
	up := b.upstream(s.backend)
	if up == nil {
		return
	}
	err := up.Unsubscribe(ctx, uri)
	proxy{b}.done(proxiedSubscription, s.backend, err)
	if err != nil {
		b.log.Warn("unsubscribing from a resource failed", "server", s.backend, "uri", uri, "error", err)
	}
}

// watchLocked makes sure the subscriptions of ss are dropped when it ends.
func (b *Broker) watchLocked(ss *mcp.ServerSession) {
	if _, ok := b.watched[ss]; ok {
		return
	}
	b.watched[ss] = struct{}{}
	b.watchers.Go(func() {
		ss.Wait()
		b.subMu.Lock()
		defer b.subMu.Unlock()
		delete(b.watched, ss)
		ctx, cancel := context.WithTimeout(context.Background(), b.backendTimeout())
		defer cancel()
		for uri, s := range b.subs {
			if _, ok := s.sessions[ss]; ok {
				b.leaveLocked(ctx, uri, ss)
			}
		}
	})
}

// resourceUpdated relays a backend's notifications/resources/updated to the
// client sessions subscribed to the URI. It runs on the upstream session's
// reader, so it takes no lock the subscribe path holds across a backend
// request.
func (b *Broker) resourceUpdated(uri string) {
	b.server.ResourceUpdated(context.Background(), &mcp.ResourceUpdatedNotificationParams{URI: uri})
}
