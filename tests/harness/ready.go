package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/mcpgw/mcpgw/broker"
	"github.com/mcpgw/mcpgw/broker/upstream"
	"github.com/mcpgw/mcpgw/filter/config"
)

// waitServing waits until the stack serves, each step bounded by
// o.ReadyTimeout (Envoy's /ready was awaited by StartEnvoy):
//
//   - the broker has its config (GET /healthz: 200);
//   - Envoy's listener reaches it: a GET of /mcp without a session is
//     answered by the broker's MCP handler (400, "GET requires an
//     Mcp-Session-Id header"), not by Envoy (503: no broker to connect to);
//   - with o.WaitServers, the broker reports every server of the config
//     ready: its own MCP session with each backend is up, so their tools
//     are listed.
//
// Envoy's path to a backend has nothing to wait for: its cluster is
// ORIGINAL_DST (a connection per routed call, to the address the router
// names, no health checks), and only a routed call, which opens a backend
// session, could exercise it. A backend that serves MCP to the broker
// serves it to Envoy. It gives up early when the broker or Envoy exits.
func (s *Stack) waitServing(ctx context.Context, o StackOptions) error {
	timeout := o.ReadyTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	brokerURL := "http://" + s.BrokerAddr
	steps := []struct {
		what  string
		ready func() (bool, string)
	}{
		{"broker /healthz", func() (bool, string) {
			code, body, err := get(brokerURL+"/healthz", "")
			return err == nil && code == http.StatusOK, describe(code, body, err)
		}},
		{"the broker through Envoy", func() (bool, string) {
			code, body, err := get(s.Envoy.URL(), "text/event-stream")
			return err == nil && code == http.StatusBadRequest && strings.Contains(body, "Mcp-Session-Id"),
				describe(code, body, err)
		}},
	}
	if o.WaitServers {
		c, err := config.Load(o.ConfigPath)
		if err != nil {
			return err
		}
		steps = append(steps, struct {
			what  string
			ready func() (bool, string)
		}{"every backend", func() (bool, string) { return serversReady(brokerURL, c) }})
	}
	for _, step := range steps {
		if err := s.poll(ctx, timeout, step.what, step.ready); err != nil {
			return err
		}
	}
	return nil
}

// poll calls ready until it reports true, the timeout passes, ctx is done
// or a process of the stack exits.
func (s *Stack) poll(ctx context.Context, timeout time.Duration, what string, ready func() (bool, string)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, state := ready()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waiting for %s: not ready after %s (last: %s)", what, timeout, state)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.exited():
			return fmt.Errorf("waiting for %s: the broker exited: %v", what, s.brokerErr)
		case <-s.Envoy.Done():
			return fmt.Errorf("waiting for %s: envoy exited", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// serversReady reports whether the broker's /status lists every server of
// c, each ready.
func serversReady(brokerURL string, c *config.Config) (bool, string) {
	code, body, err := get(brokerURL+"/status", "")
	if err != nil || code != http.StatusOK {
		return false, describe(code, body, err)
	}
	var st broker.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		return false, err.Error()
	}
	state := map[string]broker.ServerStatus{}
	for _, srv := range st.Servers {
		state[srv.Name] = srv
	}
	for _, srv := range c.Servers {
		if s := state[srv.Name]; s.State != upstream.StateReady {
			return false, fmt.Sprintf("server %q is %q (%s)", srv.Name, s.State, s.LastError)
		}
	}
	return true, ""
}

// probeClient keeps no connection open: a probe leaves nothing behind.
var probeClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func get(url, accept string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := probeClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(body), err
}

func describe(code int, body string, err error) string {
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("HTTP %d %q", code, strings.TrimSpace(body))
}
