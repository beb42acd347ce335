package harness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/mcpgw/mcpgw/broker"
	"github.com/mcpgw/mcpgw/filter/config"
)

// StackOptions start the gateway: Envoy with the router module and the
// broker, both reading ConfigPath. Backends are the caller's.
type StackOptions struct {
	Root        string // repository root
	EnvoyBinary string
	ModuleDir   string
	ConfigPath  string
	WorkDir     string // rendered bootstrap goes here
	Port        int    // MCP listener; 0 picks a free port
	// DirectBackend, if set (host:port), adds the no-module baseline listener
	// routing straight to it.
	DirectBackend string
	Concurrency   int
	// Template is the Envoy bootstrap template; empty means
	// envoy/local.yaml.tmpl under Root. The benchmarks pass a copy with an
	// extra listener.
	Template      string
	EnvoyLogLevel string
	EnvoyOutput   io.Writer
	Logger        *slog.Logger // broker logs; nil discards
	// BrokerListener, if set, is where the broker serves (the stack takes
	// it over); by default it listens on a free loopback port. A caller
	// that must know the broker's address before the stack starts (e.g. a
	// controller polling its /status) listens first.
	BrokerListener net.Listener
	// WaitServers makes StartStack also wait until the broker reports
	// every server of the config ready (its MCP session with each is up,
	// so their tools are listed), for a caller whose backends all serve
	// before the stack starts. A stack with a server down on purpose must
	// leave it unset.
	WaitServers bool
	// ReadyTimeout bounds each readiness wait (default 30s).
	ReadyTimeout time.Duration
}

// Stack is a running gateway.
type Stack struct {
	Envoy      *Envoy
	BrokerAddr string
	DirectPort int
	cancel     context.CancelFunc
	// brokerExited is closed when broker.Run has returned brokerErr.
	brokerExited chan struct{}
	brokerErr    error
	closeOnce    sync.Once
	closeErr     error
}

// StartStack starts the broker, then Envoy, and waits until both serve:
// the broker's /healthz answers (it has its config), Envoy's /ready does,
// and a request through Envoy's listener reaches the broker (see
// waitServing). With WaitServers it also waits for every backend.
func StartStack(ctx context.Context, o StackOptions) (*Stack, error) {
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	if o.Port == 0 {
		o.Port = ports[0]
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Stack{cancel: cancel, brokerExited: make(chan struct{})}
	ln := o.BrokerListener
	if ln == nil {
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			cancel()
			return nil, err
		}
	}
	s.BrokerAddr = ln.Addr().String()
	go func() {
		defer close(s.brokerExited)
		s.brokerErr = broker.Run(ctx, broker.Options{ConfigPath: o.ConfigPath, Listener: ln, Logger: o.Logger})
	}()
	ec := EnvoyConfig{Port: o.Port, AdminPort: ports[1], ConfigPath: o.ConfigPath}
	ec.BrokerHost, ec.BrokerPort, _ = SplitHostPort(s.BrokerAddr)
	if o.DirectBackend != "" {
		s.DirectPort = ports[2]
		ec.DirectPort = ports[2]
		if ec.DirectBackendHost, ec.DirectBackendPort, err = SplitHostPort(o.DirectBackend); err != nil {
			s.Close()
			return nil, err
		}
	}
	if o.Template == "" {
		o.Template = filepath.Join(o.Root, "envoy", "local.yaml.tmpl")
	}
	s.Envoy, err = StartEnvoy(ctx, EnvoyOptions{
		Binary: o.EnvoyBinary, ModuleDir: o.ModuleDir, Template: o.Template,
		Config: ec, WorkDir: o.WorkDir, Concurrency: o.Concurrency,
		LogLevel: o.EnvoyLogLevel, Output: o.EnvoyOutput,
	})
	if err != nil {
		s.Close()
		return nil, err
	}
	if err := s.waitServing(ctx, o); err != nil {
		s.Close()
		return nil, fmt.Errorf("%w\nenvoy output:\n%s", err, s.Envoy.Logs())
	}
	return s, nil
}

// URL is the gateway's MCP endpoint.
func (s *Stack) URL() string { return s.Envoy.URL() }

// Done is closed when Envoy exits.
func (s *Stack) Done() <-chan struct{} { return s.Envoy.Done() }

// Close stops Envoy and the broker.
// It is idempotent: later calls return the first call's result.
func (s *Stack) Close() error {
	s.closeOnce.Do(func() {
		if s.Envoy != nil {
			s.Envoy.Stop()
		}
		s.cancel()
		<-s.brokerExited
		s.closeErr = s.brokerErr
		if errors.Is(s.closeErr, context.Canceled) {
			s.closeErr = nil
		}
	})
	return s.closeErr
}

func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		p, err := FreePort()
		if err != nil {
			return nil, err
		}
		ports = append(ports, p)
	}
	return ports, nil
}

// WriteSessionKey writes a fresh random session key to path (mode 0600).
func WriteSessionKey(path string) error {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(hex.EncodeToString(b[:])+"\n"), 0o600)
}

// WriteConfig writes a config file with the given servers, using the
// session key file next to it (created if missing), atomically (write to a
// temporary file, then rename), as a careful writer would.
func WriteConfig(path string, servers []config.Server) error {
	keyFile := filepath.Join(filepath.Dir(path), "session.key")
	if _, err := os.Stat(keyFile); errors.Is(err, os.ErrNotExist) {
		if err := WriteSessionKey(keyFile); err != nil {
			return err
		}
	}
	c := config.Config{
		Version: config.Version,
		Gateway: config.Gateway{SessionKey: config.SecretRef{File: "session.key"}},
		Servers: servers,
	}
	b, err := yaml.Marshal(c)
	if err != nil {
		return err
	}
	if _, err := config.Parse(b); err != nil {
		return fmt.Errorf("refusing to write an invalid config: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
