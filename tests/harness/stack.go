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
	// it over); else it listens on BrokerAddr, by default a free loopback
	// port. A caller that must know the broker's address before the stack
	// starts (e.g. a controller polling its /status, or a config naming it
	// as gateway.brokerURL) listens first (ListenBroker) or fixes it.
	BrokerListener net.Listener
	BrokerAddr     string
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
	ctx        context.Context
	cancel     context.CancelFunc
	brokerOpts broker.Options

	brokerMu     sync.Mutex
	brokerCancel context.CancelFunc // nil while the broker is stopped
	brokerDone   chan error
	// brokerExited is closed when the running broker's Run has returned
	// brokerErr (readiness waits watch it; StopBroker reads brokerDone).
	brokerExited chan struct{}
	brokerErr    error

	closeOnce sync.Once
	closeErr  error
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
	s := &Stack{ctx: ctx, cancel: cancel, brokerOpts: broker.Options{ConfigPath: o.ConfigPath, Logger: o.Logger}}
	ln := o.BrokerListener
	if ln == nil {
		if o.BrokerAddr == "" {
			o.BrokerAddr = "127.0.0.1:0"
		}
		if ln, err = net.Listen("tcp", o.BrokerAddr); err != nil {
			cancel()
			return nil, fmt.Errorf("broker: %w", err)
		}
	}
	s.BrokerAddr = ln.Addr().String()
	s.runBroker(ln)
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
		s.closeErr = s.StopBroker()
		s.cancel()
	})
	return s.closeErr
}

// runBroker serves the broker on ln until StopBroker or Close.
func (s *Stack) runBroker(ln net.Listener) {
	ctx, cancel := context.WithCancel(s.ctx)
	done, exited := make(chan error, 1), make(chan struct{})
	s.brokerMu.Lock()
	s.brokerCancel, s.brokerDone, s.brokerExited = cancel, done, exited
	s.brokerMu.Unlock()
	opts := s.brokerOpts
	opts.Listener = ln
	go func() {
		err := broker.Run(ctx, opts)
		s.brokerErr = err // read only after exited is closed
		close(exited)
		done <- err
	}()
}

// exited is closed when the running broker has exited.
func (s *Stack) exited() <-chan struct{} {
	s.brokerMu.Lock()
	defer s.brokerMu.Unlock()
	return s.brokerExited
}

// StopBroker stops the broker, as a crash or a redeploy would: its client
// sessions are gone, Envoy and the router keep running. It returns the
// broker's error, if it failed; stopping a stopped broker does nothing.
func (s *Stack) StopBroker() error {
	s.brokerMu.Lock()
	cancel, done := s.brokerCancel, s.brokerDone
	s.brokerCancel = nil
	s.brokerMu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// StartBroker starts a stopped broker again at its address, with the same
// config file (and so the same session key): ids minted by the previous
// one are genuine but unknown to it.
func (s *Stack) StartBroker() error {
	s.brokerMu.Lock()
	running := s.brokerCancel != nil
	s.brokerMu.Unlock()
	if running {
		return errors.New("harness: the broker is running")
	}
	ln, err := net.Listen("tcp", s.BrokerAddr)
	if err != nil {
		return fmt.Errorf("harness: listen again on the broker's address: %w", err)
	}
	s.runBroker(ln)
	return nil
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

// ListenBroker listens on a free loopback port for the broker, so that the
// config can name it (gateway.brokerURL: BrokerURL(ln)) before the stack
// starts; pass it as StackOptions.BrokerListener.
func ListenBroker() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

// BrokerURL is the base URL of a broker serving on ln, as the config's
// gateway.brokerURL names it.
func BrokerURL(ln net.Listener) string { return "http://" + ln.Addr().String() }

// WriteConfig writes a config file with the given servers, using the
// session key file next to it (created if missing), atomically (write to a
// temporary file, then rename), as a careful writer would.
func WriteConfig(path string, servers []config.Server) error {
	return WriteGatewayConfig(path, config.Gateway{}, servers)
}

// WriteGatewayConfig is WriteConfig with gateway settings (such as
// BrokerURL); its session key is always the file next to the config.
func WriteGatewayConfig(path string, gw config.Gateway, servers []config.Server) error {
	gw.SessionKey = config.SecretRef{File: "session.key"}
	return WriteConfigFile(path, config.Config{Version: config.Version, Gateway: gw, Servers: servers})
}

// WriteConfigFile writes c like WriteConfig; a session key file named by
// c.Gateway.SessionKey.File (relative to path) is created if missing.
func WriteConfigFile(path string, c config.Config) error {
	if f := c.Gateway.SessionKey.File; f != "" {
		if !filepath.IsAbs(f) {
			f = filepath.Join(filepath.Dir(path), f)
		}
		if _, err := os.Stat(f); errors.Is(err, os.ErrNotExist) {
			if err := WriteSessionKey(f); err != nil {
				return err
			}
		}
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
