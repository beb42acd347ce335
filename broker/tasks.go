package broker

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/tidwall/gjson"

	"github.com/mcpgw/mcpgw/broker/upstream"
)

// The tasks extension (SEP-2663, io.modelcontextprotocol/tasks) of the
// stateless era.
//
// A task-capable backend may answer a tools/call with a task instead of a
// result; the client then polls tasks/get, answers tasks/update and may send
// tasks/cancel, naming the task by its id (in params.taskId and the
// Mcp-Name header). The router gives the client gateway task ids that name
// the server (filter/router/tasks.go) and routes tasks requests carrying
// one straight to it. A task id the router did not issue (a task created
// through the broker, or a client that made one up) reaches the broker,
// which passes the request, unchanged, to the backends that advertise the
// extension in turn until one knows the task: a backend answers -32602
// (invalid params) for a task id it did not issue. The broker also
// advertises the extension in its server/discover result while any backend
// does.

// tasksExtension is the extension's identifier in capabilities.extensions.
const tasksExtension = "io.modelcontextprotocol/tasks"

// maxTaskMessage bounds a tasks request or answer the broker buffers.
const maxTaskMessage = 1 << 20

// taskHeaders are the request headers a passed-through tasks request keeps:
// what the stateless era defines, nothing of the client's own (cookies,
// credentials meant for the gateway).
var taskHeaders = []string{"Content-Type", "Accept", "Mcp-Protocol-Version", "Mcp-Method", "Mcp-Name"}

// isTaskRequest reports whether r is a stateless-era request of the tasks
// extension, by its Mcp-Method header (which the router has checked
// against the body).
func isTaskRequest(r *http.Request) bool {
	return r.Method == http.MethodPost && strings.HasPrefix(r.Header.Get("Mcp-Method"), "tasks/")
}

// serveTask passes a tasks request to the task-capable backends (see
// above). It reports false, having left r's body readable, when no backend
// advertises the extension: the go-sdk handler then answers it as an
// unknown method.
func (b *Broker) serveTask(w http.ResponseWriter, r *http.Request) bool {
	backends := b.taskBackends()
	if len(backends) == 0 {
		return false
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxTaskMessage+1))
	if err != nil || len(body) > maxTaskMessage {
		http.Error(w, "request body unreadable or too large", http.StatusRequestEntityTooLarge)
		return true
	}
	header := http.Header{}
	for _, k := range taskHeaders {
		if v := r.Header.Values(k); len(v) > 0 {
			header[k] = v
		}
	}
	var last *taskAnswer
	for _, up := range backends {
		a, err := forwardTask(r.Context(), up, header, body)
		if err != nil {
			b.log.Warn("tasks request to backend failed", "server", up.Server().Name, "error", err)
			continue
		}
		last = a
		if !a.unknownTask() {
			break
		}
	}
	if last == nil {
		r.Body = io.NopCloser(bytes.NewReader(body)) // for the id
		writeJSONRPCError(w, r, http.StatusBadGateway,
			&jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "no task-capable server answered"})
		return true
	}
	for _, k := range []string{"Content-Type", "Cache-Control"} {
		if v := last.header.Get(k); v != "" {
			w.Header().Set(k, v)
		}
	}
	w.WriteHeader(last.status)
	_, _ = w.Write(last.body)
	return true
}

// taskBackends returns the ready backends that advertise the tasks
// extension, in name order (so a task id reaches them in a stable order).
func (b *Broker) taskBackends() []*upstream.Upstream {
	b.mu.Lock()
	var ups []*upstream.Upstream
	for _, be := range b.backends {
		ups = append(ups, be.up)
	}
	b.mu.Unlock()
	ups = slices.DeleteFunc(ups, func(u *upstream.Upstream) bool { return !u.HasExtension(tasksExtension) })
	slices.SortFunc(ups, func(x, y *upstream.Upstream) int { return strings.Compare(x.Server().Name, y.Server().Name) })
	return ups
}

// taskAnswer is a backend's buffered answer to a tasks request.
type taskAnswer struct {
	status int
	header http.Header
	body   []byte
}

// unknownTask reports whether the answer is the JSON-RPC error a server
// gives for a task id it does not know (-32602, invalid params).
func (a *taskAnswer) unknownTask() bool {
	if !strings.HasPrefix(a.header.Get("Content-Type"), "application/json") {
		return false
	}
	return gjson.GetBytes(a.body, "error.code").Int() == -32602
}

func forwardTask(ctx context.Context, up *upstream.Upstream, header http.Header, body []byte) (*taskAnswer, error) {
	resp, err := up.Post(ctx, header, body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxTaskMessage+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxTaskMessage {
		return nil, errors.New("answer too large")
	}
	return &taskAnswer{status: resp.StatusCode, header: resp.Header, body: data}, nil
}

// advertiseTasks is a receiving middleware that adds the tasks extension to
// the capabilities of a server/discover result while a backend has it.
func (b *Broker) advertiseTasks(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		res, err := next(ctx, method, req)
		d, ok := res.(*mcp.DiscoverResult)
		if err != nil || !ok || d.Capabilities == nil || len(b.taskBackends()) == 0 {
			return res, err
		}
		caps := *d.Capabilities
		caps.Extensions = map[string]any{tasksExtension: map[string]any{}}
		for k, v := range d.Capabilities.Extensions {
			caps.Extensions[k] = v
		}
		d.Capabilities = &caps
		return d, nil
	}
}
