package tasks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// ExtensionID is the tasks extension's identifier, under which servers
// advertise it (capabilities.extensions) and clients declare it
// (_meta["io.modelcontextprotocol/clientCapabilities"].extensions).
const ExtensionID = "io.modelcontextprotocol/tasks"

// The extension's methods. tasks/result and tasks/list of the 2025-11-25
// experimental tasks are deliberately absent: SEP-2663 removed them and the
// SDK answers them with -32601.
const (
	MethodGet    = "tasks/get"
	MethodUpdate = "tasks/update"
	MethodCancel = "tasks/cancel"
)

// Options configure a Server. Zero values select the defaults.
type Options struct {
	// TTL is how long a task stays readable after its creation (ttlMs).
	// Default 10 minutes.
	TTL time.Duration
	// PollInterval is the polling interval advised to clients
	// (pollIntervalMs). Default 250ms.
	PollInterval time.Duration
}

// Server is the tasks fixture: an http.Handler serving one MCP endpoint (at
// whatever path it is mounted), backed by a Store. Close it to stop its tasks.
type Server struct {
	mcp     *mcp.Server
	store   *Store
	tools   map[string]*fixtureTool
	handler http.Handler
}

// New returns the fixture server with the fixture tools registered.
func New(opts Options) *Server {
	if opts.TTL <= 0 {
		opts.TTL = 10 * time.Minute
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 250 * time.Millisecond
	}
	s := &Server{store: NewStore(opts.TTL, opts.PollInterval), tools: map[string]*fixtureTool{}}
	s.mcp = mcp.NewServer(&mcp.Implementation{Name: "mcpgw-tasks-fixture", Version: "0.1.0"}, &mcp.ServerOptions{
		Capabilities: &mcp.ServerCapabilities{
			Tools:      &mcp.ToolCapabilities{},
			Extensions: map[string]any{ExtensionID: map[string]any{}},
		},
	})
	for _, ft := range fixtureTools() {
		s.tools[ft.tool.Name] = ft
		s.mcp.AddTool(ft.tool, ft.handler)
	}
	// Added after NewServer's own middleware, so it runs first: a task
	// call never reaches the SDK's synchronous tool dispatch.
	s.mcp.AddReceivingMiddleware(s.createTasks)
	mustAdd(mcp.AddReceivingCustomMethod(s.mcp, MethodGet, s.get))
	mustAdd(mcp.AddReceivingCustomMethod(s.mcp, MethodUpdate, s.update))
	mustAdd(mcp.AddReceivingCustomMethod(s.mcp, MethodCancel, s.cancel))
	sdk := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s.mcp },
		&mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true})
	s.handler = checkTaskIDHeader(sdk)
	return s
}

// mustAdd panics on a registration error, which only a programming error
// (a method name shadowing a standard one) can cause.
func mustAdd(err error) {
	if err != nil {
		panic(err)
	}
}

// ServeHTTP serves the MCP endpoint.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Store is the server's task store.
func (s *Server) Store() *Store { return s.store }

// Close cancels all tasks and waits for them. In-flight HTTP requests are
// the caller's http.Server's business.
func (s *Server) Close() { s.store.Close() }

// createTasks is the receiving middleware that implements server-directed
// task creation for tools/call: a task-supporting tool called by a client
// that declared the extension on this request gets a CreateTaskResult; the
// same call without the extension runs synchronously, or fails with -32021
// for a tool that requires a task. Other requests pass through.
func (s *Server) createTasks(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		call, ok := req.(*mcp.CallToolRequest)
		if method != "tools/call" || !ok {
			return next(ctx, method, req)
		}
		ft := s.tools[call.Params.Name]
		if ft == nil || ft.support == supportForbidden {
			return next(ctx, method, req)
		}
		if !declaresExtension(call.Params.GetMeta()) {
			if ft.support == supportRequired {
				return nil, missingExtensionError(fmt.Sprintf("tool %q runs only as a task", ft.tool.Name))
			}
			return next(ctx, method, req)
		}
		run, err := ft.newTask(call)
		if err != nil {
			return nil, err
		}
		if run == nil { // the tool answers this round inline (MRTR)
			return next(ctx, method, req)
		}
		t, err := s.store.Start(run)
		if err != nil {
			return nil, err
		}
		return &createTaskResult{ResultType: "task", Task: t}, nil
	}
}

