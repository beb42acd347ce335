package dynmod

/*
#include "helpers.h"
*/
import "C"

import (
	"sync/atomic"

	"github.com/mcpgw/mcpgw/filter/config"
	"github.com/mcpgw/mcpgw/filter/router"
)

// The router counts outcomes in Go atomics (router.Metrics), some of them on
// goroutines (session inits) where Envoy callbacks must not be called. The
// adapter exports them as Envoy counters by delta: when a stream ends, on its
// worker thread, each counter that moved since the last export is
// incremented in Envoy by the difference. A few atomic loads per stream, and
// one cgo call when something changed.
//
// Names are relative to the filter's metrics namespace (dynamic_module_config
// .metrics_namespace, default "dynamicmodulescustom", which Envoy strips from
// /stats output), e.g. "mcpgw.requests".

var numRejections = len(router.Metrics{}.Rejected)

// Fixed counters; the rejection counters follow, one per router.Rejection
// except RejectNone.
var counterNames = func() []string {
	names := []string{
		"mcpgw.requests",              // POST bodies decided
		"mcpgw.routed",                // calls routed to a backend
		"mcpgw.forwarded",             // requests left to the broker
		"mcpgw.session_inits",         // backend sessions initialized
		"mcpgw.session_init_failures", // backend session initializations that failed
		"mcpgw.sessions_lost",         // backend 404s that invalidated a session
		"mcpgw.config_reloads",        // good configs applied (including the first)
		"mcpgw.config_reload_errors",  // invalid config files (last good kept)
	}
	for r := router.Rejection(1); int(r) < numRejections; r++ {
		names = append(names, "mcpgw.rejected."+r.String())
	}
	return names
}()

// numCounters must equal len(counterNames); init checks it.
const numCounters = 8 + len(router.Metrics{}.Rejected) - 1

func init() {
	if len(counterNames) != numCounters {
		panic("dynmod: counter table out of sync")
	}
}

// counterSources points at the Go counters, in counterNames order, and
// remembers what was already exported to Envoy.
type counterSources struct {
	src      [numCounters]*atomic.Int64
	exported [numCounters]atomic.Int64
}

func (c *counterSources) init(m *router.Metrics, w *config.WatchStats) {
	fixed := []*atomic.Int64{&m.Requests, &m.Routed, &m.Forwarded, &m.SessionInits,
		&m.SessionInitFail, &m.SessionsLost, &w.Reloads, &w.ReloadErrors}
	n := copy(c.src[:], fixed)
	for r := 1; r < numRejections; r++ {
		c.src[n] = &m.Rejected[r]
		n++
	}
}

// flushMetrics exports counter deltas through stream f. It must run on f's
// worker thread during a hook.
func (f *filter) flushMetrics() {
	fc := f.cfg
	if fc == nil || !fc.statsOK {
		return
	}
	c := &fc.shared.counters
	n := 0
	for i, src := range c.src {
		cur := src.Load()
		prev := c.exported[i].Load()
		// Streams on other workers flush concurrently: the CAS makes each
		// delta exported exactly once.
		if cur > prev && c.exported[i].CompareAndSwap(prev, cur) {
			f.counterIDs[n] = fc.ids[i]
			f.counterDeltas[n] = C.uint64_t(cur - prev)
			n++
		}
	}
	if n > 0 {
		C.mcpgw_increment_counters(f.envoy, &f.counterIDs[0], &f.counterDeltas[0], C.size_t(n))
	}
}
