package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// taskSupport is a tool's relation to tasks, with the values of the
// tool-level execution.taskSupport of the tasks design.
type taskSupport string

const (
	supportForbidden taskSupport = "forbidden" // always synchronous
	supportOptional  taskSupport = "optional"  // a task when the client declares the extension
	supportRequired  taskSupport = "required"  // only as a task; -32021 otherwise
)

// fixtureTool is one tool of the fixture: its definition, its synchronous
// handler (also registered with the SDK), and for task-supporting tools how
// a call becomes a task.
type fixtureTool struct {
	tool    *mcp.Tool
	support taskSupport
	handler mcp.ToolHandler
	// newTask returns the body of the task for call, or nil when the tool
	// answers this call inline through handler (an MRTR round before the
	// task exists). An error rejects the call (bad arguments).
	newTask func(call *mcp.CallToolRequest) (RunFunc, error)
}

// fixtureTools are the tools the conformance suite's tasks scenarios drive,
// with the behaviour each scenario's description requires of them.
func fixtureTools() []*fixtureTool {
	return []*fixtureTool{
		greetTool(),
		slowComputeTool(),
		failingJobTool(),
		protocolErrorJobTool(),
		gatheringTool(confirmDelete, supportOptional),
		gatheringTool(multiInput, supportOptional),
		toolWithTask(),
	}
}

// objectSchema is an input schema with the given properties.
func objectSchema(props map[string]any, required ...string) map[string]any {
	s := map[string]any{"type": "object", "properties": props}
	if len(required) > 0 {
		s["required"] = required
	}
	return s
}

// textResult is a one-text-block tool result.
func textResult(format string, args ...any) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf(format, args...)}}}
}

// decodeArgs decodes a call's arguments into v; malformed arguments are
// invalid params.
func decodeArgs(call *mcp.CallToolRequest, v any) error {
	if len(call.Params.Arguments) == 0 {
		return nil
	}
	if err := json.Unmarshal(call.Params.Arguments, v); err != nil {
		return &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("tool %q: arguments: %v", call.Params.Name, err)}
	}
	return nil
}

// syncHandler adapts a task body to the synchronous path: the same work,
// on the request's context, with no way to ask for input.
func syncHandler(newRun func(call *mcp.CallToolRequest) (RunFunc, error)) mcp.ToolHandler {
	return func(ctx context.Context, call *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		run, err := newRun(call)
		if err != nil {
			return nil, err
		}
		return callRecovered(ctx, nil, run)
	}
}

// requiredOnly is the synchronous handler of a tool that runs only as a
// task; the middleware answers such calls first, so it is a safety net.
func requiredOnly(name string) mcp.ToolHandler {
	return func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return nil, missingExtensionError(fmt.Sprintf("tool %q runs only as a task", name))
	}
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// greet is sync-only: "Hello, {name}!".
func greetTool() *fixtureTool {
	return &fixtureTool{
		tool: &mcp.Tool{
			Name:        "greet",
			Description: "Sync-only (taskSupport forbidden): returns Hello, {name}!",
			InputSchema: objectSchema(map[string]any{"name": map[string]any{"type": "string"}}, "name"),
		},
		support: supportForbidden,
		handler: func(_ context.Context, call *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			var args struct {
				Name string `json:"name"`
			}
			if err := decodeArgs(call, &args); err != nil {
				return nil, err
			}
			return textResult("Hello, %s!", args.Name), nil
		},
	}
}

// maxSeconds bounds slow_compute so that a stray call cannot pin a goroutine
// beyond any task's TTL.
const maxSeconds = 600

