package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	"github.com/mcpgw/mcpgw/filter/config"
)

// sessionIDHeader is the MCP session header (Streamable HTTP transport).
const sessionIDHeader = "Mcp-Session-Id"

// Handler returns the broker's HTTP handler: /mcp (the MCP endpoint),
// /mcp/<name> (the virtual server <name>), GET /status, GET /healthz, GET
// /metrics and the routers' revocation feed (config.RevocationsPath). Only
// /mcp and below are for clients: Envoy routes nothing else to the broker,
// and the router refuses the feed's path.
func (b *Broker) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(config.EndpointPath, func(w http.ResponseWriter, r *http.Request) { b.serveMCP(w, r, b.handler) })
	mux.HandleFunc(config.EndpointPath+"/", b.serveVirtual)
	mux.HandleFunc("GET /status", b.serveStatus)
	mux.HandleFunc("GET /healthz", b.serveHealthz)
	mux.HandleFunc("GET /metrics", b.serveMetrics)
	mux.HandleFunc("GET "+config.RevocationsPath, b.serveRevocations)
	return mux
}

// serveMCP rejects forged session ids, and those past
// gateway.sessionMaxLifetime, before the go-sdk handler sees them. The
// go-sdk already answers 404 to any id it does not know; checking the
// signature first keeps forged ids off its session table lock and makes
// them countable. Ids that are genuine but unknown (e.g. minted before a
// broker restart) still get the go-sdk's 404, which tells the client to
// initialize again.
//
// A POST is refused with a JSON-RPC error that carries its request's id
// (clients match errors to requests by id), never with the go-sdk's
// text/plain answers: the handlers refuse the messages the go-sdk would
// refuse without a JSON-RPC error, or accept without an answer, first
// (refuseInvalid), and its remaining text/plain refusals are rewritten
// (jsonErrors).
func (b *Broker) serveMCP(w http.ResponseWriter, r *http.Request, h http.Handler) {
	var body []byte // a POST's JSON body
	if r.Method == http.MethodPost && isJSON(r.Header.Get("Content-Type")) {
		var err error
		if body, err = io.ReadAll(r.Body); err != nil {
			writeError(w, http.StatusBadRequest, nil, &jsonrpc.Error{
				Code: jsonrpc.CodeParseError, Message: "Parse error: request body unreadable"})
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r = r.WithContext(context.WithValue(r.Context(), bodyKey{}, body))
	}
	id := singleID(body)
	codec := b.codec.Load()
	if codec == nil {
		writeError(w, http.StatusServiceUnavailable, id, &jsonrpc.Error{
			Code: jsonrpc.CodeInternalError, Message: "broker has no configuration yet"})
		return
	}
	if sid := r.Header.Get(sessionIDHeader); sid != "" {
		forged, expired := b.sessionOver(codec, sid, time.Now())
		if forged || expired {
			if forged {
				b.metrics.sessionsRejected.Add(1)
			} else {
				b.metrics.sessionsOver.Add(1)
			}
			writeError(w, http.StatusNotFound, id, &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest, Message: "session not found"})
			return
		}
	}
	if r.Method != http.MethodPost {
		h.ServeHTTP(w, r)
		return
	}
	jw := &jsonErrors{ResponseWriter: w, id: id}
	h.ServeHTTP(jw, r)
	jw.finish()
}

// bodyKey is the context key of a POST's JSON body, read by serveMCP.
type bodyKey struct{}

func (b *Broker) serveStatus(w http.ResponseWriter, _ *http.Request) {
	body, err := json.MarshalIndent(b.Status(), "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(body, '\n'))
}

// serveHealthz reports whether the broker can serve: it has a config. A
// down backend does not make the broker unhealthy; /status tells about it.
func (b *Broker) serveHealthz(w http.ResponseWriter, _ *http.Request) {
	if b.codec.Load() == nil {
		http.Error(w, "no configuration", http.StatusServiceUnavailable)
		return
	}
	w.Write([]byte("ok\n"))
}

func (b *Broker) serveMetrics(w http.ResponseWriter, _ *http.Request) {
	var buf bytes.Buffer
	b.writeMetrics(&buf)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Write(buf.Bytes())
}

// SetWatchStats makes the config watch's counters part of /metrics.
func (b *Broker) SetWatchStats(s *config.WatchStats) { b.watch.Store(s) }
