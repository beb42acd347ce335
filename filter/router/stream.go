package router

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
	"unsafe"

	"github.com/tidwall/gjson"

	"github.com/mcpgw/mcpgw/filter/config"
	"github.com/mcpgw/mcpgw/filter/sessionid"
)

// RequestHeaders is what the router needs from the request headers. Strings
// may alias host memory that is valid only during the call.
type RequestHeaders struct {
	Method          string // :method
	ContentType     string
	ContentLength   int64 // -1 when absent
	SessionID       string
	ProtocolVersion string
	// Path is :path; under config.EndpointPath + "/" it selects a virtual
	// server (config.VirtualServerFromPath).
	Path string
	// Origin is the Origin header ("" when absent). A present Origin that
	// the config does not allow is refused (RejectOrigin).
	Origin string
	// MCPMethod and MCPName are the Mcp-Method and Mcp-Name headers of the
	// stateless era (2026-07-28); "" when absent.
	MCPMethod string
	MCPName   string
	// LastEventID is the Last-Event-ID header of a GET resuming an SSE
	// stream ("" when absent).
	LastEventID string
	// EndOfStream is true when the request has no body.
	EndOfStream bool
}

// HeadersAction tells the adapter what to do after the request headers.
type HeadersAction uint8

const (
	// HeadersContinue: let the request through unchanged (it goes to the
	// broker); internal headers must still have been removed.
	HeadersContinue HeadersAction = iota
	// HeadersBuffer: buffer the whole body, then call Stream.RequestBody.
	HeadersBuffer
	// HeadersReply: send Stream.Reply() instead of forwarding.
	HeadersReply
	// HeadersRoute: the request is routed on its headers alone (the
	// stateless era's fast path, fastpath.go): apply headers
	// (ApplyRequest), clear the route cache so Envoy re-picks the route,
	// and let the body stream through unbuffered.
	HeadersRoute
)

// Action tells the adapter what to do with a complete request.
type Action uint8

const (
	// Forward: apply headers (ApplyRequest) and let the request go to the
	// broker.
	Forward Action = iota
	// Route: apply headers and the new body, clear the route cache so Envoy
	// re-picks the route, and continue.
	Route
	// Reply: send Stream.Reply() and stop.
	Reply
	// OpenSession: a backend session must be opened first. Call
	// Stream.OpenSession on a goroutine (it does network I/O), then come back
	// to the host's thread and act on its result.
	OpenSession
)

// HeaderWriter is the adapter's view of a mutable header map.
type HeaderWriter interface {
	Set(name, value string)
	Remove(name string)
}

// maxIDLen bounds the JSON-RPC id kept for error replies; longer ids are
// kept on the heap.
const maxIDLen = 64

// Stream is the router's state for one HTTP request/response exchange.
// Adapters embed it in their per-stream object; the zero value is not
// usable, start with Router.NewStream or Stream.Init.
type Stream struct {
	r         *Router
	t         *table
	rejection Rejection
	action    Action
	routed    bool

	gateway         string       // client's gateway session (owned copy)
	protocolVersion string       // owned copy
	session         sessionState // the verdict on gateway (checkSession)
	// stateless is set for a request of the stateless era (2026-07-28 or
	// later per MCP-Protocol-Version): no gateway session, and mcpMethod
	// and mcpName (owned copies of its headers) must match the body.
	stateless bool
	mcpMethod string
	mcpName   string

	method   string // JSON-RPC method; owned or a constant
	server   *Server
	toolName string // unprefixed name; owned after OpenSession
	// virtual is the virtual server the request's path selects (nil: the
	// whole gateway); noVirtual is set when it selects one the config
	// does not have.
	virtual   *virtualServer
	noVirtual bool
	backend   string // backend session id in use
	// sse rewrites the ids of the requests a backend sends the client on
	// a routed call's SSE response (relay.go), or task ids (tasks.go).
	sse eventStream
	// taskID is the backend's task id a tasks request is routed with.
	taskID string
	// resumeID is the backend's event id a GET resumes its stream from
	// (resume.go).
	resumeID string
	// mayCreateTask: the answer to this stateless tools/call may carry a
	// task id to rewrite (tasks.go).
	mayCreateTask bool
	// replayBody is the body a session-era call went upstream with, kept
	// (pooled) to replay it after a lost backend session when there is no
	// rewritten body; replayed and answer are the replay's (replay.go).
	replayBody *[]byte
	replayed   bool
	answer     answer

	// clientInit is the client context of an initialize forwarded to the
	// broker, until its response names the gateway session (client.go).
	clientInit *clientContext

	idBuf [maxIDLen]byte
	id    []byte // raw JSON id: aliases idBuf or heap

	// gatewayBuf holds gateway when it has the length of a valid id (the
	// common case), so that keeping it does not allocate.
	gatewayBuf [sessionid.Len]byte
	// lengthBuf holds the content-length value ApplyRequest writes.
	lengthBuf [20]byte

	body *[]byte // rewritten body from bodyPool; nil when unchanged
}

var bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// NewStream starts a Stream for one request.
func (r *Router) NewStream() *Stream {
	s := &Stream{}
	s.Init(r)
	return s
}

// Init prepares an embedded Stream for a new request.
func (s *Stream) Init(r *Router) {
	*s = Stream{r: r, t: r.table.Load()}
}

// Release returns pooled memory. The Stream must not be used afterwards.
func (s *Stream) Release() {
	s.sse.release()
	putBuf(&s.body)
	putBuf(&s.replayBody)
}

// RequestHeaders decides what to do once the request headers are known.
// The adapter must already have removed config.InternalHeaders.
func (s *Stream) RequestHeaders(h RequestHeaders) HeadersAction {
	if s.t == nil {
		return s.reject(RejectNotReady)
	}
	// Before anything else, for every method: a browser page of another
	// origin (DNS rebinding) must not reach the gateway at all, and no
	// client the broker's internal endpoints.
	if h.Origin != "" && !s.t.originAllowed(h.Origin) {
		return s.reject(RejectOrigin)
	}
	if config.IsInternalPath(h.Path) {
		return s.reject(RejectInternalPath)
	}
	if !config.IsEndpointPath(h.Path) {
		return HeadersContinue // not ours: neither routed nor refused
	}
	s.protocolVersion = internVersion(h.ProtocolVersion)
	if s.protocolVersion >= statelessVersion {
		s.stateless = true
		s.mcpMethod = internMethod(h.MCPMethod)
		s.mcpName = strings.Clone(h.MCPName)
	}
	if name, ok := config.VirtualServerFromPath(h.Path); ok {
		// A map lookup with a string that aliases host memory: no copy.
		s.virtual = s.t.virtual[name]
		s.noVirtual = s.virtual == nil
	}
	if h.SessionID != "" {
		s.gateway = s.ownGateway(h.SessionID)
		// A POST body is read first, so that the reply echoes its id.
		if s.checkSession() == sessionEnded && (h.Method != "POST" || h.EndOfStream) {
			return s.reject(RejectUnknownSession)
		}
	}
	switch {
	case h.Method == "DELETE" && s.live():
		s.terminate()
		return HeadersContinue
	case h.Method == "GET" && h.LastEventID != "" && s.routeResume(h.LastEventID):
		return HeadersRoute
	case h.Method != "POST" || h.EndOfStream:
		return HeadersContinue // GET streams, DELETE, ...: the broker's
	case h.ContentLength > int64(s.t.maxBody):
		return s.reject(RejectTooLarge)
	case !isJSON(h.ContentType): // absent too: MCP requires application/json
		return s.reject(RejectContentType)
	case s.stateless && s.session != sessionEnded && s.routeOnHeaders():
		return HeadersRoute
	}
	return HeadersBuffer
}

// ownGateway copies the client's session id (which may alias host memory)
// into the Stream, or onto the heap if it cannot be a valid id anyway.
// Nothing keeps the result beyond the Stream: Sessions copies its keys.
func (s *Stream) ownGateway(v string) string {
	if len(v) != len(s.gatewayBuf) {
		return strings.Clone(v)
	}
	copy(s.gatewayBuf[:], v)
	return unsafe.String(&s.gatewayBuf[0], len(v))
}

