package broker

import (
	"fmt"
	"io"
	"sync/atomic"

	"github.com/mcpgw/mcpgw/broker/upstream"
)

type proxiedKind int

const (
	proxiedTool proxiedKind = iota
	proxiedPrompt
	proxiedResource
	proxiedCompletion
	proxiedSubscription // resources/subscribe and unsubscribe sent to a backend
	numProxiedKinds
)

var proxiedKindNames = [numProxiedKinds]string{"tool", "prompt", "resource", "completion", "subscription"}

// metrics are the broker's counters. Gauges are computed at scrape time.
type metrics struct {
	sessionsMinted       atomic.Int64
	sessionsRejected     atomic.Int64 // forged Mcp-Session-Id
	messagesRefused      atomic.Int64 // invalid POSTed messages (messages.go)
	sessionsExpired      atomic.Int64 // closed for idleness (idle.go)
	sessionsDeleted      atomic.Int64 // ended by the client's DELETE
	sessionsEnded        atomic.Int64 // closed past their lifetime or key (idle.go)
	sessionsOver         atomic.Int64 // requests refused with 404: the id is past its lifetime
	feedAnswers          atomic.Int64 // revocation feed answers served (revocations.go)
	feedWaiting          atomic.Int64 // gauge: revocation feed long polls waiting
	virtualUnknown       atomic.Int64 // requests for a virtual server not in the config
	proxied              [numProxiedKinds]atomic.Int64
	proxyErrors          [numProxiedKinds]atomic.Int64
	catalogUpdates       atomic.Int64
	registrationFailures atomic.Int64
	configApplies        atomic.Int64
	configApplyErrors    atomic.Int64
}

// writeMetrics writes the Prometheus text exposition format (version 0.0.4).
func (b *Broker) writeMetrics(w io.Writer) {
	m := &b.metrics
	counter(w, "mcpgw_broker_sessions_created_total", "Client sessions created (gateway session ids minted).", m.sessionsMinted.Load())
	counter(w, "mcpgw_broker_sessions_expired_total", "Client sessions closed after SessionIdleTimeout without activity.", m.sessionsExpired.Load())
	counter(w, "mcpgw_broker_sessions_rejected_total", "Requests rejected with 404 for a forged session id.", m.sessionsRejected.Load())
	counter(w, "mcpgw_broker_sessions_deleted_total", "Client sessions ended by the client's DELETE.", m.sessionsDeleted.Load())
	counter(w, "mcpgw_broker_sessions_ended_total", "Client sessions closed past gateway.sessionMaxLifetime or once their key left the ring.", m.sessionsEnded.Load())
	counter(w, "mcpgw_broker_sessions_over_lifetime_total", "Requests rejected with 404 for a session id past gateway.sessionMaxLifetime.", m.sessionsOver.Load())
	counter(w, "mcpgw_broker_revocation_feed_answers_total", "Answers served on the revocation feed to the routers.", m.feedAnswers.Load())
	counter(w, "mcpgw_broker_messages_refused_total", "Invalid JSON-RPC messages refused with a JSON-RPC error.", m.messagesRefused.Load())
	counter(w, "mcpgw_broker_virtual_server_not_found_total", "Requests for a virtual server the config does not have (HTTP 404).", m.virtualUnknown.Load())
	header(w, "mcpgw_broker_proxied_requests_total", "counter", "Requests the broker proxied to a backend itself (fallback path).")
	for k, name := range proxiedKindNames {
		fmt.Fprintf(w, "mcpgw_broker_proxied_requests_total{kind=%q} %d\n", name, m.proxied[k].Load())
	}
	header(w, "mcpgw_broker_proxied_errors_total", "counter", "Proxied requests that failed.")
	for k, name := range proxiedKindNames {
		fmt.Fprintf(w, "mcpgw_broker_proxied_errors_total{kind=%q} %d\n", name, m.proxyErrors[k].Load())
	}
	counter(w, "mcpgw_broker_catalog_updates_total", "Backend catalog changes mirrored into the aggregated lists.", m.catalogUpdates.Load())
	counter(w, "mcpgw_broker_registration_failures_total", "Backend definitions that could not be exposed (invalid or name conflict).", m.registrationFailures.Load())
	counter(w, "mcpgw_broker_config_applies_total", "Configs applied.", m.configApplies.Load())
	counter(w, "mcpgw_broker_config_apply_errors_total", "Configs applied with an error (e.g. unresolvable session key).", m.configApplyErrors.Load())
	if ws := b.watch.Load(); ws != nil {
		counter(w, "mcpgw_broker_config_reloads_total", "Config file reloads (including the first load).", ws.Reloads.Load())
		counter(w, "mcpgw_broker_config_reload_errors_total", "Invalid or unreadable config files (last good config kept).", ws.ReloadErrors.Load())
		counter(w, "mcpgw_broker_secret_reloads_total", "Config re-applies for a referenced secret that changed (the file unchanged).", ws.SecretReloads.Load())
	}
	b.writeGauges(w)
}

