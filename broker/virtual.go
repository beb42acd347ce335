package broker

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgw/mcpgw/filter/config"
)

// virtualServer serves one config.VirtualServer: an MCP server of its own,
// with its own sessions, at config.VirtualServerPath(name). Its tools are
// the aggregated server's (same definitions, same handlers) that the
// virtual server lists; the registry keeps them in step (registry.setView).
//
// Each virtual server being a separate mcp.Server is what binds a session
// to the virtual server it was opened on: a session id is only known to
// the handler that created it, so it cannot be replayed on another
// endpoint to see more tools, and list_changed notifications reach exactly
// the sessions whose list changed.
type virtualServer struct {
	cfg     config.VirtualServer
	server  *mcp.Server
	handler http.Handler
}

// applyVirtualLocked reconciles the virtual servers with the config. A
// virtual server whose description changed is replaced (its sessions are
// closed, and their clients reconnect to see the new description): the
// description is part of the initialize result, fixed per mcp.Server.
func (b *Broker) applyVirtualLocked(want []config.VirtualServer) {
	byName := make(map[string]config.VirtualServer, len(want))
	for _, v := range want {
		byName[v.Name] = v
	}
	for name, vs := range b.virtual {
		if v, keep := byName[name]; !keep || v.Description != vs.cfg.Description {
			b.dropVirtualLocked(vs)
		}
	}
	for _, v := range want {
		vs := b.virtual[v.Name]
		if vs == nil {
			srv := b.newServer(&mcp.Implementation{Name: "mcpgw", Title: v.Name, Description: v.Description, Version: Version},
				v.Description,
				// Tools only: a virtual server lists no prompts or resources.
				&mcp.ServerCapabilities{Tools: &mcp.ToolCapabilities{ListChanged: true}})
			vs = &virtualServer{server: srv, handler: b.newHandler(srv)}
			b.virtual[v.Name] = vs
			b.log.Info("virtual server added", "virtualServer", v.Name, "tools", len(v.Tools))
		}
		vs.cfg = v
		b.reg.setView(v.Name, vs.server, v.Tools)
	}
	view := maps.Clone(b.virtual)
	b.virtualView.Store(&view)
}

// dropVirtualLocked removes a virtual server and closes its sessions in the
// background (Close waits for their requests in flight). They go on the
// revocation feed, so that routed calls end with them.
func (b *Broker) dropVirtualLocked(vs *virtualServer) {
	delete(b.virtual, vs.cfg.Name)
	b.reg.dropView(vs.cfg.Name)
	b.log.Info("virtual server removed", "virtualServer", vs.cfg.Name)
	b.closing.Go(func() {
		for ss := range vs.server.Sessions() {
			ss.Close()
			b.revocations.add(ss.ID())
		}
	})
}

// serveVirtual serves EndpointPath/<name>: the named virtual server, or a
// 404 whose JSON-RPC error names the unknown one (clients show it). The
// checks of serveMCP come first: no config yet is a 503, a forged session
// id a 404, whatever the path.
func (b *Broker) serveVirtual(w http.ResponseWriter, r *http.Request) {
	b.serveMCP(w, r, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, _ := config.VirtualServerFromPath(r.URL.Path)
		var vs *virtualServer
		if m := b.virtualView.Load(); m != nil {
			vs = (*m)[name]
		}
		if vs == nil {
			b.metrics.virtualUnknown.Add(1)
			// The names of the other virtual servers are not listed: they are
			// none of an unknown client's business.
			writeJSONRPCError(w, r, http.StatusNotFound, &jsonrpc.Error{
				Code: jsonrpc.CodeInvalidRequest,
				Message: fmt.Sprintf("virtual server %q not found (the gateway serves all its tools at %s, a virtual server at %s)",
					name, config.EndpointPath, config.VirtualServerPath("<name>")),
			})
			return
		}
		vs.handler.ServeHTTP(w, r)
	}))
}

// VirtualServerStatus is one virtual server in GET /status.
type VirtualServerStatus struct {
	Name string `json:"name"`
	// Tools is how many of the listed tools some server provides now.
	Tools int `json:"tools"`
	// Listed is how many tools the config lists.
	Listed int `json:"listed"`
}

// writeJSONRPCError answers a request the MCP handlers never see with a
// JSON-RPC error. It echoes the id of a single request, if the body is
// one: clients (the go-sdk's among them) only surface the error of a
// response they can match, and drop one with a null id.
func writeJSONRPCError(w http.ResponseWriter, r *http.Request, status int, e *jsonrpc.Error) {
	id := json.RawMessage("null")
	if r.Method == http.MethodPost && r.Body != nil {
		var req struct {
			ID json.RawMessage `json:"id"`
		}
		if json.NewDecoder(io.LimitReader(r.Body, maxErrorBody)).Decode(&req) == nil && validID(req.ID) {
			id = req.ID
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   *jsonrpc.Error  `json:"error"`
	}{"2.0", id, e})
}

// maxErrorBody bounds what writeJSONRPCError reads to find the id.
const maxErrorBody = 1 << 20

// validID reports whether raw is a JSON-RPC request id: a string or a
// number.
func validID(raw json.RawMessage) bool {
	var v any
	if len(raw) == 0 || json.Unmarshal(raw, &v) != nil {
		return false
	}
	switch v.(type) {
	case string, float64:
		return true
	}
	return false
}
