package golang

import (
	"context"
	"log/slog"

	"github.com/envoyproxy/envoy/contrib/golang/common/go/api"

	"github.com/mcpgw/mcpgw/filter/host"
)

// envoyLog is the host.LogSink of the golang filter: Envoy's "golang"
// logger, through the api package's common CAPI (envoyGoFilterLog, which is
// thread-safe; the router logs from goroutines too). Inside Envoy the shim
// installs that CAPI and refreshes the level every second
// (ENVOY_GOLANG_LOG_LEVEL_SYNC_INTERVAL); outside, api.Log* panics unless a
// fake is installed with api.SetCommonCAPI (tests do).
type envoyLog struct{}

func envoyLevel(l slog.Level) api.LogType {
	switch {
	case l >= slog.LevelError:
		return api.Error
	case l >= slog.LevelWarn:
		return api.Warn
	case l >= slog.LevelInfo:
		return api.Info
	default:
		return api.Debug
	}
}

// Enabled compares with Envoy's level (a cached atomic in the shim), so that
// disabled levels cost no formatting.
func (envoyLog) Enabled(l slog.Level) bool { return api.GetLogLevel() <= envoyLevel(l) }

// Write logs line (copied: the API takes a string).
func (envoyLog) Write(l slog.Level, line []byte) {
	msg := string(line)
	switch envoyLevel(l) {
	case api.Error:
		api.LogError(msg)
	case api.Warn:
		api.LogWarn(msg)
	case api.Info:
		api.LogInfo(msg)
	default:
		api.LogDebug(msg)
	}
}

// logHandler formats records as "mcpgw: <message> key=value ...".
var logHandler = host.NewLogHandler(envoyLog{})

// logf logs without a Router (config errors, panics).
func logf(level slog.Level, msg string, args ...any) {
	slog.New(logHandler).Log(context.Background(), level, msg, args...)
}
