package dynmod

/*
#include "helpers.h"
*/
import "C"

import (
	"context"
	"log/slog"

	"github.com/mcpgw/mcpgw/filter/host"
)

// envoyLog is the host.LogSink of the dynamic module: Envoy's
// "dynamic_modules" logger (so `--component-log-level dynamic_modules:debug`
// controls it), through envoy_dynamic_module_callback_log. The router logs
// from goroutines too; the log callbacks are thread-safe (abi.h).
type envoyLog struct{}

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
func (envoyLog) Enabled(l slog.Level) bool {
	return bool(C.envoy_dynamic_module_callback_log_enabled(envoyLevel(l)))
}

// Write logs line; Envoy copies it. line is heap memory (the handler's
// pooled buffer), never a goroutine stack that cgo could move.
func (envoyLog) Write(l slog.Level, line []byte) {
	C.mcpgw_log(envoyLevel(l), cBytes(line), C.size_t(len(line)))
}

// logHandler formats records as "mcpgw: <message> key=value ..."; Envoy
// adds time, level and thread itself.
var logHandler = host.NewLogHandler(envoyLog{})

// logf logs through Envoy without a Router (config errors, panics).
func logf(level slog.Level, msg string, args ...any) {
	slog.New(logHandler).Log(context.Background(), level, msg, args...)
}
