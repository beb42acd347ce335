package host

import (
	"sync/atomic"

	"github.com/mcpgw/mcpgw/filter/config"
	"github.com/mcpgw/mcpgw/filter/router"
)

// The router counts outcomes in Go atomics (router.Metrics), some of them on
// goroutines (session inits) where Envoy callbacks must not be called. The
// adapters export them as Envoy counters by delta: when a stream ends, on
// its worker thread, each counter that moved since the last export is
// incremented in Envoy by the difference (Flush). A few atomic loads per
// stream, and a host call only for what changed.

var numRejections = len(router.Metrics{}.Rejected)

// NumCounters is the number of counters: the fixed ones, then one per
// router.Rejection except RejectNone.
const NumCounters = 20 + len(router.Metrics{}.Rejected) - 1

// counterNames are relative to the host's stats namespace (e.g.
// "mcpgw.requests").
var counterNames = func() []string {
	names := []string{
		"mcpgw.requests",               // POST bodies decided
		"mcpgw.routed",                 // calls routed to a backend
		"mcpgw.routed_by_headers",      // of those, routed on Mcp-Method/Mcp-Name alone
		"mcpgw.forwarded",              // requests left to the broker
		"mcpgw.session_inits",          // backend sessions initialized
		"mcpgw.session_init_failures",  // backend session initializations that failed
		"mcpgw.sessions_lost",          // backend 404s that invalidated a session
		"mcpgw.requests_relayed",       // backend requests to clients given relay ids
		"mcpgw.answers_routed",         // client answers routed back by relay id
		"mcpgw.tasks_routed",           // tasks requests routed by gateway task id
		"mcpgw.cancels_relayed",        // client cancellations sent to backends
		"mcpgw.streams_resumed",        // SSE streams resumed on a backend (Last-Event-ID)
		"mcpgw.replays",                // calls replayed after a lost backend session
		"mcpgw.replays_succeeded",      // of those, answered by the backend on a new session
		"mcpgw.config_reloads",         // good configs applied (including the first)
		"mcpgw.config_reload_errors",   // invalid config files (last good kept)
		"mcpgw.secret_reloads",         // of the reloads, those for a changed secret (config unchanged)
		"mcpgw.revocations_applied",    // terminated sessions learned of (DELETEs, the broker's feed)
		"mcpgw.revocation_feed_errors", // failed polls of the broker's revocation feed
		"mcpgw.broker_restarts",        // new broker epochs seen on the feed
	}
	for r := router.Rejection(1); int(r) < numRejections; r++ {
		names = append(names, "mcpgw.rejected."+r.String())
	}
	if len(names) != NumCounters {
		panic("host: counter table out of sync")
	}
	return names
}()

// CounterName returns the name of counter i, 0 <= i < NumCounters.
func CounterName(i int) string { return counterNames[i] }

// Counters points at the Go counters, in CounterName order, and remembers
// what was already exported to the host.
type Counters struct {
	src      [NumCounters]*atomic.Int64
	exported [NumCounters]atomic.Int64
}

func (c *Counters) init(m *router.Metrics, w *config.WatchStats) {
	fixed := []*atomic.Int64{&m.Requests, &m.Routed, &m.RoutedByHeaders, &m.Forwarded, &m.SessionInits,
		&m.SessionInitFail, &m.SessionsLost, &m.RequestsRelayed, &m.AnswersRouted, &m.TasksRouted, &m.CancelsRelayed, &m.StreamsResumed,
		&m.Replays, &m.ReplaysSucceeded, &w.Reloads, &w.ReloadErrors,
		&w.SecretReloads, &m.RevocationsApplied, &m.RevocationFeedErrors, &m.BrokerRestarts}
	n := copy(c.src[:], fixed)
	for r := 1; r < numRejections; r++ {
		c.src[n] = &m.Rejected[r]
		n++
	}
}

// Flush calls add(i, delta) for every counter i that grew since the last
// Flush, and returns how many it reported. Streams on every worker flush
// concurrently: each delta is claimed by exactly one of them (a CAS), so
// none is exported twice.
func (c *Counters) Flush(add func(i int, delta uint64)) int {
	n := 0
	for i, src := range c.src {
		cur := src.Load()
		prev := c.exported[i].Load()
		if cur > prev && c.exported[i].CompareAndSwap(prev, cur) {
			add(i, uint64(cur-prev))
			n++
		}
	}
	return n
}