// internVersion returns a constant for the MCP protocol versions known
// today, so that the common case does not allocate; others are copied
// (h.ProtocolVersion may alias host memory).
func internVersion(v string) string {
	switch v {
	case "":
		return ""
	case "2026-07-28":
		return "2026-07-28"
	case "2025-11-25":
		return "2025-11-25"
	case "2025-06-18":
		return "2025-06-18"
	case "2025-03-26":
		return "2025-03-26"
	case "2024-11-05":
		return "2024-11-05"
	}
	return strings.Clone(v)
}

// statelessVersion is the first protocol version of the stateless era.
// Versions are dates: they compare as strings.
const statelessVersion = "2026-07-28"

// internMethod is internVersion for Mcp-Method values.
func internMethod(v string) string {
	switch v {
	case "":
		return ""
	case "tools/call":
		return "tools/call"
	case "prompts/get":
		return "prompts/get"
	case "tools/list":
		return "tools/list"
	case "resources/read":
		return "resources/read"
	}
	return strings.Clone(v)
}

// clientCredentialHeaders are removed from routed requests.
var clientCredentialHeaders = [...]string{"authorization", "cookie"}

func isJSON(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.EqualFold(strings.TrimSpace(mt), "application/json")
}

// closeBackends ends dropped backend sessions on their backends, on a
// goroutine the Router owns (it does network I/O; Close cancels it).
func (r *Router) closeBackends(t *table, dropped []backendSession) {
	in := r.init
	r.bg.goOwned(func(ctx context.Context) {
		for _, b := range dropped {
			if srv := t.byName[b.server]; srv != nil && b.id != "" {
				in.close(ctx, srv, b.id)
			}
		}
	})
}

// RequestBodyTooLarge reports whether n bytes of a request body still
// arriving (a body without Content-Length) are already more than
// gateway.maxRequestBodyBytes; the adapter then sends Reply() at once
// instead of buffering more (a host's own limit would answer text/plain).
func (s *Stream) RequestBodyTooLarge(n int) bool {
	if n <= s.t.maxBody {
		return false
	}
	s.r.Metrics.Requests.Add(1)
	s.rejectBody(RejectTooLarge)
	return true
}

// RequestBody decides what to do with the complete request body, which may
// alias host memory valid only during this call (and ApplyRequest, when
// called in the same host callback).
func (s *Stream) RequestBody(body []byte) Action {
	s.r.Metrics.Requests.Add(1)
	if len(body) > s.t.maxBody {
		return s.rejectBody(RejectTooLarge)
	}
	// One validating pass finds the members read below (see scanMessage).
	m, ok := scanMessage(body)
	if !ok {
		return s.rejectBody(RejectParse)
	}
	if s.session == sessionEnded {
		return s.rejectEnded(&m)
	}
	json := unsafe.String(unsafe.SliceData(body), len(body)) // zero-copy view for gjson
	if m.kind == '[' {
		if !batchAllowed(s.protocolVersion) {
			return s.rejectBody(RejectBatch)
		}
		return s.forward("")
	}
	// An ambiguous message (a member we read occurs twice, or miscased) is read
	// differently by some brokers or backends than by us: refuse it.
	if m.kind != '{' || m.ambiguous || m.jsonrpc.Str != "2.0" {
		return s.rejectBody(RejectNotJSONRPC)
	}
	id := m.id
	if id.Exists() && id.Type != gjson.String && id.Type != gjson.Number && id.Type != gjson.Null {
		return s.rejectBody(RejectNotJSONRPC)
	}
	s.keepID(id.Raw)
	method := m.method
	if !method.Exists() {
		// A response to a server-to-client request: a backend's if its id
		// is a relay id (relay.go), else the broker's.
		if s.routeAnswer(json, id) {
			return Route
		}
		return s.forward("")
	}
	if method.Type != gjson.String {
		return s.rejectBody(RejectNotJSONRPC)
	}
	// MCP 2026-07-28: Mcp-Method is required on every message and must be
	// the body's (Mcp-Name is checked by route; the broker checks it for
	// resources/read).
	if s.stateless && s.mcpMethod != method.Str {
		return s.rejectBody(RejectHeaderMismatch)
	}
	switch method.Str {
	case "tools/call":
		return s.route("tools/call", json, &m)
	case "prompts/get":
		return s.route("prompts/get", json, &m)
	case "tasks/get", "tasks/update", "tasks/cancel":
		if s.stateless {
			return s.routeTask(method.Str, json, m.get(memberTaskID))
		}
	case "initialize":
		if id.Exists() {
			s.rememberInitialize(&m)
		}
	case "logging/setLevel":
		if id.Exists() {
			s.recordLevel(m.get(memberLevel))
		}
	case "notifications/cancelled":
		if !s.stateless && s.cancel(json, m.get(memberRequestID)) {
			return Route
		}
	}
	return s.forward(method.Str)
}

