package host

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// LogSink is an Envoy log: the dynamic-module or golang-filter logging
// callbacks. Both are thread-safe in Envoy (the router logs from goroutines
// too).
type LogSink interface {
	// Enabled reports whether Envoy logs records of level l, so that
	// disabled levels cost no formatting.
	Enabled(l slog.Level) bool
	// Write logs one formatted line; line is only valid during the call.
	Write(l slog.Level, line []byte)
}

// LogHandler is an slog.Handler writing lines "mcpgw: <message> key=value
// ..." to a LogSink: Envoy adds time, level and thread itself.
type LogHandler struct {
	sink  LogSink
	attrs []byte // preformatted " key=value" pairs from WithAttrs
	group string // "group." prefix from WithGroup
}

// NewLogHandler returns a handler writing to sink.
func NewLogHandler(sink LogSink) LogHandler { return LogHandler{sink: sink} }

// Enabled asks the sink.
func (h LogHandler) Enabled(_ context.Context, l slog.Level) bool { return h.sink.Enabled(l) }

var logBufs = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// Handle formats r into a pooled buffer and writes it.
func (h LogHandler) Handle(_ context.Context, r slog.Record) error {
	bp := logBufs.Get().(*[]byte)
	b := append((*bp)[:0], "mcpgw: "...)
	b = append(b, r.Message...)
	b = append(b, h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		b = appendAttr(b, h.group, a)
		return true
	})
	h.sink.Write(r.Level, b)
	*bp = b
	logBufs.Put(bp)
	return nil
}

// WithAttrs preformats attrs once.
func (h LogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	b := append([]byte(nil), h.attrs...)
	for _, a := range attrs {
		b = appendAttr(b, h.group, a)
	}
	return LogHandler{sink: h.sink, attrs: b, group: h.group}
}

// WithGroup prefixes later keys with name.
func (h LogHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return LogHandler{sink: h.sink, attrs: h.attrs, group: h.group + name + "."}
}

func appendAttr(b []byte, group string, a slog.Attr) []byte {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return b
	}
	if a.Value.Kind() == slog.KindGroup {
		if a.Key != "" {
			group += a.Key + "."
		}
		for _, ga := range a.Value.Group() {
			b = appendAttr(b, group, ga)
		}
		return b
	}
	b = append(b, ' ')
	b = append(b, group...)
	b = append(b, a.Key...)
	b = append(b, '=')
	s := a.Value.String() // strings, numbers, bools, durations, errors (via Any)
	if needsQuote(s) {
		return strconv.AppendQuote(b, s)
	}
	return append(b, s...)
}

func needsQuote(s string) bool {
	if s == "" {
		return true
	}
	return !utf8.ValidString(s) || strings.ContainsAny(s, " =\"\t\r\n\\")
}