// slow_compute sleeps `seconds` then returns a result; cancelling the task
// stops the sleep, and the task settles to cancelled.
func slowComputeTool() *fixtureTool {
	newRun := func(call *mcp.CallToolRequest) (RunFunc, error) {
		var args struct {
			Seconds float64 `json:"seconds"`
			Label   string  `json:"label"`
		}
		if err := decodeArgs(call, &args); err != nil {
			return nil, err
		}
		if args.Seconds < 0 || args.Seconds > maxSeconds {
			return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("seconds must be within [0, %d]", maxSeconds)}
		}
		return func(ctx context.Context, _ *Input) (*mcp.CallToolResult, error) {
			if err := sleep(ctx, time.Duration(args.Seconds*float64(time.Second))); err != nil {
				return nil, err
			}
			return textResult("computed %q in %gs", args.Label, args.Seconds), nil
		}, nil
	}
	return &fixtureTool{
		tool: &mcp.Tool{
			Name:        "slow_compute",
			Description: "Task-supporting (optional): sleeps `seconds` seconds, then returns a result naming `label`.",
			InputSchema: objectSchema(map[string]any{
				"seconds": map[string]any{"type": "number", "minimum": 0, "maximum": maxSeconds},
				"label":   map[string]any{"type": "string"},
			}, "seconds"),
		},
		support: supportOptional,
		handler: syncHandler(newRun),
		newTask: newRun,
	}
}

// failing_job runs ~1s then reports a tool execution error: its task
// completes with result.isError. It requires a task (the suite's
// tasks-required-task-error scenario calls it without the extension).
func failingJobTool() *fixtureTool {
	return &fixtureTool{
		tool: &mcp.Tool{
			Name:        "failing_job",
			Description: "Task-required: after ~1s returns a tool execution error (isError).",
			InputSchema: objectSchema(map[string]any{}),
		},
		support: supportRequired,
		handler: requiredOnly("failing_job"),
		newTask: func(*mcp.CallToolRequest) (RunFunc, error) {
			return func(ctx context.Context, _ *Input) (*mcp.CallToolResult, error) {
				if err := sleep(ctx, time.Second); err != nil {
					return nil, err
				}
				res := textResult("failing_job: the job failed (simulated tool execution error)")
				res.IsError = true
				return res, nil
			}, nil
		},
	}
}

// protocol_error_job panics: its task fails with an internal error.
func protocolErrorJobTool() *fixtureTool {
	newRun := func(*mcp.CallToolRequest) (RunFunc, error) {
		return func(context.Context, *Input) (*mcp.CallToolResult, error) {
			panic("protocol_error_job: simulated crash")
		}, nil
	}
	return &fixtureTool{
		tool: &mcp.Tool{
			Name:        "protocol_error_job",
			Description: "Task-supporting (optional): crashes; the task fails with a JSON-RPC internal error.",
			InputSchema: objectSchema(map[string]any{}),
		},
		support: supportOptional,
		handler: syncHandler(newRun),
		newTask: newRun,
	}
}

// gathering describes a tool that asks its client for input, then computes
// its result from the answers. As a task it parks in input_required; called
// synchronously it uses MRTR rounds (input_required results and retries).
type gathering struct {
	tool     *mcp.Tool
	requests func(args map[string]any) mcp.InputRequestMap
	finish   func(args map[string]any, answers mcp.InputResponseMap) *mcp.CallToolResult
}

// gatheringTool makes the fixture tool of g.
func gatheringTool(g gathering, support taskSupport) *fixtureTool {
	return &fixtureTool{
		tool:    g.tool,
		support: support,
		handler: func(_ context.Context, call *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			var args map[string]any
			if err := decodeArgs(call, &args); err != nil {
				return nil, err
			}
			requests := g.requests(args)
			for k := range requests {
				if _, ok := call.Params.InputResponses[k]; !ok {
					return &mcp.CallToolResult{InputRequests: requests}, nil
				}
			}
			return g.finish(args, call.Params.InputResponses), nil
		},
		newTask: func(call *mcp.CallToolRequest) (RunFunc, error) {
			var args map[string]any
			if err := decodeArgs(call, &args); err != nil {
				return nil, err
			}
			return func(ctx context.Context, in *Input) (*mcp.CallToolResult, error) {
				answers, err := in.Ask(ctx, g.requests(args))
				if err != nil {
					return nil, err
				}
				return g.finish(args, answers), nil
			}, nil
		},
	}
}

