package fakeapi

import (
	"sync"
	"time"

	"github.com/envoyproxy/envoy/contrib/golang/common/go/api"
)

// Stream is one HTTP stream through the golang filter hosting one plugin
// filter. Hooks (DecodeHeaders, ...) must be called from the goroutine that
// created it, which plays the Envoy worker.
type Stream struct {
	filter api.StreamFilter
	worker uint64

	// Request, RequestTrailers and Response are Envoy's header maps.
	Request, RequestTrailers, Response *Headers
	// Details is what StreamInfo().ResponseCodeDetails() reports ("" means
	// none); set it before EncodeHeaders ("via_upstream" for a backend's
	// response).
	Details string
	// PanicOn names an API call ("CopyHeaders", "GetBuffer", "SetBuffer",
	// "SetHeader", "Continue", ...) that panics when made, to test the
	// filter's recovery. Set it before the hook.
	PanicOn string

	mu        sync.Mutex // the state below is also reached from goroutines
	dec, enc  procState
	posted    []func()
	wake      chan struct{}
	resumed   bool // a posted Continue or local reply ran
	destroyed bool
	panicked  bool // the shim's pInfo.paniced

	upstream    Upstream
	downstream  Downstream
	replies     []Reply
	routeClears int
	continues   int
	capiErrors  []string
	escaped     []any
}

// Upstream is what the filter let through towards the upstream.
type Upstream struct {
	HeadersSent bool   // the request headers continued
	Body        []byte // request body bytes that continued
	EndStream   bool   // the end of the request continued
}

// Downstream is what the filter let through towards the client.
type Downstream struct {
	HeadersSent bool   // the response headers continued
	Body        []byte // the response body data that continued
}

// Reply is a local reply.
type Reply struct {
	Status  int
	Body    string
	Headers map[string][]string
	Details string
	// FromEncoder: sent while encoding; it replaced the response.
	FromEncoder bool
	// Panic: the shim's reply to a panic that escaped the filter.
	Panic bool
}

// NotCalled is the status the hook methods report when Envoy did not call
// into Go (e.g. it buffered a chunk itself).
const NotCalled api.StatusType = -1

// NewStream creates a stream and its filter, as the shim does on the first
// header (createRequest): factory(config, callbacks).
func NewStream(factory api.StreamFilterFactory, config interface{}) *Stream {
	s := &Stream{
		worker: goid(), wake: make(chan struct{}, 1),
		Request: &Headers{}, RequestTrailers: &Headers{}, Response: &Headers{},
	}
	s.dec = procState{s: s}
	s.enc = procState{s: s, encoding: true}
	s.filter = factory(config, &handler{s: s})
	return s
}

// Replies returns the local replies sent so far.
func (s *Stream) Replies() []Reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Reply(nil), s.replies...)
}

// Upstream returns what reached the upstream side so far.
func (s *Stream) Upstream() Upstream {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.upstream
	u.Body = append([]byte(nil), u.Body...)
	return u
}

// Downstream returns what reached the client side so far.
func (s *Stream) Downstream() Downstream {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.downstream
}

// RouteCacheClears counts ClearRouteCache and RefreshRouteCache calls that
// took effect.
func (s *Stream) RouteCacheClears() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.routeClears
}

// Continues counts continueDecoding/continueEncoding calls: streams resumed
// after a header phase stopped.
func (s *Stream) Continues() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.continues
}

// CAPIErrors returns the API calls Envoy refused, with the shim's panic
// message (e.g. a call after the stream was destroyed).
func (s *Stream) CAPIErrors() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.capiErrors...)
}

// EscapedPanics returns the panics the filter let reach the shim.
func (s *Stream) EscapedPanics() []any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]any(nil), s.escaped...)
}

// Destroyed reports whether Destroy ran.
func (s *Stream) Destroyed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.destroyed
}

func (s *Stream) onWorker() bool { return goid() == s.worker }

func (s *Stream) mustWorker() {
	if !s.onWorker() {
		panic("fakeapi: hook called off the worker goroutine")
	}
}

// post queues fn for the worker's dispatcher.
func (s *Stream) post(fn func()) {
	s.mu.Lock()
	s.posted = append(s.posted, fn)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// runPosted runs the posted work, on the worker. Like the lambdas Envoy
// posts, each does nothing once the filter is destroyed.
func (s *Stream) runPosted() {
	for {
		s.mu.Lock()
		if len(s.posted) == 0 {
			s.mu.Unlock()
			return
		}
		fn := s.posted[0]
		s.posted = s.posted[1:]
		gone := s.destroyed
		s.mu.Unlock()
		if !gone {
			fn()
		}
	}
}

// Await runs posted work as it arrives until a posted Continue or local
// reply has run (the stream resumed after api.Running) or d passes; it
// reports whether the stream resumed.
func (s *Stream) Await(d time.Duration) bool {
	s.mustWorker()
	deadline := time.After(d)
	for {
		s.runPosted()
		s.mu.Lock()
		resumed := s.resumed
		s.mu.Unlock()
		if resumed {
			return true
		}
		select {
		case <-s.wake:
		case <-deadline:
			return false
		}
	}
}

// hookDone ends a hook: Envoy's dispatcher runs what was posted meanwhile.
func (s *Stream) hookDone() {
	s.mu.Lock()
	s.resumed = false
	s.mu.Unlock()
	s.runPosted()
}