// Wire results. Each sets resultType itself: the SDK only fills it in for
// its own result types.
type (
	// createTaskResult is SEP-2663's CreateTaskResult: Result & Task, flat.
	createTaskResult struct {
		mcp.ResultBase
		ResultType string `json:"resultType"`
		Task
	}
	// getTaskResult is the tasks/get result: Result & DetailedTask.
	getTaskResult struct {
		mcp.ResultBase
		ResultType string `json:"resultType"`
		DetailedTask
	}
	// ackResult is the empty acknowledgement of tasks/update and
	// tasks/cancel: the new state is observed with tasks/get.
	ackResult struct {
		mcp.ResultBase
		ResultType string `json:"resultType"`
	}
)

// Params of the extension's methods.
type (
	taskParams struct {
		mcp.ParamsBase
		TaskID string `json:"taskId"`
	}
	updateParams struct {
		mcp.ParamsBase
		TaskID string `json:"taskId"`
		// Raw, so that a response to no pending request is ignored rather
		// than rejected for a shape the SDK does not recognize.
		InputResponses map[string]json.RawMessage `json:"inputResponses"`
	}
)

func (s *Server) get(_ context.Context, _ *mcp.ServerSession, p *taskParams) (*getTaskResult, error) {
	if err := checkTaskRequest(p.GetMeta(), p.TaskID); err != nil {
		return nil, err
	}
	d, err := s.store.Get(p.TaskID)
	if err != nil {
		return nil, storeError(err, p.TaskID)
	}
	return &getTaskResult{ResultType: "complete", DetailedTask: d}, nil
}

func (s *Server) update(_ context.Context, _ *mcp.ServerSession, p *updateParams) (*ackResult, error) {
	if err := checkTaskRequest(p.GetMeta(), p.TaskID); err != nil {
		return nil, err
	}
	if p.InputResponses == nil {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "tasks/update: inputResponses is required"}
	}
	if err := s.store.Update(p.TaskID, p.InputResponses); err != nil {
		return nil, storeError(err, p.TaskID)
	}
	return &ackResult{ResultType: "complete"}, nil
}

func (s *Server) cancel(_ context.Context, _ *mcp.ServerSession, p *taskParams) (*ackResult, error) {
	if err := checkTaskRequest(p.GetMeta(), p.TaskID); err != nil {
		return nil, err
	}
	if err := s.store.Cancel(p.TaskID); err != nil {
		return nil, storeError(err, p.TaskID)
	}
	return &ackResult{ResultType: "complete"}, nil
}

// checkTaskRequest gates the task methods on the extension (SEP-2663: a
// client that did not declare it gets -32021) and requires a task id.
func checkTaskRequest(meta map[string]any, taskID string) error {
	if !declaresExtension(meta) {
		return missingExtensionError("the tasks methods require the extension")
	}
	if taskID == "" {
		return &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "taskId is required"}
	}
	return nil
}

// storeError maps a Store error to its JSON-RPC error: an unknown task id is
// invalid params (-32602), as SEP-2663 specifies.
func storeError(err error, taskID string) error {
	if errors.Is(err, ErrNotFound) {
		return &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("unknown task %q", taskID)}
	}
	var rpcErr *jsonrpc.Error
	if errors.As(err, &rpcErr) {
		return rpcErr
	}
	return &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: err.Error()}
}