func batchAllowed(version string) bool {
	return version == "" || version == "2025-03-26"
}

func (s *Stream) keepID(raw string) {
	if len(raw) <= maxIDLen {
		s.id = append(s.idBuf[:0], raw...)
	} else {
		s.id = []byte(raw)
	}
}

func (s *Stream) forward(method string) Action {
	s.method = method
	s.action = Forward
	s.r.Metrics.Forwarded.Add(1)
	return Forward
}

// route decides a tools/call or prompts/get: find the owner by alias or
// prefix, put the backend's name for the tool or prompt in the body, and
// find or open the backend session.
func (s *Stream) route(method, json string, m *message) Action {
	s.method = method
	if !m.id.Exists() {
		return s.rejectBody(RejectNotJSONRPC) // a call must be a request
	}
	if s.noVirtual {
		return s.rejectBody(RejectUnknownVirtualServer)
	}
	if m.name.Type != gjson.String || m.name.Str == "" {
		return s.rejectBody(RejectMissingName)
	}
	if s.stateless && s.mcpName != m.name.Str {
		return s.rejectBody(RejectHeaderMismatch)
	}
	// No tool is named with invalid UTF-8 or control characters (which
	// only escapes can produce), and the name goes into the x-mcp-toolname
	// header: there CR/LF could inject headers upstream, and invalid bytes
	// would differ from the U+FFFD a backend decodes (or that rename
	// re-encodes).
	if !utf8.ValidString(m.name.Str) || strings.IndexByte(m.name.Raw, '\\') >= 0 && hasControl(m.name.Str) {
		return s.rejectBody(RejectUnknownTool)
	}
	if s.virtual != nil && !s.virtual.offers(method, m.name.Str) {
		return s.rejectBody(RejectNotInVirtualServer)
	}
	srv, bare := s.t.lookup(m.name.Str)
	if srv == nil {
		return s.rejectBody(RejectUnknownTool)
	}
	if s.stateless {
		if !srv.Stateless {
			// A session-era backend would refuse the stateless request
			// (no session, a version it does not serve): the broker
			// forwards it over its own session with the backend.
			return s.forward(method)
		}
		// No gateway session and no backend session: the request carries
		// its version and client capabilities in _meta, and goes to the
		// backend as is (bar the name, here and in Mcp-Name).
		s.setTarget(srv, json, m.name, bare)
		s.routed = true
		// Only a request that declares the tasks extension can be
		// answered with a task (SEP-2663 negotiates per request): the
		// others' answers need no task-id rewrite (tasks.go).
		s.mayCreateTask = strings.Contains(json, tasksExtension)
		return s.routeNow()
	}
	if s.gateway == "" {
		// A stateless-era body without the MCP-Protocol-Version header
		// that era requires.
		if v := m.get(memberMetaVersion); v.Type == gjson.String && v.Str >= statelessVersion {
			return s.rejectBody(RejectHeaderMismatch)
		}
		return s.rejectBody(RejectMissingSession)
	}
	if !s.live() {
		return s.rejectBody(RejectUnknownSession)
	}
	s.setTarget(srv, json, m.name, bare)
	s.routed = true
	if backend, ok := s.r.sessions.Get(s.gateway, srv.Name); ok {
		s.backend = backend
		return s.routeNow()
	}
	if s.body == nil {
		s.toolName = strings.Clone(s.toolName) // the host body goes away
	}
	s.action = OpenSession
	return OpenSession
}

