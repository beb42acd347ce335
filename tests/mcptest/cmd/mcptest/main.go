// Command mcptest serves one of the example MCP servers of package mcptest
// over Streamable HTTP, for the local stack and manual testing:
//
//	mcptest -kind echo -name echo-1 -addr 127.0.0.1:0
//
// It prints the endpoint URL on stdout, then runs until SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgw/mcpgw/tests/mcptest"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "mcptest:", err)
		os.Exit(2)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("mcptest", flag.ContinueOnError)
	kind := fs.String("kind", "echo", "server kind: echo or math")
	name := fs.String("name", "", "server name, returned by the whoami tool (default: the kind)")
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *name == "" {
		*name = *kind
	}
	var srv *mcp.Server
	switch *kind {
	case "echo":
		srv = mcptest.NewEchoServer(*name)
	case "math":
		srv = mcptest.NewMathServer(*name)
	default:
		return errors.New(`-kind must be "echo" or "math"`)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	url, stop, err := mcptest.Serve(ctx, *addr, srv)
	if err != nil {
		return err
	}
	defer stop()
	fmt.Println(url)
	<-ctx.Done()
	return nil
}
