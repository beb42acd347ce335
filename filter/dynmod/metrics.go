package dynmod

/*
#include "helpers.h"
*/
import "C"

// Router metrics are exported as Envoy counters by delta when a stream ends
// (host.Counters). Names (host.CounterName) are relative to the filter's
// metrics namespace (dynamic_module_config.metrics_namespace, default
// "dynamicmodulescustom"). Envoy 1.39.1 and 1.40.0 keep that prefix in /stats
// (the runtime guard that strips it is off by default), so the counter shows as
// "dynamicmodulescustom.mcpgw.requests"; set metrics_namespace to choose
// another.

// flushMetrics exports counter deltas through stream f, in one cgo call (none
// when nothing changed). It must run on f's worker thread during a hook: the
// stream_complete hook, and destroy for anything counted after it.
func (f *filter) flushMetrics() {
	fc := f.cfg
	if fc == nil || !fc.statsOK {
		return
	}
	// Flush reports each counter at most once: the arrays fit. (The closure
	// does not escape, so it costs no allocation.)
	n := 0
	fc.shared.Counters().Flush(func(i int, delta uint64) {
		f.counterIDs[n], f.counterDeltas[n] = fc.ids[i], C.uint64_t(delta)
		n++
	})
	if n > 0 {
		C.mcpgw_increment_counters(f.envoy, &f.counterIDs[0], &f.counterDeltas[0], C.size_t(n))
	}
}
