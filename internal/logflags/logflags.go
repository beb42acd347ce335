// Package logflags turns the -log-format and -log-level flags every mcpgw
// service takes into a *slog.Logger, with one set of rules and messages.
package logflags

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
)

// New returns a logger writing to out in format "text" or "json" at level
// (debug, info, warn, error, optionally with an offset such as "info+2").
// Every invalid flag is reported, joined.
func New(format, level string, out io.Writer) (*slog.Logger, error) {
	var errs []error
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		errs = append(errs, fmt.Errorf("-log-level: %w", err))
	}
	if format != "text" && format != "json" {
		errs = append(errs, fmt.Errorf("-log-format: %q is not text or json", format))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(out, opts)), nil
	}
	return slog.New(slog.NewTextHandler(out, opts)), nil
}
