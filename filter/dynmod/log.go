package dynmod

/*
#include "helpers.h"
*/
import "C"

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// envoyLogHandler is an slog.Handler writing to Envoy's log through
// envoy_dynamic_module_callback_log (Envoy's "dynamic_modules" logger, so
// `--component-log-level dynamic_modules:debug` controls it). The router
// logs from goroutines too; the log callbacks are thread-safe (abi.h).
//
// Lines read "mcpgw: <message> key=value ...": Envoy adds time, level and
// thread itself.
type envoyLogHandler struct {
	attrs []byte // preformatted " key=value" pairs from WithAttrs
	group string // "group." prefix from WithGroup
}

func envoyLevel(l slog.Level) C.int32_t {
	switch {
	case l >= slog.LevelError:
		return C.MCPGW_LOG_ERROR
	case l >= slog.LevelWarn:
		return C.MCPGW_LOG_WARN
	case l >= slog.LevelInfo:
		return C.MCPGW_LOG_INFO
	default:
		return C.MCPGW_LOG_DEBUG
	}
}

// Enabled asks Envoy, so that disabled levels cost no formatting.
func (h envoyLogHandler) Enabled(_ context.Context, l slog.Level) bool {
	return bool(C.envoy_dynamic_module_callback_log_enabled(envoyLevel(l)))
}

var logBufs = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

func (h envoyLogHandler) Handle(_ context.Context, r slog.Record) error {
	bp := logBufs.Get().(*[]byte)
	b := append((*bp)[:0], "mcpgw: "...)
	b = append(b, r.Message...)
	b = append(b, h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		b = appendAttr(b, h.group, a)
		return true
	})
	C.mcpgw_log(envoyLevel(r.Level), cBytes(b), C.size_t(len(b)))
	*bp = b
	logBufs.Put(bp)
	return nil
}

func (h envoyLogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	b := append([]byte(nil), h.attrs...)
	for _, a := range attrs {
		b = appendAttr(b, h.group, a)
	}
	return envoyLogHandler{attrs: b, group: h.group}
}

func (h envoyLogHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return envoyLogHandler{attrs: h.attrs, group: h.group + name + "."}
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

// logf logs through Envoy without a Router (config errors, panics).
func logf(level slog.Level, msg string, args ...any) {
	slog.New(envoyLogHandler{}).Log(context.Background(), level, msg, args...)
}
