package broker

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgw/mcpgw/broker/upstream"
	"github.com/mcpgw/mcpgw/filter/config"
)

// legacyOnly keeps the test server on the versions the broker serves: the
// go-sdk sends list_changed on the 2026-07-28 protocol only to subscribers.
var legacyOnly = &mcp.ServerOptions{SupportedProtocolVersions: upstream.SupportedProtocolVersions()}

// stubHandlers answer with the backend and name they were made for.
type stubHandlers struct{}

func (stubHandlers) tool(backend, name string) mcp.ToolHandler {
	return func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: backend + "/" + name}}}, nil
	}
}

func (stubHandlers) prompt(string, string) mcp.PromptHandler { return nil }
func (stubHandlers) resource(string) mcp.ResourceHandler     { return nil }

// registryUnderTest is a registry on a fresh server, with a client session
// to that server over in-memory transports.
func registryUnderTest(t *testing.T) (*registry, *mcp.ClientSession, *atomic.Int64) {
	t.Helper()
	srv := mcp.NewServer(&mcp.Implementation{Name: "reg"}, legacyOnly)
	var failures atomic.Int64
	r := newRegistry(srv, slog.New(slog.DiscardHandler), stubHandlers{}, func() { failures.Add(1) })
	st, ct := mcp.NewInMemoryTransports()
	ss, err := srv.Connect(t.Context(), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "c"}, nil).Connect(t.Context(), ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close(); ss.Wait() })
	return r, cs, &failures
}

func tool(name string) *mcp.Tool {
	return &mcp.Tool{Name: name, InputSchema: map[string]any{"type": "object"}}
}

func callText(t *testing.T, cs *mcp.ClientSession, name string) string {
	t.Helper()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: name})
	if err != nil {
		t.Fatalf("call %s: %v", name, err)
	}
	return res.Content[0].(*mcp.TextContent).Text
}

func listed(t *testing.T, cs *mcp.ClientSession) []string {
	t.Helper()
	res, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range res.Tools {
		names = append(names, tl.Name)
	}
	slices.Sort(names)
	return names
}

// prefixed returns servers named by prefix alone: "name=prefix" pairs.
func prefixed(pairs ...string) []config.Server {
	var servers []config.Server
	for _, p := range pairs {
		name, prefix, _ := strings.Cut(p, "=")
		servers = append(servers, config.Server{Name: name, Prefix: prefix})
	}
	return servers
}

// TestRegistryListsWhatRoutes: two backends offer the same gateway name,
// the unprefixed "plain"'s own ev_x and "ev"'s x under its prefix ev_.
// Whichever syncs first, the broker lists the name with the definition of
// the server the router sends it to (config.Names), and only that one; the
// other is shadowed, logged once and counted. The same holds for prompts,
// whose names completions are forwarded by.
func TestRegistryListsWhatRoutes(t *testing.T) {
	servers := prefixed("plain=", "ev=ev_")
	catalogs := map[string]upstream.Catalog{
		"plain": {Tools: []*mcp.Tool{tool("ev_x"), tool("y")}, Prompts: []*mcp.Prompt{{Name: "ev_p"}}},
		"ev":    {Tools: []*mcp.Tool{tool("x")}, Prompts: []*mcp.Prompt{{Name: "p"}}},
	}
	names := config.NewNames(servers)
	for _, order := range [][]string{{"plain", "ev"}, {"ev", "plain"}} {
		t.Run(strings.Join(order, "-then-"), func(t *testing.T) {
			r, cs, failures := registryUnderTest(t)
			var logs bytes.Buffer
			r.log = slog.New(slog.NewTextHandler(&logs, nil))
			r.setNames(servers)
			for _, b := range order {
				r.sync(b, catalogs[b])
			}
			got := listed(t, cs)
			if want := []string{"ev_x", "y"}; !slices.Equal(got, want) {
				t.Errorf("tools = %v, want %v", got, want)
			}
			// What the client is listed is what the router routes to.
			for _, name := range got {
				i, bare, ok := names.Resolve(name)
				if !ok {
					t.Fatalf("%s is listed but routes nowhere", name)
				}
				if call, route := callText(t, cs, name), names.Server(i)+"/"+bare; call != route {
					t.Errorf("%s: listed for %s, routed to %s", name, call, route)
				}
			}
			if backend, orig, ok := r.promptOwner("ev_p"); !ok || backend != "ev" || orig != "p" {
				t.Errorf("prompt ev_p is %s's %q (%v), want ev's p", backend, orig, ok)
			}
			if tools, prompts := r.shadowedCounts(); tools != 1 || prompts != 1 || failures.Load() != 0 {
				t.Errorf("shadowed = %d tools, %d prompts, failures = %d; want 1, 1, 0", tools, prompts, failures.Load())
			}
			if n := strings.Count(logs.String(), "routes elsewhere"); n != 2 || !strings.Contains(logs.String(), "name=ev_x server=plain routedTo=ev routedToName=x") {
				t.Errorf("want one warning per shadowed name, naming both servers, got:\n%s", logs.String())
			}
			// Syncing again logs nothing new.
			r.sync("plain", catalogs["plain"])
			if n := strings.Count(logs.String(), "routes elsewhere"); n != 2 {
				t.Errorf("a repeated sync logged the shadowed name again:\n%s", logs.String())
			}
			// ev going away leaves its name unlisted while the config still
			// routes it there; a config without ev gives it to plain.
			r.drop("ev")
			if got := listed(t, cs); !slices.Equal(got, []string{"y"}) {
				t.Errorf("without ev's catalog: tools = %v, want [y]", got)
			}
			r.setNames(servers[:1])
			if got := callText(t, cs, "ev_x"); got != "plain/ev_x" {
				t.Errorf("without ev in the config: ev_x -> %s, want plain/ev_x", got)
			}
			if tools, prompts := r.shadowedCounts(); tools+prompts != 0 {
				t.Errorf("shadowed = %d tools, %d prompts; want none", tools, prompts)
			}
		})
	}
}

