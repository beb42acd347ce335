// Command tasks-server serves the tasks-extension fixture of package
// tests/mcptest/tasks (MCP revision 2026-07-28, stateless) over HTTP at /mcp,
// for the local stack and manual conformance runs:
//
//	tasks-server -http 127.0.0.1:0
//
// It prints the endpoint URL on stdout, then runs until SIGINT or SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/mcpgw/mcpgw/tests/mcptest/tasks"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "tasks-server:", err)
		os.Exit(2)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("tasks-server", flag.ContinueOnError)
	addr := fs.String("http", "127.0.0.1:0", "listen address")
	ttl := fs.Duration("ttl", 0, "task TTL (ttlMs); 0 for the default")
	poll := fs.Duration("poll", 0, "advised poll interval (pollIntervalMs); 0 for the default")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	url, stop, err := tasks.Serve(ctx, *addr, tasks.Options{TTL: *ttl, PollInterval: *poll})
	if err != nil {
		return err
	}
	defer stop()
	fmt.Println(url)
	<-ctx.Done()
	return nil
}
