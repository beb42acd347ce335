package golang

// flushMetrics exports the router's counter deltas (host.Counters) when a
// stream ends. The golang filter's counters take increments from any thread
// (FilterConfig::incrementMetric locks), one cgo call each; a request moves
// two or three of them.
func (f *filter) flushMetrics() {
	fc := f.cfg
	if !fc.statsOK {
		return
	}
	fc.shared.Counters().Flush(func(i int, delta uint64) {
		fc.counters[i].Increment(int64(delta))
	})
}
