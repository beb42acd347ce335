package fakehost

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Host is a running fake Envoy with the shared object loaded. Its methods
// fail the test on a protocol error.
type Host struct {
	t   testing.TB
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
	mu  sync.Mutex
}

// Start runs the fake Envoy (see Build) and loads so; it stops with the test.
func Start(t testing.TB, host, so string) *Host {
	t.Helper()
	cmd := exec.Command(host)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &Host{t: t, cmd: cmd, in: in, out: bufio.NewReaderSize(out, 1<<16)}
	t.Cleanup(func() {
		h.call("quit")
		in.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("fake Envoy exited: %v\n%s", err, stderr.String())
		}
	})
	if got := h.call("load", so); len(got) != 1 || got[0] != "ok" {
		t.Fatalf("loading %s: %q", so, got)
	}
	return h
}

// call sends one command and returns its answer's lines.
func (h *Host) call(args ...string) []string {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, err := fmt.Fprintln(h.in, strings.Join(args, " ")); err != nil {
		h.t.Fatalf("fake Envoy: %s: %v", args[0], err)
	}
	var lines []string
	for {
		line, err := h.out.ReadString('\n')
		if err != nil {
			if args[0] == "quit" {
				return lines
			}
			h.t.Fatalf("fake Envoy died during %q: %v (lines %q)", args, err, lines)
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "." {
			return lines
		}
		if strings.HasPrefix(line, "err ") {
			h.t.Fatalf("fake Envoy: %q: %s", args, line)
		}
		lines = append(lines, line)
	}
}

// one sends a command whose answer is a single line "<tag> <fields...>".
func (h *Host) one(tag string, args ...string) []string {
	h.t.Helper()
	lines := h.call(args...)
	if len(lines) != 1 || !strings.HasPrefix(lines[0], tag+" ") {
		h.t.Fatalf("fake Envoy: %q answered %q, want %q ...", args, lines, tag)
	}
	return strings.Fields(lines[0])[1:]
}

func hexOf(s string) string {
	if s == "" {
		return "-"
	}
	return hex.EncodeToString([]byte(s))
}

func unhex(s string) string {
	if s == "-" {
		return ""
	}
	b, _ := hex.DecodeString(s)
	return string(b)
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

// Config is a golang filter config Envoy created.
type Config struct {
	h    *Host
	id   string
	GoID uint64 // the shim's config id; 0: the plugin rejected it
}

// NewConfig creates a filter config for plugin with pluginConfig, a
// serialized google.protobuf.Any (the Config.plugin_config field), as a
// listener's golang filter (route false) or as a per-route config.
func (h *Host) NewConfig(plugin string, pluginConfig []byte, route bool) *Config {
	h.t.Helper()
	r := "0"
	if route {
		r = "1"
	}
	f := h.one("config", "config", plugin, hexOf(string(pluginConfig)), r)
	id, _ := strconv.ParseUint(f[1], 10, 64)
	return &Config{h: h, id: f[0], GoID: id}
}

// Destroy destroys the config, as Envoy does after its last stream.
func (c *Config) Destroy() { c.h.call("config_destroy", c.id) }

// Counter returns the value of the counter the plugin defined as name.
func (c *Config) Counter(name string) (uint64, bool) {
	f := c.h.one("counter", "counter", c.id, hexOf(name))
	v, _ := strconv.ParseUint(f[1], 10, 64)
	return v, f[0] == "1"
}

// Burst runs n requests with body on each of threads worker threads at once
// (each POST /mcp, expected to continue with x-mcp-method method) and
// returns how many went as expected.
func (c *Config) Burst(threads, n int, body, method string) (ok, fail int) {
	f := c.h.one("burst", "burst", c.id, strconv.Itoa(threads), strconv.Itoa(n), hexOf(body), hexOf(method))
	return atoi(f[0]), atoi(f[1])
}

// Logs returns the lines the plugin logged so far, as "<level> <message>".
func (h *Host) Logs() []string {
	f := h.one("logs", "logs")
	return strings.Split(strings.TrimSuffix(unhex(f[0]), "\n"), "\n")
}

// SetLogLevel sets the level envoyGoFilterLogLevel reports (0 trace ... 4
// error); the shim reads it once a second.
func (h *Host) SetLogLevel(l int) { h.call("loglevel", strconv.Itoa(l)) }

// Await timeout, for streams left running.
const awaitTimeout = 10 * time.Second
