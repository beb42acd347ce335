// Command localstack runs mcpgw on one machine (`make run`): two example MCP
// servers, the broker, and a stock Envoy with the router module, all reading
// one config file. It prints the MCP URL and runs until interrupted, then
// stops everything it started.
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/mcpgw/mcpgw/tests/harness"
	"github.com/mcpgw/mcpgw/tests/mcptest"
)

//go:embed config.yaml
var defaultConfig []byte

// The example servers' addresses, as in the embedded config.
var examples = []struct{ name, addr string }{
	{"echo", "127.0.0.1:9101"},
	{"math", "127.0.0.1:9102"},
}

type options struct {
	port       int
	brokerAddr string
	config     string
	moduleDir  string
	envoy      string
	workDir    string
}

func main() {
	var o options
	flag.IntVar(&o.port, "port", 8080, "port of the MCP endpoint (127.0.0.1)")
	flag.StringVar(&o.brokerAddr, "broker-addr", "127.0.0.1:9100",
		"the broker's listen address (the embedded config's gateway.brokerURL names the default)")
	flag.StringVar(&o.config, "config", "", "config file to use instead of the embedded default")
	flag.StringVar(&o.moduleDir, "module-dir", "build/bin", "directory holding libmcpgw-dynmod.so")
	flag.StringVar(&o.envoy, "envoy", "", "Envoy binary (default: the pinned one from `make envoy`)")
	flag.StringVar(&o.workDir, "workdir", "build/run", "directory for the rendered config and Envoy bootstrap")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "localstack:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	root, err := harness.RepoRoot()
	if err != nil {
		return err
	}
	if o.envoy == "" {
		if o.envoy, err = harness.FindEnvoy(root); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(o.workDir, 0o755); err != nil {
		return err
	}
	// Envoy gets these paths in its bootstrap: make them absolute.
	if o.moduleDir, err = filepath.Abs(o.moduleDir); err != nil {
		return err
	}
	if o.config == "" {
		if o.config, err = writeDefaultConfig(o.workDir); err != nil {
			return err
		}
		for _, ex := range examples {
			srv := mcptest.NewEchoServer(ex.name)
			if ex.name == "math" {
				srv = mcptest.NewMathServer(ex.name)
			}
			_, stopServer, err := mcptest.Serve(ctx, ex.addr, srv)
			if err != nil {
				return fmt.Errorf("example server %s: %w", ex.name, err)
			}
			defer stopServer()
		}
	}
	if o.config, err = filepath.Abs(o.config); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	stack, err := harness.StartStack(ctx, harness.StackOptions{
		Root: root, EnvoyBinary: o.envoy, ModuleDir: o.moduleDir,
		ConfigPath: o.config, WorkDir: o.workDir, Port: o.port,
		EnvoyLogLevel: "warn", EnvoyOutput: os.Stderr, Logger: log,
		// A fixed address, so that the config can name it (gateway.brokerURL:
		// the router follows the broker's revocation feed there).
		BrokerAddr: o.brokerAddr,
	})
	if err != nil {
		return err
	}
	fmt.Printf("\nmcpgw is running\n  MCP endpoint:  %s\n  config file:   %s (edits apply without restarts)\n"+
		"  broker status: http://%s/status\n  Envoy admin:   %s\nPress Ctrl-C to stop.\n\n",
		stack.URL(), o.config, stack.BrokerAddr, stack.Envoy.AdminURL())
	select {
	case <-ctx.Done():
	case <-stack.Done():
		err = errors.New("envoy exited unexpectedly")
	}
	fmt.Println("stopping...")
	return errors.Join(err, stack.Close())
}

// writeDefaultConfig writes the embedded config (and a fresh session key
// if there is none) into dir and returns the config's absolute path.
func writeDefaultConfig(dir string) (string, error) {
	path, err := filepath.Abs(filepath.Join(dir, "config.yaml"))
	if err != nil {
		return "", err
	}
	key := filepath.Join(dir, "session.key")
	if _, err := os.Stat(key); errors.Is(err, os.ErrNotExist) {
		if err := harness.WriteSessionKey(key); err != nil {
			return "", err
		}
	}
	return path, os.WriteFile(path, defaultConfig, 0o644)
}
