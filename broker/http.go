package broker

import (
	"bytes"
	"encoding/json"
	"net/http"
	"time"

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
func (b *Broker) serveMCP(w http.ResponseWriter, r *http.Request, h http.Handler) {
	codec := b.codec.Load()
	if codec == nil {
		http.Error(w, "broker has no configuration yet", http.StatusServiceUnavailable)
		return
	}
	if id := r.Header.Get(sessionIDHeader); id != "" {
		forged, expired := b.sessionOver(codec, id, time.Now())
		if forged || expired {
			if forged {
				b.metrics.sessionsRejected.Add(1)
			} else {
				b.metrics.sessionsOver.Add(1)
			}
			http.Error(w, "session not found", http.StatusNotFound)
			return
		}
	}
	h.ServeHTTP(w, r)
}

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
