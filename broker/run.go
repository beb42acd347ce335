package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/mcpgw/mcpgw/filter/config"
)

// DefaultAddr is Run's listen address when Options.Addr is empty.
const DefaultAddr = "127.0.0.1:8090"

// Run loads and watches opts.ConfigPath, serves the broker on opts.Addr (or
// opts.Listener) and blocks until ctx is done, then shuts down gracefully:
// it stops accepting, closes the client sessions (ending their streams),
// waits for requests in flight up to opts.ShutdownTimeout, stops the config
// watch and disconnects from the backends. When it returns, nothing it
// started is still running. It fails at once if the first config is invalid
// or its session key cannot be resolved.
func Run(ctx context.Context, opts Options) error {
	if opts.ConfigPath == "" {
		return errors.New("broker: a config path is required")
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 10 * time.Second
	}
	b := New(opts)
	defer b.Close()
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer b.stopWatch(stopWatch) // before Close: no Apply races it
	if err := b.watchConfig(watchCtx); err != nil {
		return err
	}
	ln := opts.Listener
	if ln == nil {
		addr := opts.Addr
		if addr == "" {
			addr = DefaultAddr
		}
		var err error
		if ln, err = net.Listen("tcp", addr); err != nil {
			return fmt.Errorf("broker: %w", err)
		}
	}
	hs := &http.Server{Handler: b.Handler(), ReadHeaderTimeout: 10 * time.Second}
	// Shutdown waits for handlers to return, and the GET streams of open
	// sessions only return when their session closes.
	hs.RegisterOnShutdown(b.closeSessions)
	hs.RegisterOnShutdown(b.revocations.stop) // the routers' long polls
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	b.log.Info("broker listening", "addr", ln.Addr().String())

	select {
	case err := <-served:
		return fmt.Errorf("broker: serve: %w", err)
	case <-ctx.Done():
	}
	b.log.Info("broker shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), opts.ShutdownTimeout)
	defer cancel()
	err := hs.Shutdown(sctx)
	<-served
	if err != nil {
		return fmt.Errorf("broker: shutdown: %w", err)
	}
	return nil
}

// watchConfig applies the config file now and on every change until ctx is
// done. Only the first apply's error is fatal; later ones are logged, the
// broker keeping what it could apply.
func (b *Broker) watchConfig(ctx context.Context) error {
	wopts := b.opts.Watch
	wopts.Logger = b.log
	var firstErr error
	first := true // written before Watch returns, then only by its goroutine
	stats, err := config.Watch(ctx, b.opts.ConfigPath, wopts, func(c *config.Config) {
		err := b.Apply(c)
		if first {
			first, firstErr = false, err
			return
		}
		if err != nil && !errors.Is(err, errClosed) {
			b.log.Error("config applied with errors", "error", err)
		}
	})
	if err != nil {
		return fmt.Errorf("broker: load config: %w", err)
	}
	b.SetWatchStats(stats) // the watch runs: stopWatch waits for it
	if firstErr != nil {
		return fmt.Errorf("broker: apply config: %w", firstErr)
	}
	return nil
}

// stopWatch ends the config watch, if it started, and waits for it.
func (b *Broker) stopWatch(cancel context.CancelFunc) {
	cancel()
	if ws := b.watch.Load(); ws != nil {
		<-ws.Stopped()
	}
}
