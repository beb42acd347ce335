// Package mcptest provides small example MCP servers built with the go-sdk,
// shared by the whole project: the local stack, end-to-end tests and
// benchmarks put them behind the gateway to have real backends to talk to.
//
// Every server answers the tool "whoami" with its own name, so a caller can
// prove which backend a routed call reached.
package mcptest

import (
	"context"
	"fmt"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Version is the implementation version the example servers report.
const Version = "v0.1.0"

// PiURI is the URI of the math server's one resource.
const PiURI = "math://constants/pi"

// PiText is the content of the resource at PiURI.
const PiText = "3.141592653589793"

// EchoInput is the argument of the echo tool.
type EchoInput struct {
	Text string `json:"text" jsonschema:"the text to send back"`
}

// EchoOutput is the structured result of the echo tool.
type EchoOutput struct {
	Text string `json:"text"`
}

// AddInput is the argument of the add tool.
type AddInput struct {
	A float64 `json:"a" jsonschema:"first addend"`
	B float64 `json:"b" jsonschema:"second addend"`
}

// AddOutput is the structured result of the add tool.
type AddOutput struct {
	Sum float64 `json:"sum"`
}

// WhoamiOutput is the structured result of the whoami tool.
type WhoamiOutput struct {
	Name string `json:"name"`
}

// NewEchoServer returns a server with the tools "echo" (returns its "text"
// argument; used with 1 KiB arguments by the latency benchmarks) and
// "whoami", and the prompt "greet".
func NewEchoServer(name string) *mcp.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: name, Version: Version}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: "echo", Description: "Returns the given text."},
		func(_ context.Context, _ *mcp.CallToolRequest, in EchoInput) (*mcp.CallToolResult, EchoOutput, error) {
			return textResult(in.Text), EchoOutput(in), nil
		})
	addWhoami(srv, name)
	srv.AddPrompt(&mcp.Prompt{
		Name:        "greet",
		Description: "Greets someone.",
		Arguments:   []*mcp.PromptArgument{{Name: "who", Required: true}},
	}, func(_ context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		return &mcp.GetPromptResult{
			Description: "greeting from " + name,
			Messages: []*mcp.PromptMessage{{
				Role:    "user",
				Content: &mcp.TextContent{Text: "Say hello to " + req.Params.Arguments["who"]},
			}},
		}, nil
	})
	return srv
}

// NewMathServer returns a server with the tools "add" (sums "a" and "b")
// and "whoami", and the resource PiURI.
func NewMathServer(name string) *mcp.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: name, Version: Version}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: "add", Description: "Adds two numbers."},
		func(_ context.Context, _ *mcp.CallToolRequest, in AddInput) (*mcp.CallToolResult, AddOutput, error) {
			sum := in.A + in.B
			return textResult(fmt.Sprint(sum)), AddOutput{Sum: sum}, nil
		})
	addWhoami(srv, name)
	srv.AddResource(&mcp.Resource{
		URI:      PiURI,
		Name:     "pi",
		MIMEType: "text/plain",
	}, func(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{
			{URI: req.Params.URI, MIMEType: "text/plain", Text: PiText},
		}}, nil
	})
	return srv
}

// AddStaticTool adds (or replaces) a tool without arguments that answers
// text. Adding or removing a tool (with srv.RemoveTools) at run time makes
// the go-sdk send notifications/tools/list_changed to connected clients,
// which is how tests exercise list_changed handling.
func AddStaticTool(srv *mcp.Server, name, text string) {
	srv.AddTool(&mcp.Tool{
		Name:        name,
		Description: "Returns a fixed text.",
		InputSchema: map[string]any{"type": "object"},
	}, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return textResult(text), nil
	})
}

// AddAskTool adds the tool "ask": during the call it asks the client for an
// "answer" (elicitation/create, with the server's name as the message) and
// returns "<server>: <answer>". It exercises server-to-client requests,
// whose answers come back as separate POSTs.
func AddAskTool(srv *mcp.Server, name string) {
	mcp.AddTool(srv, &mcp.Tool{Name: "ask", Description: "Asks the client a question."},
		func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			// An answer that never comes (lost by a gateway) must not keep
			// the session, and so the server's shutdown, waiting forever.
			ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			res, err := req.Session.Elicit(ctx, &mcp.ElicitParams{
				Message: name,
				RequestedSchema: map[string]any{
					"type":       "object",
					"properties": map[string]any{"answer": map[string]any{"type": "string"}},
				},
			})
			if err != nil {
				return nil, nil, fmt.Errorf("elicit: %w", err)
			}
			if res.Action != "accept" {
				return textResult(name + ": " + res.Action), nil, nil
			}
			return textResult(fmt.Sprintf("%s: %v", name, res.Content["answer"])), nil, nil
		})
}

func addWhoami(srv *mcp.Server, name string) {
	mcp.AddTool(srv, &mcp.Tool{Name: "whoami", Description: "Returns the server's name."},
		func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, WhoamiOutput, error) {
			return textResult(name), WhoamiOutput{Name: name}, nil
		})
}

func textResult(text string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}
}
