package broker

import (
	"context"
	"errors"
	neturl "net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgw/mcpgw/broker/upstream"
	"github.com/mcpgw/mcpgw/filter/config"
	"github.com/mcpgw/mcpgw/tests/mcptest"
)

const (
	docURI      = "docs://readme"
	docTemplate = "docs://files/{name}"
)

// docsBackend is a go-sdk server with a prompt, a resource and a resource
// template, completions, and subscriptions it counts.
type docsBackend struct {
	srv *mcp.Server

	mu     sync.Mutex
	subs   map[string]int // current subscriptions by URI (0 when none)
	total  int            // subscribe requests received
	argsOf []string       // "ref:argument=value" of each completion request
}

func newDocsBackend() *docsBackend {
	d := &docsBackend{subs: map[string]int{}}
	d.srv = mcp.NewServer(&mcp.Implementation{Name: "docs", Version: "v0"}, &mcp.ServerOptions{
		CompletionHandler: func(_ context.Context, req *mcp.CompleteRequest) (*mcp.CompleteResult, error) {
			p := req.Params
			key := p.Ref.Name + p.Ref.URI
			d.mu.Lock()
			d.argsOf = append(d.argsOf, key+":"+p.Argument.Name+"="+p.Argument.Value)
			d.mu.Unlock()
			var values []string
			switch key {
			case "summarize":
				values = []string{p.Argument.Value + "-short", p.Argument.Value + "-long"}
			case docTemplate:
				values = []string{p.Argument.Value + ".md"}
			default:
				return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "unknown ref " + key}
			}
			return &mcp.CompleteResult{Completion: mcp.CompletionResultDetails{Values: values, Total: len(values)}}, nil
		},
		SubscribeHandler: func(_ context.Context, req *mcp.SubscribeRequest) error {
			d.mu.Lock()
			defer d.mu.Unlock()
			d.subs[req.Params.URI] = 1 // a session's subscription does not stack
			d.total++
			return nil
		},
		UnsubscribeHandler: func(_ context.Context, req *mcp.UnsubscribeRequest) error {
			d.mu.Lock()
			defer d.mu.Unlock()
			d.subs[req.Params.URI] = 0
			return nil
		},
	})
	d.srv.AddPrompt(&mcp.Prompt{Name: "summarize", Arguments: []*mcp.PromptArgument{{Name: "style"}}},
		func(context.Context, *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
			return &mcp.GetPromptResult{}, nil
		})
	read := func(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: req.Params.URI, Text: "doc"}}}, nil
	}
	d.srv.AddResource(&mcp.Resource{URI: docURI, Name: "readme"}, read)
	d.srv.AddResourceTemplate(&mcp.ResourceTemplate{URITemplate: docTemplate, Name: "files"}, read)
	return d
}

// subscribed reports whether the broker's session is subscribed to uri.
func (d *docsBackend) subscribed(uri string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.subs[uri] > 0
}

func (d *docsBackend) subscribes() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.total
}

// docsHarness serves a docsBackend behind a broker with the prefix "docs_"
// and the alias "summary" of its prompt "summarize".
func docsHarness(t *testing.T) (*harness, *docsBackend) {
	t.Helper()
	d := newDocsBackend()
	h := newHarness(t, testConfig(t, config.Server{Name: "docs", URL: serveBackend(t, d.srv), Prefix: "docs_",
		Aliases: map[string]string{"summary": "summarize"}}))
	h.waitState(t, "docs", upstream.StateReady)
	return h, d
}

// updates is a client that records the resources/updated it receives.
type updates struct {
	*client
	got chan string
}

func connectUpdates(t *testing.T, url string) *updates {
	t.Helper()
	got := make(chan string, 100)
	c := connect(t, url, &mcp.ClientOptions{
		ResourceUpdatedHandler: func(_ context.Context, req *mcp.ResourceUpdatedNotificationRequest) {
			got <- req.Params.URI
		},
	})
	select {
	case <-c.streamUp:
	case <-time.After(10 * time.Second):
		t.Fatal("standalone SSE stream not opened")
	}
	return &updates{c, got}
}

// drain forgets the notifications received so far.
func (u *updates) drain() {
	for {
		select {
		case <-u.got:
		default:
			return
		}
	}
}

// settle drains u until no update has arrived for 150ms.
func (u *updates) settle() {
	for {
		select {
		case <-u.got:
		case <-time.After(150 * time.Millisecond):
			return
		}
	}
}