func TestRegistrySkipsInvalidDefinitions(t *testing.T) {
	r, cs, failures := registryUnderTest(t)
	r.setNames(prefixed("b=p_"))
	r.sync("b", upstream.Catalog{
		Tools: []*mcp.Tool{
			tool("ok"),
			{Name: "no_schema"},
			{Name: "string_schema", InputSchema: map[string]any{"type": "string"}},
		},
		ResourceTemplates: []*mcp.ResourceTemplate{{Name: "bad", URITemplate: "{oops"}},
	})
	if got := listed(t, cs); !slices.Equal(got, []string{"p_ok"}) {
		t.Errorf("tools = %v, want [p_ok]", got)
	}
	if failures.Load() != 3 {
		t.Errorf("failures = %d, want 3", failures.Load())
	}
}

// TestRegistryOnlyReaddsChanges checks that re-syncing an equal catalog does
// not make the go-sdk notify clients, while a changed definition does. It
// runs in a synctest bubble: the go-sdk debounces notifications with a
// timer, and the in-memory transports are net.Pipes, so no real time passes.
func TestRegistryOnlyReaddsChanges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := mcp.NewServer(&mcp.Implementation{Name: "reg"}, legacyOnly)
		r := newRegistry(srv, slog.New(slog.DiscardHandler), stubHandlers{}, func() {})
		var notified atomic.Int64
		st, ct := mcp.NewInMemoryTransports()
		ss, err := srv.Connect(t.Context(), st, nil)
		if err != nil {
			t.Fatal(err)
		}
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "c"}, &mcp.ClientOptions{
			ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) { notified.Add(1) },
		}).Connect(t.Context(), ct, nil)
		if err != nil {
			t.Fatal(err)
		}
		settle := func() { time.Sleep(time.Second); synctest.Wait() }

		r.setNames(prefixed("b=p_"))
		r.sync("b", upstream.Catalog{Tools: []*mcp.Tool{tool("x"), tool("y")}})
		settle()
		if n := notified.Load(); n != 1 {
			t.Errorf("after the first sync: %d notifications, want 1 (debounced)", n)
		}
		r.sync("b", upstream.Catalog{Tools: []*mcp.Tool{tool("x"), tool("y")}}) // equal, not identical
		settle()
		if n := notified.Load(); n != 1 {
			t.Errorf("after an equal sync: %d notifications, want still 1", n)
		}
		changed := tool("x")
		changed.Description = "now documented"
		r.sync("b", upstream.Catalog{Tools: []*mcp.Tool{changed, tool("y")}})
		settle()
		if n := notified.Load(); n != 2 {
			t.Errorf("after a change: %d notifications, want 2", n)
		}
		res, err := cs.ListTools(t.Context(), nil)
		if err != nil || res.Tools[0].Description != "now documented" {
			t.Errorf("tools = %v, %v", res, err)
		}
		cs.Close()
		ss.Wait()
	})
}

// viewUnderTest is a virtual server's mcp.Server with a client session.
func viewUnderTest(t *testing.T) (*mcp.Server, *mcp.ClientSession) {
	t.Helper()
	srv := mcp.NewServer(&mcp.Implementation{Name: "view"}, legacyOnly)
	st, ct := mcp.NewInMemoryTransports()
	ss, err := srv.Connect(t.Context(), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "c"}, nil).Connect(t.Context(), ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close(); ss.Wait() })
	return srv, cs
}

