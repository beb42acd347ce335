package harness

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"text/template"
	"time"
)

// EnvoyConfig fills envoy/local.yaml.tmpl.
type EnvoyConfig struct {
	Port       int    // MCP listener
	AdminPort  int    // admin interface
	ConfigPath string // mcpgw config file the router watches
	BrokerHost string
	BrokerPort int
	// DirectPort, if non-zero, adds a listener without the module that
	// routes straight to DirectBackendHost:DirectBackendPort (bench baseline).
	DirectPort        int
	DirectBackendHost string
	DirectBackendPort int
}

// RenderEnvoyConfig renders the template at tmplPath.
func RenderEnvoyConfig(tmplPath string, c EnvoyConfig) ([]byte, error) {
	t, err := template.ParseFiles(tmplPath)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, c); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// EnvoyOptions start an Envoy.
type EnvoyOptions struct {
	Binary    string // Envoy executable
	ModuleDir string // directory holding libmcpgw-dynmod.so
	Template  string // path of envoy/local.yaml.tmpl
	Config    EnvoyConfig
	WorkDir   string // where the rendered bootstrap is written
	// Concurrency is Envoy's worker count (default 1).
	Concurrency int
	LogLevel    string    // default "warn"
	Output      io.Writer // Envoy's stdout+stderr; nil keeps them in memory
}

// Envoy is a running Envoy process.
type Envoy struct {
	Port, AdminPort int
	cmd             *exec.Cmd
	done            chan struct{}
	logs            *lockedBuffer
	waitErr         error
}

// StartEnvoy renders the bootstrap, starts Envoy and waits until its admin
// interface reports ready.
func StartEnvoy(ctx context.Context, o EnvoyOptions) (*Envoy, error) {
	if o.Concurrency == 0 {
		o.Concurrency = 1
	}
	if o.LogLevel == "" {
		o.LogLevel = "warn"
	}
	yaml, err := RenderEnvoyConfig(o.Template, o.Config)
	if err != nil {
		return nil, err
	}
	bootstrap := filepath.Join(o.WorkDir, "envoy.yaml")
	if err := os.WriteFile(bootstrap, yaml, 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(o.Binary, "-c", bootstrap,
		"--concurrency", strconv.Itoa(o.Concurrency),
		"-l", o.LogLevel,
		// A random base id lets several Envoys (parallel tests) coexist.
		"--base-id", strconv.Itoa(1+rand.IntN(1<<20)),
		"--disable-hot-restart")
	cmd.Env = append(os.Environ(), "ENVOY_DYNAMIC_MODULES_SEARCH_PATH="+o.ModuleDir)
	e := &Envoy{Port: o.Config.Port, AdminPort: o.Config.AdminPort, cmd: cmd,
		done: make(chan struct{}), logs: &lockedBuffer{}}
	var out io.Writer = e.logs
	if o.Output != nil {
		out = io.MultiWriter(e.logs, o.Output)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the harness
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start envoy: %w", err)
	}
	go func() { e.waitErr = cmd.Wait(); close(e.done) }()
	if err := e.waitReady(ctx, 30*time.Second); err != nil {
		e.Stop()
		return nil, fmt.Errorf("%w\nenvoy output:\n%s", err, e.Logs())
	}
	return e, nil
}

func (e *Envoy) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	url := fmt.Sprintf("http://127.0.0.1:%d/ready", e.AdminPort)
	for time.Now().Before(deadline) {
		select {
		case <-e.done:
			return fmt.Errorf("envoy exited: %v", e.waitErr)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("envoy not ready after %s", timeout)
}

// URL returns the MCP endpoint through Envoy.
func (e *Envoy) URL() string { return fmt.Sprintf("http://127.0.0.1:%d/mcp", e.Port) }

// AdminURL returns the admin base URL.
func (e *Envoy) AdminURL() string { return fmt.Sprintf("http://127.0.0.1:%d", e.AdminPort) }

// PID returns Envoy's process id.
func (e *Envoy) PID() int { return e.cmd.Process.Pid }

// Logs returns everything Envoy printed so far.
func (e *Envoy) Logs() string { return e.logs.String() }

// Stop terminates Envoy (SIGTERM, then SIGKILL after 5s) and waits.
func (e *Envoy) Stop() {
	select {
	case <-e.done:
		return
	default:
	}
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.done:
	case <-time.After(5 * time.Second):
		_ = e.cmd.Process.Kill()
		<-e.done
	}
}

// Done is closed when Envoy exits.
func (e *Envoy) Done() <-chan struct{} { return e.done }

// Exited reports whether Envoy has exited.
func (e *Envoy) Exited() bool {
	select {
	case <-e.done:
		return true
	default:
		return false
	}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