// offers reports whether the virtual server lets a client call the tool or
// get the prompt named name: only its listed tools, never a prompt.
func (v *virtualServer) offers(method, name string) bool {
	if method != "tools/call" {
		return false
	}
	_, ok := v.tools[name]
	return ok
}

func hasControl(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] == 0x7f {
			return true
		}
	}
	return false
}

func (s *Stream) routeNow() Action {
	s.action = Route
	s.r.Metrics.Routed.Add(1)
	return Route
}

// ApplyRequest writes the decided request headers: for Route the routing
// headers, backend session, credential and content-length; for Forward only
// x-mcp-method. The values may point into the Stream, its rewritten body or
// the request body: h must copy them before Release (or, for Forward and a
// body left unchanged, before the body goes away).
func (s *Stream) ApplyRequest(h HeaderWriter) {
	if s.method != "" {
		h.Set(config.HeaderMethod, s.method)
	}
	if s.action != Route {
		return
	}
	srv := s.server
	h.Set(":authority", srv.Hostname)
	h.Set(":path", srv.Path)
	h.Set(config.HeaderServerName, srv.Name)
	h.Set(config.HeaderToolName, s.toolName)
	h.Set(config.HeaderUpstreamHost, srv.UpstreamHost)
	if s.stateless && s.method != "" {
		// The backend checks Mcp-Name against the (unprefixed) body.
		if s.taskID != "" {
			h.Set(config.HeaderMCPName, s.taskID)
		} else {
			h.Set(config.HeaderMCPName, s.toolName)
		}
	}
	if s.backend != "" {
		h.Set(config.HeaderSessionID, s.backend)
	} else {
		h.Remove(config.HeaderSessionID)
	}
	if s.resumeID != "" {
		h.Set(config.HeaderLastEventID, s.resumeID)
	}
	// No token passthrough (MCP security best practices): the client's
	// credentials are for the gateway, never for a backend, which gets its
	// own configured credential, if any.
	for _, name := range clientCredentialHeaders {
		if !strings.EqualFold(name, srv.CredentialHeader) {
			h.Remove(name)
		}
	}
	if srv.CredentialHeader != "" {
		h.Set(srv.CredentialHeader, srv.CredentialValue)
	}
	if s.body != nil {
		n := strconv.AppendInt(s.lengthBuf[:0], int64(len(*s.body)), 10)
		h.Set("content-length", unsafe.String(&n[0], len(n)))
	}
}

// NewBody returns the rewritten request body, or nil when the body is to be
// left unchanged. It is valid until Release.
func (s *Stream) NewBody() []byte {
	if s.body == nil {
		return nil
	}
	return *s.body
}

// Rejection returns why the request is being refused (RejectNone if not).
func (s *Stream) Rejection() Rejection { return s.rejection }

// Reply returns the HTTP status and JSON-RPC error body to send for a
// Reply action. The body is freshly allocated (rejections are off the hot
// path).
func (s *Stream) Reply() (status int, body []byte) {
	return s.rejection.Status(), appendErrorBody(make([]byte, 0, 160), s.rejection, s.id)
}

func (s *Stream) reject(r Rejection) HeadersAction {
	s.rejection = r
	s.action = Reply
	s.r.Metrics.Rejected[r].Add(1)
	// Boxing the arguments allocates even when the handler drops them.
	if s.r.log.Enabled(context.Background(), slog.LevelInfo) {
		s.r.log.Info("request rejected", "reason", r.String(), "status", r.Status())
	}
	return HeadersReply
}

func (s *Stream) rejectBody(r Rejection) Action {
	s.reject(r)
	return Reply
}
