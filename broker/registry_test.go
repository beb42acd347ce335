package broker

import (
	"context"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgw/mcpgw/broker/upstream"
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

func TestRegistryConflictFirstOwnerWins(t *testing.T) {
	r, cs, failures := registryUnderTest(t)
	// "a_" + "b_x" and "a_b_" + "x" both expose "a_b_x".
	r.sync("one", naming{prefix: "a_"}, upstream.Catalog{Tools: []*mcp.Tool{tool("b_x"), tool("y")}})
	r.sync("two", naming{prefix: "a_b_"}, upstream.Catalog{Tools: []*mcp.Tool{tool("x")}})
	if got := callText(t, cs, "a_b_x"); got != "one/b_x" {
		t.Errorf("a_b_x -> %s, want one/b_x", got)
	}
	if failures.Load() != 1 {
		t.Errorf("failures = %d, want 1", failures.Load())
	}
	// When the owner lets go, the other backend gets the name.
	r.drop("one")
	if got := callText(t, cs, "a_b_x"); got != "two/x" {
		t.Errorf("after drop: a_b_x -> %s, want two/x", got)
	}
	if got := listed(t, cs); !slices.Equal(got, []string{"a_b_x"}) {
		t.Errorf("tools = %v", got)
	}
}

func TestRegistrySkipsInvalidDefinitions(t *testing.T) {
	r, cs, failures := registryUnderTest(t)
	r.sync("b", naming{prefix: "p_"}, upstream.Catalog{
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

		r.sync("b", naming{prefix: "p_"}, upstream.Catalog{Tools: []*mcp.Tool{tool("x"), tool("y")}})
		settle()
		if n := notified.Load(); n != 1 {
			t.Errorf("after the first sync: %d notifications, want 1 (debounced)", n)
		}
		r.sync("b", naming{prefix: "p_"}, upstream.Catalog{Tools: []*mcp.Tool{tool("x"), tool("y")}}) // equal, not identical
		settle()
		if n := notified.Load(); n != 1 {
			t.Errorf("after an equal sync: %d notifications, want still 1", n)
		}
		changed := tool("x")
		changed.Description = "now documented"
		r.sync("b", naming{prefix: "p_"}, upstream.Catalog{Tools: []*mcp.Tool{changed, tool("y")}})
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
	r.sync("a", naming{prefix: "a_"}, upstream.Catalog{Tools: []*mcp.Tool{tool("x"), tool("y")}})
	r.setView("v", vsrv, []string{"a_x", "b_z"}) // b_z: not exposed yet
	if got := listed(t, vc); !slices.Equal(got, []string{"a_x"}) {
		t.Errorf("view = %v, want [a_x]", got)
	}
	if got := callText(t, vc, "a_x"); got != "a/x" {
		t.Errorf("a_x through the view -> %s", got)
	}
	r.sync("b", naming{prefix: "b_"}, upstream.Catalog{Tools: []*mcp.Tool{tool("z")}})
	if got := listed(t, vc); !slices.Equal(got, []string{"a_x", "b_z"}) {
		t.Errorf("after b: view = %v", got)
	}
	// A changed definition reaches the view.
	changed := tool("x")
	changed.Description = "v2"
	r.sync("a", naming{prefix: "a_"}, upstream.Catalog{Tools: []*mcp.Tool{changed, tool("y")}})
	res, err := vc.ListTools(t.Context(), nil)
	if err != nil || len(res.Tools) != 2 || res.Tools[0].Description != "v2" {
		t.Errorf("after the change: %v, %v", res, err)
	}
	// A conflicting backend does not take the view's tool.
	r.sync("c", naming{prefix: "a_"}, upstream.Catalog{Tools: []*mcp.Tool{tool("x")}})
	if got := callText(t, vc, "a_x"); got != "a/x" {
		t.Errorf("a_x after a conflict -> %s", got)
	}
	// Its owner goes: the other backend takes the name, in the view too.
	r.drop("a")
	if got := callText(t, vc, "a_x"); got != "c/x" {
		t.Errorf("a_x after the owner left -> %s, want c/x", got)
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
// alias and calls the target; it takes its name from any prefixed name (as
// the router matches it first), follows a new target, and goes with its
// target or its config.
func TestRegistryAliases(t *testing.T) {
	r, cs, failures := registryUnderTest(t)
	vsrv, vc := viewUnderTest(t)
	r.setView("v", vsrv, []string{"x"})
	a := naming{prefix: "a_", aliases: map[string]string{"x": "x", "b_z": "y", "ghost": "nope"}}
	b := naming{prefix: "b_"}
	r.setShadow(map[string]bool{"x": true, "b_z": true, "ghost": true})
	r.sync("b", b, upstream.Catalog{Tools: []*mcp.Tool{tool("z")}})
	r.sync("a", a, upstream.Catalog{Tools: []*mcp.Tool{tool("x"), tool("y")}})
	if got, want := listed(t, cs), []string{"a_x", "a_y", "b_z", "x"}; !slices.Equal(got, want) {
		t.Errorf("tools = %v, want %v", got, want)
	}
	for name, want := range map[string]string{"x": "a/x", "b_z": "a/y", "a_y": "a/y"} {
		if got := callText(t, cs, name); got != want {
			t.Errorf("%s -> %s, want %s", name, got, want)
		}
	}
	if got := callText(t, vc, "x"); got != "a/x" {
		t.Errorf("x through a view -> %s", got)
	}
	// A new target with an identical definition still changes the handler.
	a.aliases = map[string]string{"x": "y"}
	r.setShadow(map[string]bool{"x": true})
	r.sync("a", a, upstream.Catalog{Tools: []*mcp.Tool{tool("x"), tool("y")}})
	r.sync("b", b, upstream.Catalog{Tools: []*mcp.Tool{tool("z")}})
	if got := callText(t, cs, "x"); got != "a/y" {
		t.Errorf("retargeted x -> %s, want a/y", got)
	}
	if got := callText(t, cs, "b_z"); got != "b/z" {
		t.Errorf("b_z after its alias went -> %s, want b/z", got)
	}
	// The target goes: so does the alias, from the view too.
	r.sync("a", a, upstream.Catalog{Tools: []*mcp.Tool{tool("x")}})
	if got, want := listed(t, cs), []string{"a_x", "b_z"}; !slices.Equal(got, want) {
		t.Errorf("tools without the target = %v, want %v", got, want)
	}
	if got := listed(t, vc); len(got) != 0 {
		t.Errorf("view without the target = %v", got)
	}
	if failures.Load() != 0 {
		t.Errorf("failures = %d, want 0", failures.Load())
	}
}
