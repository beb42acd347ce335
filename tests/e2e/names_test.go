package e2e

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestListedToolsRunWhereListed: the unprefixed server "plain" has a tool
// ev_x of its own, and "ev" (prefix ev_) has x: both are offered as ev_x.
// Whichever of them the gateway has first, tools/list shows every name with
// the definition of the server that tools/call then runs it on (ev's x for
// ev_x), through a real Envoy and the broker alike.
func TestListedToolsRunWhereListed(t *testing.T) {
	plain := &backend{name: "plain", prefix: "", srv: servedBy("plain", "ev_x", "y")}
	ev := &backend{name: "ev", prefix: "ev_", srv: servedBy("ev", "x")}
	ev.start(t) // configured later
	e := startEnv(t, plain)
	cs := e.connect(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	for _, order := range [][]*backend{{plain, ev}, {ev, plain}} {
		first, second := order[0], order[1]
		t.Run(first.name+"-then-"+second.name, func(t *testing.T) {
			e.backends = []*backend{first}
			e.writeConfig(t)
			alone := map[string]string{"ev_x": "plain", "y": "plain"}
			if first == ev {
				alone = map[string]string{"ev_x": "ev"}
			}
			checkListedRunWhereListed(ctx, t, cs, alone)
			e.backends = []*backend{first, second}
			e.writeConfig(t)
			checkListedRunWhereListed(ctx, t, cs, map[string]string{"ev_x": "ev", "y": "plain"})
		})
	}
}

// servedBy returns an MCP server named server whose tools each say so, in
// their definition ("served by <server>") and in their answer ("<server>").
func servedBy(server string, tools ...string) *mcp.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: server, Version: "v0"}, nil)
	for _, name := range tools {
		srv.AddTool(&mcp.Tool{Name: name, Description: "served by " + server, InputSchema: map[string]any{"type": "object"}},
			func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: server}}}, nil
			})
	}
	return srv
}

// checkListedRunWhereListed waits until tools/list shows want (tool name →
// the server whose definition is listed) and every listed tool's call
// answers from that server: the broker and the router each follow the
// config file on their own, so both may take a moment, but a name listed
// for one server and run on another never settles.
func checkListedRunWhereListed(ctx context.Context, t *testing.T, cs *mcp.ClientSession, want map[string]string) {
	t.Helper()
	var last string
	deadline := time.Now().Add(20 * time.Second)
	for {
		listed := map[string]string{}
		for tool, err := range cs.Tools(ctx, nil) {
			if err != nil {
				t.Fatalf("tools/list: %v", err)
			}
			listed[tool.Name] = strings.TrimPrefix(tool.Description, "served by ")
		}
		ran := map[string]string{}
		for name := range listed {
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name})
			if err == nil && !res.IsError {
				ran[name] = resultText(res)
			}
		}
		if maps.Equal(listed, want) && maps.Equal(ran, want) {
			return
		}
		last = fmt.Sprintf("listed %v, ran on %v, want %v", listed, ran, want)
		if time.Now().After(deadline) {
			t.Fatalf("tools/list and tools/call disagree: %s", last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