// waitUpdate makes the backend notify uri until u receives it: the
// broker's own stream from the backend may open after its subscription.
func (u *updates) waitUpdate(t *testing.T, d *docsBackend, uri string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		d.srv.ResourceUpdated(t.Context(), &mcp.ResourceUpdatedNotificationParams{URI: uri})
		select {
		case got := <-u.got:
			if got != uri {
				t.Fatalf("resources/updated for %q, want %q", got, uri)
			}
			return
		case <-tick.C:
		case <-deadline:
			t.Fatalf("no resources/updated for %q", uri)
		}
	}
}

// noUpdate checks that u receives nothing for a while.
func (u *updates) noUpdate(t *testing.T) {
	t.Helper()
	select {
	case got := <-u.got:
		t.Fatalf("unexpected resources/updated for %q", got)
	case <-time.After(200 * time.Millisecond):
	}
}

func TestCapabilitiesDeclareCompletionsAndSubscribe(t *testing.T) {
	h, _ := docsHarness(t)
	caps := connect(t, h.url, nil).InitializeResult().Capabilities
	if caps.Completions == nil || caps.Resources == nil || !caps.Resources.Subscribe || !caps.Resources.ListChanged {
		t.Errorf("capabilities = %+v", caps)
	}
}

// TestCompletionForPrompt: a prompt is completed by its prefixed name and
// by its alias, the backend seeing its own name each time.
func TestCompletionForPrompt(t *testing.T) {
	h, d := docsHarness(t)
	c := connect(t, h.url, nil)
	for _, name := range []string{"docs_summarize", "summary"} {
		res, err := c.Complete(t.Context(), &mcp.CompleteParams{
			Ref:      &mcp.CompleteReference{Type: "ref/prompt", Name: name},
			Argument: mcp.CompleteParamsArgument{Name: "style", Value: "br"},
		})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if want := []string{"br-short", "br-long"}; !slices.Equal(res.Completion.Values, want) || res.Completion.Total != 2 {
			t.Errorf("%s: completion = %+v, want values %v", name, res.Completion, want)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if want := []string{"summarize:style=br", "summarize:style=br"}; !slices.Equal(d.argsOf, want) {
		t.Errorf("backend got %v, want %v", d.argsOf, want)
	}
}

func TestCompletionForResourceTemplate(t *testing.T) {
	h, _ := docsHarness(t)
	c := connect(t, h.url, nil)
	res, err := c.Complete(t.Context(), &mcp.CompleteParams{
		Ref:      &mcp.CompleteReference{Type: "ref/resource", URI: docTemplate},
		Argument: mcp.CompleteParamsArgument{Name: "name", Value: "intro"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"intro.md"}; !slices.Equal(res.Completion.Values, want) {
		t.Errorf("values = %v, want %v", res.Completion.Values, want)
	}
}

func TestCompletionErrors(t *testing.T) {
	h, _ := docsHarness(t)
	c := connect(t, h.url, nil)
	for _, ref := range []*mcp.CompleteReference{
		{Type: "ref/prompt", Name: "summarize"}, // unprefixed: not exposed
		{Type: "ref/prompt", Name: "docs_nope"},
		{Type: "ref/resource", URI: "other://{x}"},
	} {
		_, err := c.Complete(t.Context(), &mcp.CompleteParams{Ref: ref, Argument: mcp.CompleteParamsArgument{Name: "a"}})
		var werr *jsonrpc.Error
		if !errors.As(err, &werr) || werr.Code != jsonrpc.CodeInvalidParams {
			t.Errorf("Complete(%+v) = %v, want code %d", ref, err, jsonrpc.CodeInvalidParams)
		}
	}
	// A backend's own error keeps its code.
	_, err := c.Complete(t.Context(), &mcp.CompleteParams{
		Ref:      &mcp.CompleteReference{Type: "ref/resource", URI: "docs://files/x"}, // a URI, not the template
		Argument: mcp.CompleteParamsArgument{Name: "name"},
	})
	var werr *jsonrpc.Error
	if !errors.As(err, &werr) || werr.Code != jsonrpc.CodeInvalidParams || !strings.Contains(err.Error(), "unknown ref") {
		t.Errorf("backend error = %v", err)
	}
}

func TestCompletionBackendWithoutCompletions(t *testing.T) {
	h := twoBackends(t) // the echo server's prompt "greet" has no completions
	c := connect(t, h.url, nil)
	res, err := c.Complete(t.Context(), &mcp.CompleteParams{
		Ref:      &mcp.CompleteReference{Type: "ref/prompt", Name: "echo_greet"},
		Argument: mcp.CompleteParamsArgument{Name: "who", Value: "a"},
	})
	if err != nil || len(res.Completion.Values) != 0 {
		t.Errorf("Complete = %+v, %v; want no values", res, err)
	}
}

func TestSubscribeRelaysUpdates(t *testing.T) {
	h, d := docsHarness(t)
	c := connectUpdates(t, h.url)
	if err := c.Subscribe(t.Context(), &mcp.SubscribeParams{URI: docURI}); err != nil {
		t.Fatal(err)
	}
	if !d.subscribed(docURI) {
		t.Fatal("backend not subscribed")
	}
	c.waitUpdate(t, d, docURI)

	// A URI that one of the backend's templates matches.
	file := "docs://files/a.md"
	if err := c.Subscribe(t.Context(), &mcp.SubscribeParams{URI: file}); err != nil {
		t.Fatal(err)
	}
	if !d.subscribed(file) {
		t.Fatal("backend not subscribed to the templated URI")
	}
	c.drain()
	c.waitUpdate(t, d, file)
}

func TestSubscribeUnknownResource(t *testing.T) {
	h, d := docsHarness(t)
	c := connect(t, h.url, nil)
	err := c.Subscribe(t.Context(), &mcp.SubscribeParams{URI: "nowhere://x"})
	var werr *jsonrpc.Error
	if !errors.As(err, &werr) || werr.Code != mcp.CodeResourceNotFound {
		t.Errorf("Subscribe = %v, want code %d", err, mcp.CodeResourceNotFound)
	}
	if d.subscribes() != 0 {
		t.Errorf("backend got %d subscriptions", d.subscribes())
	}
	// Unsubscribing from what one is not subscribed to is harmless.
	if err := c.Unsubscribe(t.Context(), &mcp.UnsubscribeParams{URI: docURI}); err != nil {
		t.Errorf("Unsubscribe = %v", err)
	}
}

func TestSubscriptionSharedAcrossClients(t *testing.T) {
	h, d := docsHarness(t)
	c1, c2 := connectUpdates(t, h.url), connectUpdates(t, h.url)
	for _, c := range []*updates{c1, c2} {
		if err := c.Subscribe(t.Context(), &mcp.SubscribeParams{URI: docURI}); err != nil {
			t.Fatal(err)
		}
	}
	if n := d.subscribes(); n != 1 {
		t.Errorf("backend got %d subscribe requests, want 1", n)
	}
	c1.waitUpdate(t, d, docURI)
	c2.waitUpdate(t, d, docURI)

	// c1 leaves: c2 still gets the updates, c1 no more.
	if err := c1.Unsubscribe(t.Context(), &mcp.UnsubscribeParams{URI: docURI}); err != nil {
		t.Fatal(err)
	}
	if !d.subscribed(docURI) {
		t.Fatal("backend unsubscribed while c2 is subscribed")
	}
	// Updates sent before the unsubscribe (waitUpdate repeats them) may
	// still be on their way to c1: let them land before checking.
	c1.settle()
	c2.drain()
	c2.waitUpdate(t, d, docURI)
	c1.noUpdate(t)

	// The last one leaves: the backend subscription goes.
	if err := c2.Unsubscribe(t.Context(), &mcp.UnsubscribeParams{URI: docURI}); err != nil {
		t.Fatal(err)
	}
	if d.subscribed(docURI) {
		t.Error("backend still subscribed after the last client unsubscribed")
	}
	h.b.subMu.Lock()
	n := len(h.b.subs)
	h.b.subMu.Unlock()
	if n != 0 {
		t.Errorf("broker still tracks %d subscriptions", n)
	}
}

func TestSubscriptionDroppedWhenSessionEnds(t *testing.T) {
	h, d := docsHarness(t)
	c1, c2 := connectUpdates(t, h.url), connectUpdates(t, h.url)
	for _, c := range []*updates{c1, c2} {
		if err := c.Subscribe(t.Context(), &mcp.SubscribeParams{URI: docURI}); err != nil {
			t.Fatal(err)
		}
	}
	watched := func() int {
		h.b.subMu.Lock()
		defer h.b.subMu.Unlock()
		return len(h.b.watched)
	}
	c1.Close()
	// The broker forgets c1's session and drops its subscriptions in one
	// critical section: once it is forgotten, c1's leave is processed.
	eventually(t, "c1's session end processed", func() bool { return watched() == 1 })
	if !d.subscribed(docURI) {
		t.Fatal("backend unsubscribed while c2 is subscribed")
	}
	c2.Close()
	eventually(t, "backend unsubscribed", func() bool { return !d.subscribed(docURI) })
}

func TestSubscriptionSurvivesBackendRestart(t *testing.T) {
	d := newDocsBackend()
	url, stop, err := mcptest.Serve(t.Context(), "127.0.0.1:0", d.srv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	h := newHarness(t, testConfig(t, config.Server{Name: "docs", URL: url, Prefix: "docs_"}))
	h.waitState(t, "docs", upstream.StateReady)
	c := connectUpdates(t, h.url)
	if err := c.Subscribe(t.Context(), &mcp.SubscribeParams{URI: docURI}); err != nil {
		t.Fatal(err)
	}

	// A new backend process on the same address: the broker's new session
	// subscribes again, and the client is told the resource may have
	// changed.
	stop()
	h.waitState(t, "docs", upstream.StateUnreachable)
	d2 := newDocsBackend()
	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	_, stop2, err := mcptest.Serve(t.Context(), u.Host, d2.srv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop2)
	eventually(t, "re-subscription", func() bool { return d2.subscribed(docURI) })
	c.drain()
	c.waitUpdate(t, d2, docURI)
}

// A backend's prompts/list_changed and resources/list_changed reach the
// clients: the upstream re-lists and the broker's registry changes notify.
func TestPromptAndResourceListChangedReachClients(t *testing.T) {
	h, d := docsHarness(t)
	prompts, resources := make(chan struct{}, 10), make(chan struct{}, 10)
	c := connect(t, h.url, &mcp.ClientOptions{
		PromptListChangedHandler:   func(context.Context, *mcp.PromptListChangedRequest) { prompts <- struct{}{} },
		ResourceListChangedHandler: func(context.Context, *mcp.ResourceListChangedRequest) { resources <- struct{}{} },
	})
	<-c.streamUp

	d.srv.AddPrompt(&mcp.Prompt{Name: "extra"}, func(context.Context, *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		return &mcp.GetPromptResult{}, nil
	})
	waitSignal(t, "prompts/list_changed", prompts)
	eventually(t, "docs_extra listed", func() bool {
		res, err := c.ListPrompts(t.Context(), nil)
		return err == nil && slices.ContainsFunc(res.Prompts, func(p *mcp.Prompt) bool { return p.Name == "docs_extra" })
	})

	d.srv.AddResource(&mcp.Resource{URI: "docs://extra", Name: "extra"},
		func(context.Context, *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			return &mcp.ReadResourceResult{}, nil
		})
	waitSignal(t, "resources/list_changed", resources)
	eventually(t, "docs://extra listed", func() bool {
		res, err := c.ListResources(t.Context(), nil)
		return err == nil && slices.ContainsFunc(res.Resources, func(r *mcp.Resource) bool { return r.URI == "docs://extra" })
	})
}

func waitSignal(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("no " + what)
	}
}

// A connection replaced by a config change (a new URL) subscribes the new
// backend to what the old one was subscribed to.
func TestSubscriptionCarriedToReplacedConnection(t *testing.T) {
	h, d := docsHarness(t)
	c := connectUpdates(t, h.url)
	if err := c.Subscribe(t.Context(), &mcp.SubscribeParams{URI: docURI}); err != nil {
		t.Fatal(err)
	}
	if !d.subscribed(docURI) {
		t.Fatal("backend not subscribed")
	}
	d2 := newDocsBackend()
	if err := h.b.Apply(testConfig(t, config.Server{Name: "docs", URL: serveBackend(t, d2.srv), Prefix: "docs_"})); err != nil {
		t.Fatal(err)
	}
	eventually(t, "new backend subscribed", func() bool { return d2.subscribed(docURI) })
	c.drain()
	c.waitUpdate(t, d2, docURI)
	if err := c.Unsubscribe(t.Context(), &mcp.UnsubscribeParams{URI: docURI}); err != nil {
		t.Fatal(err)
	}
	if d2.subscribed(docURI) {
		t.Error("new backend still subscribed after the client unsubscribed")
	}
}
