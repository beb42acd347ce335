package broker

import (
	"context"
	"fmt"
	"maps"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// proxy makes the handlers of the aggregated server. They forward to the
// owning backend over the broker's own session with it. This is the
// fallback path: Envoy's router normally sends tools/call and prompts/get
// straight to the backend, but a request can still reach the broker (e.g.
// inside a JSON-RPC batch, which the router does not split).
type proxy struct{ b *Broker }

// session returns the live session to backend, or a JSON-RPC error that
// tells the client the backend is unavailable.
func (p proxy) session(backend string) (*mcp.ClientSession, error) {
	up := p.b.upstream(backend)
	if up == nil {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: fmt.Sprintf("server %q is not configured", backend)}
	}
	cs, err := up.Session()
	if err != nil {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: err.Error()}
	}
	return cs, nil
}

// done counts a proxied request and wraps its error; a backend's JSON-RPC
// error keeps its code (the go-sdk takes the code of a wrapped wire error).
func (p proxy) done(kind proxiedKind, backend string, err error) error {
	p.b.metrics.proxied[kind].Add(1)
	if err == nil {
		return nil
	}
	p.b.metrics.proxyErrors[kind].Add(1)
	return fmt.Errorf("server %q: %w", backend, err)
}

func (p proxy) tool(backend, name string) mcp.ToolHandler {
	return func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		cs, err := p.session(backend)
		if err != nil {
			return nil, p.done(proxiedTool, backend, err)
		}
		params := &mcp.CallToolParams{Meta: sessionMeta(req.Params.Meta), Name: name}
		if len(req.Params.Arguments) > 0 {
			// Forwarded as raw JSON: the backend validates its own arguments.
			params.Arguments = req.Params.Arguments
		}
		res, err := cs.CallTool(ctx, params)
		return res, p.done(proxiedTool, backend, err)
	}
}

func (p proxy) prompt(backend, name string) mcp.PromptHandler {
	return func(ctx context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		cs, err := p.session(backend)
		if err != nil {
			return nil, p.done(proxiedPrompt, backend, err)
		}
		res, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{
			Meta: sessionMeta(req.Params.Meta), Name: name, Arguments: req.Params.Arguments,
		})
		return res, p.done(proxiedPrompt, backend, err)
	}
}

// resource serves both resources and resource templates: URIs are not
// renamed, so the request's URI is forwarded as is.
func (p proxy) resource(backend string) mcp.ResourceHandler {
	return func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		cs, err := p.session(backend)
		if err != nil {
			return nil, p.done(proxiedResource, backend, err)
		}
		res, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{Meta: sessionMeta(req.Params.Meta), URI: req.Params.URI})
		return res, p.done(proxiedResource, backend, err)
	}
}

// sessionMeta returns meta without the stateless era's per-request keys
// (io.modelcontextprotocol/protocolVersion, clientCapabilities, ...): the
// broker's own session with a backend is session-era, where they would make
// the go-sdk client send the request as a 2026-07-28 one, which the backend
// session refuses. Other keys (progressToken, vendors' own) pass.
func sessionMeta(meta mcp.Meta) mcp.Meta {
	strip := false
	for k := range meta {
		if strings.HasPrefix(k, "io.modelcontextprotocol/") {
			strip = true
			break
		}
	}
	if !strip {
		return meta
	}
	out := maps.Clone(meta)
	maps.DeleteFunc(out, func(k string, _ any) bool { return strings.HasPrefix(k, "io.modelcontextprotocol/") })
	if len(out) == 0 {
		return nil
	}
	return out
}