func (b *Broker) writeGauges(w io.Writer) {
	st := b.Status()
	byState := map[upstream.State]int{}
	for _, s := range st.Servers {
		byState[s.State]++
	}
	header(w, "mcpgw_broker_servers", "gauge", "Configured backend servers by connection state.")
	for _, s := range []upstream.State{upstream.StateConnecting, upstream.StateReady, upstream.StateInvalid, upstream.StateUnreachable} {
		fmt.Fprintf(w, "mcpgw_broker_servers{state=%q} %d\n", s, byState[s])
	}
	b.mu.Lock()
	tools, prompts, resources, templates := b.reg.counts()
	shadowedTools, shadowedPrompts := b.reg.shadowedCounts()
	b.mu.Unlock()
	header(w, "mcpgw_broker_exposed", "gauge", "Entries in the aggregated lists.")
	fmt.Fprintf(w, "mcpgw_broker_exposed{kind=\"tool\"} %d\n", tools)
	fmt.Fprintf(w, "mcpgw_broker_exposed{kind=\"prompt\"} %d\n", prompts)
	fmt.Fprintf(w, "mcpgw_broker_exposed{kind=\"resource\"} %d\n", resources)
	fmt.Fprintf(w, "mcpgw_broker_exposed{kind=\"resource_template\"} %d\n", templates)
	header(w, "mcpgw_broker_shadowed", "gauge",
		"Gateway names of backend tools and prompts not listed because the router routes them to another server or item (config.Names).")
	fmt.Fprintf(w, "mcpgw_broker_shadowed{kind=\"tool\"} %d\n", shadowedTools)
	fmt.Fprintf(w, "mcpgw_broker_shadowed{kind=\"prompt\"} %d\n", shadowedPrompts)
	b.mu.Lock()
	servers := b.serversLocked()
	b.mu.Unlock()
	n := 0
	for _, srv := range servers {
		for range srv.Sessions() {
			n++
		}
	}
	gauge(w, "mcpgw_broker_sessions", "Open client sessions (of the gateway and of its virtual servers).", int64(n))
	gauge(w, "mcpgw_broker_revocation_feed_waiting", "Routers' long polls of the revocation feed waiting for news.", b.metrics.feedWaiting.Load())
	gauge(w, "mcpgw_broker_revoked_sessions", "Terminated sessions on the revocation feed (kept until their lifetime ends).", int64(b.revocations.len()))
}

func header(w io.Writer, name, typ, help string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

func counter(w io.Writer, name, help string, v int64) {
	header(w, name, "counter", help)
	fmt.Fprintf(w, "%s %d\n", name, v)
}

func gauge(w io.Writer, name, help string, v int64) {
	header(w, name, "gauge", help)
	fmt.Fprintf(w, "%s %d\n", name, v)
}
