package broker

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/mcpgw/mcpgw/broker/upstream"
	"github.com/mcpgw/mcpgw/filter/config"
	"github.com/mcpgw/mcpgw/tests/mcptest"
	"github.com/mcpgw/mcpgw/tests/mcptest/tasks"
)

// statelessPost sends one stateless-era (2026-07-28) request and returns the
// HTTP status and the JSON-RPC message of the answer.
func statelessPost(t *testing.T, url, method, name string, params map[string]any, withTasks bool) (int, gjson.Result) {
	t.Helper()
	caps := map[string]any{}
	if withTasks {
		caps["extensions"] = map[string]any{"io.modelcontextprotocol/tasks": map[string]any{}}
	}
	params = maps.Clone(params)
	if params == nil {
		params = map[string]any{}
	}
	params["_meta"] = map[string]any{
		"io.modelcontextprotocol/protocolVersion":    "2026-07-28",
		"io.modelcontextprotocol/clientInfo":         map[string]any{"name": "t", "version": "1"},
		"io.modelcontextprotocol/clientCapabilities": caps,
	}
	body, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2026-07-28")
	req.Header.Set("Mcp-Method", method)
	if name != "" {
		req.Header.Set("Mcp-Name", name)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		_, msg, _ := strings.Cut(string(data), "data: ")
		data = []byte(strings.TrimSpace(msg))
	}
	return resp.StatusCode, gjson.ParseBytes(data)
}

// A task created on a task-capable backend is polled and cancelled through
// the broker, which also advertises the extension while such a backend is
// there; a backend without the extension gets no tasks requests.
func TestTasksPassThrough(t *testing.T) {
	tasksURL, stop, err := tasks.Serve(t.Context(), "127.0.0.1:0", tasks.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	echo := serveStatelessBackend(t, mcptest.NewEchoServer("echo"))
	h := newHarness(t, testConfig(t,
		config.Server{Name: "echo", URL: echo.URL, Prefix: "echo_", Stateless: true},
		config.Server{Name: "tasks", URL: tasksURL, Prefix: "tasks_", Stateless: true}))
	h.waitState(t, "echo", upstream.StateReady)
	h.waitState(t, "tasks", upstream.StateReady)

	_, disc := statelessPost(t, h.url, "server/discover", "", nil, false)
	if !disc.Get(`result.capabilities.extensions.io\.modelcontextprotocol/tasks`).Exists() {
		t.Fatalf("server/discover does not advertise the tasks extension: %s", disc.Raw)
	}

	// The task is created on the backend (the router sends tools/call there).
	_, created := statelessPost(t, tasksURL, "tools/call", "slow_compute",
		map[string]any{"name": "slow_compute", "arguments": map[string]any{"seconds": 60, "label": "broker"}}, true)
	id := created.Get("result.taskId").String()
	if id == "" {
		t.Fatalf("no task created: %s", created.Raw)
	}
	_, got := statelessPost(t, h.url, "tasks/get", id, map[string]any{"taskId": id}, true)
	if got.Get("result.taskId").String() != id || got.Get("result.status").String() != "working" {
		t.Errorf("tasks/get through the broker: %s", got.Raw)
	}
	_, cancelled := statelessPost(t, h.url, "tasks/cancel", id, map[string]any{"taskId": id}, true)
	if cancelled.Get("error").Exists() {
		t.Errorf("tasks/cancel through the broker: %s", cancelled.Raw)
	}
	_, got = statelessPost(t, h.url, "tasks/get", id, map[string]any{"taskId": id}, true)
	if s := got.Get("result.status").String(); s != "cancelled" {
		t.Errorf("after cancel: status %q (%s)", s, got.Raw)
	}
	// The backend's own answers pass unchanged: unknown task, extension
	// not declared by the client.
	_, unknown := statelessPost(t, h.url, "tasks/get", "nope", map[string]any{"taskId": "nope"}, true)
	if c := unknown.Get("error.code").Int(); c != -32602 {
		t.Errorf("unknown task: code %d (%s), want -32602", c, unknown.Raw)
	}
	_, undeclared := statelessPost(t, h.url, "tasks/get", id, map[string]any{"taskId": id}, false)
	if c := undeclared.Get("error.code").Int(); c != -32021 {
		t.Errorf("undeclared extension: code %d (%s), want -32021", c, undeclared.Raw)
	}

	// Without a task-capable backend the extension is neither advertised
	// nor served.
	h.b.Apply(testConfig(t, config.Server{Name: "echo", URL: echo.URL, Prefix: "echo_", Stateless: true}))
	eventually(t, "tasks backend dropped", func() bool { return len(h.b.taskBackends()) == 0 })
	_, disc = statelessPost(t, h.url, "server/discover", "", nil, false)
	if disc.Get(`result.capabilities.extensions.io\.modelcontextprotocol/tasks`).Exists() {
		t.Errorf("extension still advertised: %s", disc.Raw)
	}
	_, none := statelessPost(t, h.url, "tasks/get", id, map[string]any{"taskId": id}, true)
	if c := none.Get("error.code").Int(); c != -32601 {
		t.Errorf("no task-capable backend: code %d (%s), want -32601", c, none.Raw)
	}
}
