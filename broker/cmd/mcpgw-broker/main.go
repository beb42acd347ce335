// Command mcpgw-broker runs the mcpgw broker: the MCP server behind Envoy
// that aggregates the configured backends into one list.
//
//	mcpgw-broker -config /etc/mcpgw/config.yaml -addr 127.0.0.1:8090
//
// It stops gracefully on SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/mcpgw/mcpgw/broker"
	"github.com/mcpgw/mcpgw/internal/logflags"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "mcpgw-broker:", err)
		os.Exit(1)
	}
}

func run(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("mcpgw-broker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "path of the mcpgw config file (required)")
	addr := fs.String("addr", broker.DefaultAddr, "listen address")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	idle := fs.Duration("session-idle-timeout", broker.DefaultSessionIdleTimeout,
		"close client sessions without a request to the broker or an open GET stream for this long (0: never)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *idle < 0 {
		return errors.New("-session-idle-timeout must not be negative")
	}
	logger, err := parseFlags(*configPath, *addr, *logFormat, *logLevel, stderr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return broker.Run(ctx, broker.Options{ConfigPath: *configPath, Addr: *addr, Logger: logger, SessionIdleTimeout: *idle})
}

// parseFlags checks every flag at once and builds the logger.
func parseFlags(configPath, addr, format, level string, out io.Writer) (*slog.Logger, error) {
	var errs []error
	if configPath == "" {
		errs = append(errs, errors.New("-config is required"))
	}
	if addr == "" {
		errs = append(errs, errors.New("-addr must not be empty"))
	}
	log, err := logflags.New(format, level, out)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return log, nil
}
