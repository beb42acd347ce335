package router

import (
	"bytes"
	"unsafe"

	"github.com/tidwall/gjson"
)

// Tasks (the stateless era's tasks extension, SEP-2663).
//
// A task-capable backend may answer a routed tools/call with a task; the
// client then names the task by its id in tasks/get, tasks/update and
// tasks/cancel (params.taskId, and the Mcp-Name header). A backend's task
// id does not say which server issued it, so the router gives the client a
// gateway task id instead, in the same format as relay ids (relay.go):
// "mcpgw:<len>:<server>s<backend task id>". It rewrites result.taskId in
// the responses of routed stateless calls (JSON or SSE) into one, and
// routes a tasks request carrying one to that server with the backend's id
// restored in the body and in Mcp-Name; the tasks request's own response
// gets the gateway id back. A task id of any other form goes to the broker
// (broker/tasks.go), which asks the task-capable backends.

// tasksExtension is the extension's name in capabilities.extensions; a
// stateless request declares it in _meta to accept a task as an answer.
const tasksExtension = "io.modelcontextprotocol/tasks"

// isTaskMethod reports whether method is one the router routes by task id.
func isTaskMethod(method string) bool {
	return method == "tasks/get" || method == "tasks/update" || method == "tasks/cancel"
}

// routeTask decides a stateless-era tasks request carrying taskID
// (params.taskId).
func (s *Stream) routeTask(method, json string, taskID gjson.Result) Action {
	s.method = internMethod(method)
	if taskID.Type != gjson.String || s.mcpName != taskID.Str {
		// SEP-2663: Mcp-Name carries the task id and must be the body's.
		return s.rejectBody(RejectHeaderMismatch)
	}
	name, kind, original, ok := parseRelayID(taskID.Str)
	srv := s.t.byName[name]
	if !ok || kind != 's' || srv == nil || !srv.Stateless || s.noVirtual {
		return s.forward(s.method)
	}
	bp := bodyPool.Get().(*[]byte)
	b := append((*bp)[:0], json[:taskID.Index]...)
	start := len(b) + 1
	b, verbatim := appendJSONString(b, original)
	b = append(b, json[taskID.Index+len(taskID.Raw):]...)
	*bp = b
	s.body = bp
	s.server, s.routed, s.toolName = srv, true, ""
	// original may alias the request body, which goes away; escaped, it
	// is a substring of gjson's own unescaped copy.
	s.taskID = original
	if verbatim {
		s.taskID = unsafe.String(&b[start], len(original))
	}
	s.r.Metrics.TasksRouted.Add(1)
	return s.routeNow()
}

// taskIDSpan finds the task id a response message carries (result.taskId,
// a string) and returns its offsets in data.
func taskIDSpan(data []byte) (start, end int, v idVerdict) {
	if !bytes.Contains(data, []byte(`"taskId"`)) {
		return 0, 0, idNone
	}
	m, valid := scanMessage(data)
	switch {
	case !valid || m.kind != '{':
		return 0, 0, idNone
	case m.ambiguous:
		return 0, 0, idRefuse
	case m.method.Exists():
		return 0, 0, idNone
	}
	r := m.get(memberResultTaskID)
	if r.Type != gjson.String {
		return 0, 0, idNone
	}
	return r.Index, r.Index + len(r.Raw), idRewrite
}