// TestRegistryViews: a view offers the exposed tools its list names, with
// their current definitions and owners, whatever order things happen in.
func TestRegistryViews(t *testing.T) {
	r, _, _ := registryUnderTest(t)
	vsrv, vc := viewUnderTest(t)
	r.setNames(prefixed("a=a_", "b=b_", "c=c_"))
	r.sync("a", upstream.Catalog{Tools: []*mcp.Tool{tool("x"), tool("y")}})
	r.setView("v", vsrv, []string{"a_x", "b_z"}) // b_z: not exposed yet
	if got := listed(t, vc); !slices.Equal(got, []string{"a_x"}) {
		t.Errorf("view = %v, want [a_x]", got)
	}
	if got := callText(t, vc, "a_x"); got != "a/x" {
		t.Errorf("a_x through the view -> %s", got)
	}
	r.sync("b", upstream.Catalog{Tools: []*mcp.Tool{tool("z")}})
	if got := listed(t, vc); !slices.Equal(got, []string{"a_x", "b_z"}) {
		t.Errorf("after b: view = %v", got)
	}
	// A changed definition reaches the view.
	changed := tool("x")
	changed.Description = "v2"
	r.sync("a", upstream.Catalog{Tools: []*mcp.Tool{changed, tool("y")}})
	res, err := vc.ListTools(t.Context(), nil)
	if err != nil || len(res.Tools) != 2 || res.Tools[0].Description != "v2" {
		t.Errorf("after the change: %v, %v", res, err)
	}
	// Another backend with the same tool does not take the view's tool.
	r.sync("c", upstream.Catalog{Tools: []*mcp.Tool{tool("x")}})
	if got := callText(t, vc, "a_x"); got != "a/x" {
		t.Errorf("a_x after c synced -> %s", got)
	}
	// The config gives a_ to c: the name moves, in the view too.
	r.setNames(prefixed("a=old_", "b=b_", "c=a_"))
	if got := callText(t, vc, "a_x"); got != "c/x" {
		t.Errorf("a_x after the prefix moved -> %s, want c/x", got)
	}
	// The list changes.
	r.setView("v", vsrv, []string{"b_z"})
	if got := listed(t, vc); !slices.Equal(got, []string{"b_z"}) {
		t.Errorf("new list: view = %v", got)
	}
	if r.viewTools("v") != 1 {
		t.Errorf("viewTools = %d", r.viewTools("v"))
	}
	r.dropView("v")
	r.drop("b")
	if got := listed(t, vc); !slices.Equal(got, []string{"b_z"}) {
		t.Errorf("a dropped view changed: %v", got) // its server is the broker's to close
	}
}

// TestRegistryAliases: an alias lists its target's definition under the
// alias and calls the target; it takes its name from the unprefixed
// server (as the router matches it first), follows a new target, and goes
// with its target or its config.
func TestRegistryAliases(t *testing.T) {
	r, cs, failures := registryUnderTest(t)
	vsrv, vc := viewUnderTest(t)
	r.setView("v", vsrv, []string{"x"})
	servers := []config.Server{
		{Name: "a", Prefix: "a_", Aliases: map[string]string{"x": "x", "z": "y", "ghost": "nope"}},
		{Name: "b", Prefix: ""},
	}
	r.setNames(servers)
	r.sync("b", upstream.Catalog{Tools: []*mcp.Tool{tool("z")}})
	r.sync("a", upstream.Catalog{Tools: []*mcp.Tool{tool("x"), tool("y")}})
	if got, want := listed(t, cs), []string{"a_x", "a_y", "x", "z"}; !slices.Equal(got, want) {
		t.Errorf("tools = %v, want %v", got, want)
	}
	for name, want := range map[string]string{"x": "a/x", "z": "a/y", "a_y": "a/y"} {
		if got := callText(t, cs, name); got != want {
			t.Errorf("%s -> %s, want %s", name, got, want)
		}
	}
	if got := callText(t, vc, "x"); got != "a/x" {
		t.Errorf("x through a view -> %s", got)
	}
	if n, _ := r.shadowedCounts(); n != 1 {
		t.Errorf("shadowed = %d, want 1 (b's z)", n)
	}
	// A new target with an identical definition still changes the handler.
	servers[0].Aliases = map[string]string{"x": "y"}
	r.setNames(servers)
	if got := callText(t, cs, "x"); got != "a/y" {
		t.Errorf("retargeted x -> %s, want a/y", got)
	}
	if got := callText(t, cs, "z"); got != "b/z" {
		t.Errorf("z after its alias went -> %s, want b/z", got)
	}
	// The target goes: so does the alias, from the view too.
	r.sync("a", upstream.Catalog{Tools: []*mcp.Tool{tool("x")}})
	if got, want := listed(t, cs), []string{"a_x", "z"}; !slices.Equal(got, want) {
		t.Errorf("tools without the target = %v, want %v", got, want)
	}
	if got := listed(t, vc); len(got) != 0 {
		t.Errorf("view without the target = %v", got)
	}
	if failures.Load() != 0 {
		t.Errorf("failures = %d, want 0", failures.Load())
	}
}