// elicit is a form-mode elicitation request for one property.
func elicit(message, prop, typ string) *mcp.ElicitParams {
	return &mcp.ElicitParams{
		Mode:            "form",
		Message:         message,
		RequestedSchema: objectSchema(map[string]any{prop: map[string]any{"type": typ}}, prop),
	}
}

// accepted returns the content of an accepted elicitation answer, or nil.
func accepted(answers mcp.InputResponseMap, key string) map[string]any {
	r, ok := answers[key].(*mcp.ElicitResult)
	if !ok || r == nil || r.Action != "accept" {
		return nil
	}
	return r.Content
}

// confirm_delete asks for one confirmation, then "deletes" the file.
var confirmDelete = gathering{
	tool: &mcp.Tool{
		Name:        "confirm_delete",
		Description: "Task-supporting (optional): asks for confirmation (one elicitation/create), then deletes `filename`.",
		InputSchema: objectSchema(map[string]any{"filename": map[string]any{"type": "string"}}, "filename"),
	},
	requests: func(args map[string]any) mcp.InputRequestMap {
		return mcp.InputRequestMap{"confirm": elicit(fmt.Sprintf("Delete %v?", args["filename"]), "confirm", "boolean")}
	},
	finish: func(args map[string]any, answers mcp.InputResponseMap) *mcp.CallToolResult {
		if c := accepted(answers, "confirm"); c != nil && c["confirm"] == true {
			return textResult("deleted %v", args["filename"])
		}
		return textResult("kept %v: deletion not confirmed", args["filename"])
	},
}

// multi_input asks two questions at once, so two input requests are pending
// together (partial fulfillment).
var multiInput = gathering{
	tool: &mcp.Tool{
		Name:        "multi_input",
		Description: "Task-supporting (optional): asks two elicitation/create questions in parallel, then reports both answers.",
		InputSchema: objectSchema(map[string]any{}),
	},
	requests: func(map[string]any) mcp.InputRequestMap {
		return mcp.InputRequestMap{
			"name":    elicit("What is your name?", "name", "string"),
			"confirm": elicit("Proceed?", "confirm", "boolean"),
		}
	},
	finish: func(_ map[string]any, answers mcp.InputResponseMap) *mcp.CallToolResult {
		name, confirm := accepted(answers, "name"), accepted(answers, "confirm")
		return textResult("name=%v confirm=%v", name["name"], confirm["confirm"])
	},
}

// userNameKey is test_tool_with_task's MRTR input request id.
const userNameKey = "user_name"

// test_tool_with_task composes MRTR and tasks: round one answers inline with
// an input_required result asking for user_name; the retry carrying the
// answer becomes a task whose result greets that user.
func toolWithTask() *fixtureTool {
	ask := mcp.InputRequestMap{userNameKey: elicit("What is your name?", "name", "string")}
	return &fixtureTool{
		tool: &mcp.Tool{
			Name:        "test_tool_with_task",
			Description: "Task-required: gathers user_name through an input_required round, then runs as a task greeting that user.",
			InputSchema: objectSchema(map[string]any{}),
		},
		support: supportRequired,
		handler: func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{InputRequests: ask}, nil
		},
		newTask: func(call *mcp.CallToolRequest) (RunFunc, error) {
			if _, answered := call.Params.InputResponses[userNameKey]; !answered {
				return nil, nil
			}
			name, _ := accepted(call.Params.InputResponses, userNameKey)["name"].(string)
			if name == "" {
				return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "inputResponses.user_name: an accepted answer with a name is required"}
			}
			return func(ctx context.Context, _ *Input) (*mcp.CallToolResult, error) {
				if err := sleep(ctx, 200*time.Millisecond); err != nil {
					return nil, err
				}
				return textResult("Hello, %s!", name), nil
			}, nil
		},
	}
}

// errNoInput is what a synchronous body gets if it asks for input: the
// synchronous path has no task to park.
var errNoInput = errors.New("tasks: input requested outside a task")
