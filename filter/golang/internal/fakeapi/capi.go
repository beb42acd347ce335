package fakeapi

import (
	"github.com/envoyproxy/envoy/contrib/golang/common/go/api"
)

// capi applies cgo.cc's checks for a call on a processor state and panics
// with the shim's message when Envoy refuses it (the shim's
// handleCApiStatus). envoyGoFilterProcessStateHandlerWrapper checks
// processing-in-Go first, then the Filter checks destruction.
func (s *Stream) capi(p *procState, name string, check func(*procState) string) {
	s.mu.Lock()
	if s.PanicOn == name {
		s.mu.Unlock()
		panic("fakeapi: injected panic in " + name)
	}
	msg := ""
	switch {
	case !p.processingInGo():
		msg = errNotInGo
	case s.destroyed:
		msg = errFilterDestroyed
	case check != nil:
		msg = check(p)
	}
	if msg != "" {
		s.capiErrors = append(s.capiErrors, name+": "+msg)
	}
	s.mu.Unlock()
	if msg != "" {
		panic(msg)
	}
}

// capiFilter applies envoyGoFilterHandlerWrapper's checks, for calls on the
// request (route cache, stream info): the filter must be processing in Go in
// either direction.
func (s *Stream) capiFilter(name string) {
	s.mu.Lock()
	if s.PanicOn == name {
		s.mu.Unlock()
		panic("fakeapi: injected panic in " + name)
	}
	msg := ""
	switch {
	case !s.dec.processingInGo() && !s.enc.processingInGo():
		msg = errNotInGo
	case s.destroyed:
		msg = errFilterDestroyed
	}
	if msg != "" {
		s.capiErrors = append(s.capiErrors, name+": "+msg)
	}
	s.mu.Unlock()
	if msg != "" {
		panic(msg)
	}
}

// write applies a header write: directly on the worker, posted to it from
// any other goroutine (Filter::setHeader, removeHeader).
func (s *Stream) write(p *procState, name string, check func(*procState) string, apply func()) {
	s.capi(p, name, check)
	locked := func() {
		s.mu.Lock()
		apply()
		s.mu.Unlock()
	}
	if s.onWorker() {
		locked()
		return
	}
	s.post(locked)
}

// handler is the api.FilterCallbackHandler of a stream.
type handler struct{ s *Stream }

var _ api.FilterCallbackHandler = (*handler)(nil)

func (h *handler) StreamInfo() api.StreamInfo { return &streamInfo{s: h.s} }

func (h *handler) ClearRouteCache() { h.clearRouteCache("ClearRouteCache") }

func (h *handler) RefreshRouteCache() { h.clearRouteCache("RefreshRouteCache") }

func (h *handler) clearRouteCache(name string) {
	s := h.s
	s.capiFilter(name)
	clear := func() {
		s.mu.Lock()
		s.routeClears++
		s.mu.Unlock()
	}
	if s.onWorker() {
		clear()
		return
	}
	s.post(clear)
}

func (h *handler) Log(level api.LogType, msg string) { record(level, msg) }

func (h *handler) LogLevel() api.LogType { return logLevel() }

func (h *handler) GetProperty(string) (string, error) { return "", api.ErrValueNotFound }

func (h *handler) SecretManager() api.SecretManager { return noSecrets{} }

func (h *handler) DecoderFilterCallbacks() api.DecoderFilterCallbacks {
	return &process{s: h.s, p: &h.s.dec}
}

func (h *handler) EncoderFilterCallbacks() api.EncoderFilterCallbacks {
	return &process{s: h.s, p: &h.s.enc}
}

type noSecrets struct{}

func (noSecrets) GetGenericSecret(string) (string, bool) { return "", false }

// process is the decoder's or encoder's api.FilterProcessCallbacks.
type process struct {
	s *Stream
	p *procState
}

// Continue is always posted (Filter::continueStatus: running it inline
// would re-enter the state machine).
func (c *process) Continue(st api.StatusType) {
	c.s.capi(c.p, "Continue", nil)
	c.s.post(func() { c.s.continueStatus(c.p, st) })
}

// SendLocalReply is always posted too; headers with empty values are
// dropped, as Envoy does.
func (c *process) SendLocalReply(code int, body string, headers map[string][]string, _ int64, details string) {
	c.s.capi(c.p, "SendLocalReply", nil)
	r := Reply{Status: code, Body: body, Headers: map[string][]string{}, Details: details, FromEncoder: c.p.encoding}
	for k, vs := range headers {
		r.Headers[k] = append([]string(nil), vs...)
	}
	c.s.post(func() { c.s.sendLocalReplyInternal(c.p, r) })
}

// RecoverPanic is the shim's: deferred directly, it recovers and answers
// other than refused-CAPI panics with the plain-text 500.
func (c *process) RecoverPanic() {
	r := recover()
	if r == nil {
		return
	}
	switch r {
	case errRequestFinished, errFilterDestroyed:
	case errNotInGo:
		c.s.mu.Lock()
		c.s.panicked = true
		c.s.mu.Unlock()
	default:
		c.s.sendPanicReply(c.p)
	}
}

func (c *process) AddData([]byte, bool) { panic("fakeapi: AddData is not modelled") }

func (c *process) InjectData([]byte) { panic("fakeapi: InjectData is not modelled") }

func (c *process) SetUpstreamOverrideHost(string, bool) error {
	panic("fakeapi: SetUpstreamOverrideHost is not modelled")
}

// streamInfo answers what the adapter reads; the rest is empty.
type streamInfo struct{ s *Stream }

var _ api.StreamInfo = (*streamInfo)(nil)

// ResponseCodeDetails needs the filter processing in Go
// (envoyGoFilterHandlerWrapper); "" reports "not found".
func (i *streamInfo) ResponseCodeDetails() (string, bool) {
	i.s.capiFilter("GetStringValue")
	i.s.mu.Lock()
	defer i.s.mu.Unlock()
	return i.s.Details, i.s.Details != ""
}

func (i *streamInfo) GetRouteName() string                       { return "" }
func (i *streamInfo) FilterChainName() string                    { return "" }
func (i *streamInfo) Protocol() (string, bool)                   { return "HTTP/1.1", true }
func (i *streamInfo) ResponseCode() (uint32, bool)               { return 0, false }
func (i *streamInfo) AttemptCount() uint32                       { return 0 }
func (i *streamInfo) DynamicMetadata() api.DynamicMetadata       { return nil }
func (i *streamInfo) DownstreamLocalAddress() string             { return "127.0.0.1:8080" }
func (i *streamInfo) DownstreamRemoteAddress() string            { return "127.0.0.1:40000" }
func (i *streamInfo) UpstreamLocalAddress() (string, bool)       { return "", false }
func (i *streamInfo) UpstreamRemoteAddress() (string, bool)      { return "", false }
func (i *streamInfo) UpstreamClusterName() (string, bool)        { return "", false }
func (i *streamInfo) FilterState() api.FilterState               { return nil }
func (i *streamInfo) VirtualClusterName() (string, bool)         { return "", false }
func (i *streamInfo) WorkerID() uint32                           { return 0 }
func (i *streamInfo) DrainConnectionUponCompletion()             {}
func (i *streamInfo) DownstreamSslConnection() api.SslConnection { return nil }
