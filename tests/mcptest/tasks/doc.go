// Package tasks is an MCP server fixture for the tasks extension
// (io.modelcontextprotocol/tasks, SEP-2663) on the stateless protocol
// revision 2026-07-28: the backend the conformance suite's tasks-* scenarios
// run against, directly or through the gateway.
//
// # Design
//
// It is built on the go-sdk (v1.8.0), which already serves the 2026-07-28
// revision statelessly: server/discover, _meta validation, Mcp-Method and
// Mcp-Name checks for the core methods, -32022 for unsupported versions,
// MRTR (input_required results) and the SEP-2575 HTTP status of errors. The
// extension fits on top without forking the SDK:
//
//   - capabilities.extensions["io.modelcontextprotocol/tasks"] is advertised
//     through ServerOptions.Capabilities;
//   - tasks/get, tasks/update and tasks/cancel are custom methods
//     (mcp.AddReceivingCustomMethod) returning their own result types;
//     tasks/result and tasks/list, removed by SEP-2663, stay unknown (-32601);
//   - server-directed task creation is a receiving middleware on tools/call:
//     for a task-supporting tool, when the request's
//     _meta["io.modelcontextprotocol/clientCapabilities"].extensions declares
//     the extension, it starts a task and returns a flat CreateTaskResult
//     (resultType "task"); without the declaration an optional tool runs
//     synchronously and a required one fails with -32021 naming the
//     extension in data.requiredCapabilities;
//   - the one thing the SDK cannot know is that SEP-2663 makes Mcp-Name
//     (= params.taskId) required on the tasks methods; a small HTTP wrapper
//     checks it (HTTP 400, -32020) before the SDK sees the request.
//
// Tasks live in a Store: in memory, one goroutine per running task,
// cancelled by tasks/cancel, by the TTL (ttlMs, counted from creation) or by
// Close, which waits for them. A task asking for input (Input.Ask) parks in
// input_required with its inputRequests on tasks/get until tasks/update has
// answered every key.
//
// The fixture tools are those the suite's tasks scenarios require: greet
// (sync only), slow_compute, failing_job (task required), protocol_error_job,
// confirm_delete, multi_input and test_tool_with_task (task required, one
// MRTR round before the task).
package tasks