// declaresExtension reports whether a request's _meta declares the tasks
// extension among the client capabilities. In the stateless revision this is
// per request: there is no session to remember it.
func declaresExtension(meta map[string]any) bool {
	caps, ok := meta[mcp.MetaKeyClientCapabilities]
	if !ok {
		return false
	}
	// The SDK hands _meta over as decoded JSON; a round trip also accepts
	// a typed value placed there in-process.
	data, err := json.Marshal(caps)
	if err != nil {
		return false
	}
	var c struct {
		Extensions map[string]json.RawMessage `json:"extensions"`
	}
	if json.Unmarshal(data, &c) != nil {
		return false
	}
	_, ok = c.Extensions[ExtensionID]
	return ok
}

// missingExtensionError is SEP-2575's MissingRequiredClientCapability error
// naming the tasks extension (the SDK answers it with HTTP 400).
func missingExtensionError(why string) error {
	// Not mcp.MissingRequiredClientCapabilityData: its ClientCapabilities
	// always marshals "roots", which this server does not require.
	data, _ := json.Marshal(map[string]any{
		"requiredCapabilities": map[string]any{"extensions": map[string]any{ExtensionID: map[string]any{}}},
	})
	return &jsonrpc.Error{
		Code:    mcp.CodeMissingRequiredClientCapabilities,
		Message: fmt.Sprintf("missing required client capability: extension %s (%s)", ExtensionID, why),
		Data:    data,
	}
}

// maxBody bounds the request body checkTaskIDHeader reads; larger bodies are
// left for the SDK to judge.
const maxBody = 4 << 20

// headerMismatch is SEP-2243's HeaderMismatch error code.
const headerMismatch = -32020

// checkTaskIDHeader validates the Mcp-Name routing header of the tasks
// methods, which SEP-2663 adds to SEP-2243's list: tasks/get, tasks/update
// and tasks/cancel carry Mcp-Name = params.taskId, and a server that reads
// the body rejects a missing or different value with HTTP 400 and -32020.
// The SDK validates Mcp-Method, and Mcp-Name for the core methods, itself.
func checkTaskIDHeader(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("Mcp-Protocol-Version") < "2026-07-28" {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
		r.Body.Close()
		if err != nil {
			http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		if len(body) <= maxBody {
			if id, msg, bad := taskIDMismatch(r.Header, body); bad {
				writeRPCError(w, http.StatusBadRequest, id, &jsonrpc.Error{Code: headerMismatch, Message: msg})
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// taskIDMismatch checks one JSON-RPC request body against its Mcp-Name
// header; it reports the request id and why when a tasks method's header is
// missing or differs from params.taskId. Bodies it cannot parse are the
// SDK's to reject.
func taskIDMismatch(h http.Header, body []byte) (id json.RawMessage, msg string, bad bool) {
	var req struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
		Params struct {
			TaskID *string `json:"taskId"`
		} `json:"params"`
	}
	if json.Unmarshal(body, &req) != nil {
		return nil, "", false
	}
	switch req.Method {
	case MethodGet, MethodUpdate, MethodCancel:
	default:
		return nil, "", false
	}
	if req.Params.TaskID == nil {
		return nil, "", false // invalid params, reported by the method
	}
	// net/http already strips the optional whitespace around field values.
	name, present := h["Mcp-Name"]
	switch {
	case !present || len(name) == 0:
		return req.ID, fmt.Sprintf("missing required Mcp-Name header for method %q", req.Method), true
	case strings.TrimSpace(name[0]) != *req.Params.TaskID:
		return req.ID, fmt.Sprintf("header mismatch: Mcp-Name header value %q does not match params.taskId %q", name[0], *req.Params.TaskID), true
	}
	return nil, "", false
}

// writeRPCError writes a JSON-RPC error response with the given HTTP status.
func writeRPCError(w http.ResponseWriter, status int, id json.RawMessage, e *jsonrpc.Error) {
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	resp, _ := json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   *jsonrpc.Error  `json:"error"`
	}{"2.0", id, e})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(resp)
}
