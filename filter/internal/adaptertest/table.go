package adaptertest

import (
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

// Request is a client request as Envoy hands it to the filter: :method,
// :path and :authority gateway.example, then Headers in order; a
// non-empty Body comes with content-type application/json and its
// content-length unless Headers set them.
type Request struct {
	Method  string // default POST
	Path    string // default /mcp
	Headers [][2]string
	Body    string // "": the headers end the stream
	// Trailers: the body ends with (empty) trailers instead of an end of
	// stream data frame.
	Trailers bool
	// Response, when set, is the upstream's response, delivered after the
	// request continued.
	Response *Response
	// Before, when set, runs before the request is sent (Run calls it).
	Before func()
}

// Response is an upstream response's headers.
type Response struct {
	Status int
	// Details are Envoy's response code details: "via_upstream" when the
	// backend produced the status, else e.g. "route_not_found".
	Details string
	// SessionID is the response's mcp-session-id, if any; AnyBackendSession
	// stands for the backend session the request carried upstream.
	SessionID string
	// NoBody: the headers end the response; otherwise ResponseBody
	// follows them.
	NoBody bool
}

// ResponseBody is the body of every upstream response a host delivers
// (the real Envoy's capture servers answer with it too).
const ResponseBody = `{"jsonrpc":"2.0","id":0,"result":{}}`

// PathOr returns the request's :path, /mcp by default.
func (r Request) PathOr() string {
	if r.Path == "" {
		return "/mcp"
	}
	return r.Path
}

// HeaderList returns the request headers in the order a host hands them to
// the filter: :method, :path, :authority, then, with a body,
// content-type and content-length unless Headers set them, then Headers.
func (r Request) HeaderList() [][2]string {
	method := r.Method
	if method == "" {
		method = "POST"
	}
	hs := [][2]string{{":method", method}, {":path", r.PathOr()}, {":authority", "gateway.example"}}
	if r.Body != "" && !r.has("content-type") {
		hs = append(hs, [2]string{"content-type", "application/json"})
	}
	if r.Body != "" && !r.has("content-length") {
		hs = append(hs, [2]string{"content-length", strconv.Itoa(len(r.Body))})
	}
	return append(hs, r.Headers...)
}

func (r Request) has(name string) bool {
	for _, h := range r.Headers {
		if h[0] == name {
			return true
		}
	}
	return false
}

// SessionHeader returns the mcp-session-id value the upstream response
// carries, given the request headers that went upstream ("" for none).
func (r *Response) SessionHeader(upstream map[string][]string) string {
	if r.SessionID != AnyBackendSession {
		return r.SessionID
	}
	if v := upstream["mcp-session-id"]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Result is what a Host observed.
type Result struct {
	// Continued: the request went on towards the upstream, whole.
	Continued bool
	// Headers are the request headers after the filter.
	Headers map[string][]string
	// Body is the request body that continued.
	Body string
	// RouteCacheClears counts route cache clears; Unobservable when the
	// host cannot count them (check then skips the comparison, and logs it).
	RouteCacheClears int
	// RequestUnseen: the host could not see whether and how the request
	// continued (a real Envoy answered it before any upstream did), so check
	// skips Continued, Headers and Body, and logs it.
	RequestUnseen bool
	// Replies are the local replies, request or response side.
	Replies []Reply
	// ResponseHeaders are the response headers after the filter (when the
	// request had a Response and no reply replaced it).
	ResponseHeaders map[string][]string
}

// Unobservable is the RouteCacheClears of a host that cannot count them.
const Unobservable = -1

// Reply is a local reply.
type Reply struct {
	Status      int
	ContentType string
	Body        string
	Details     string
	SessionID   string // its mcp-session-id header
}

// Host runs requests through one adapter, the way its Envoy would, against
// one filter config of the Env's config file (created by the Host).
type Host interface {
	// Do runs r to completion: when the adapter opens a backend session in
	// the background, Do waits for it and resumes the stream as Envoy
	// would, then delivers r.Response, then ends the stream.
	Do(t testing.TB, r Request) Result
}

// AnyBackendSession in Want.Headers stands for the backend session id the
// adapter put in mcp-session-id: the one the Backend handed out.
const AnyBackendSession = "\x00backend-session"

// Want is a case's expected outcome. Headers lists request headers that
// must have exactly this one value ("" means absent); Body "" means the
// request body unchanged.
type Want struct {
	Continued        bool
	Headers          map[string]string
	Body             string
	RouteCacheClears int
	Reply            *WantReply
	// ResponseSessionID is the mcp-session-id the client must see.
	ResponseSessionID string
	// NewBackendSession: the row opens a backend session other than the
	// one the previous rows used (a replay's); later rows' AnyBackendSession
	// stands for it.
	NewBackendSession bool
}

// WantReply describes a local reply: a JSON-RPC error, or (Text set) the
// answer to a replayed tools/call.
type WantReply struct {
	Status  int
	Code    int64
	ID      string // raw JSON id
	Details string
	// ContentType is the reply's, application/json when empty.
	ContentType string
	// Text is the tool result's text the answer carries (then Code is 0:
	// not an error).
	Text string
	// SessionID is the mcp-session-id the reply must carry, if any.
	SessionID string
}

// Case is one row of the table.
type Case struct {
	Name    string
	Request Request
	Want    Want
}

// Run plays the table, in order (later rows reuse the backend session the
// first routed call opened), against host, which must use env's config.
func Run(t *testing.T, env *Env, host Host) {
	var backendSession string
	for _, c := range Cases(env) {
		ok := t.Run(c.Name, func(t *testing.T) {
			if c.Request.Before != nil {
				c.Request.Before()
			}
			res := host.Do(t, c.Request)
			backendSession = check(t, env, c, res, backendSession)
		})
		if !ok {
			return // later rows depend on earlier ones
		}
	}
}

func check(t *testing.T, env *Env, c Case, res Result, backendSession string) string {
	t.Helper()
	w := c.Want
	if res.RequestUnseen {
		// Nothing of the request to compare: only the reply and response.
		t.Logf("relaxed: the host did not see the request after the filter; continued/headers/body not checked")
		w.Continued, w.Headers = false, nil
		res.Continued = false
	}
	if res.Continued != w.Continued {
		t.Errorf("continued = %v, want %v; replies %+v", res.Continued, w.Continued, res.Replies)
	}
	for name, want := range w.Headers {
		got := res.Headers[name]
		switch {
		case want == AnyBackendSession:
			if backendSession == "" {
				// The backend reports the session after its handler
				// returned, possibly after the adapter resumed.
				select {
				case backendSession = <-env.Backend.Inits:
				case <-time.After(5 * time.Second):
				}
			}
			if len(got) != 1 || got[0] != backendSession {
				t.Errorf("%s = %q, want the backend session [%q]", name, got, backendSession)
			}
		case want == "" && len(got) != 0:
			t.Errorf("%s = %q, want it absent", name, got)
		case want != "" && (len(got) != 1 || got[0] != want):
			t.Errorf("%s = %q, want [%q]", name, got, want)
		}
	}
	if w.Continued {
		checkBody(t, c, res)
	}
	if res.RouteCacheClears == Unobservable {
		t.Logf("relaxed: route cache clears not observable on this host (want %d)", w.RouteCacheClears)
	} else if res.RouteCacheClears != w.RouteCacheClears {
		t.Errorf("route cache cleared %d times, want %d", res.RouteCacheClears, w.RouteCacheClears)
	}
	checkReply(t, w.Reply, res.Replies)
	if w.NewBackendSession {
		backendSession = newBackendSession(t, env, backendSession)
	}
	if w.ResponseSessionID != "" {
		if got := res.ResponseHeaders["mcp-session-id"]; len(got) != 1 || got[0] != w.ResponseSessionID {
			t.Errorf("response mcp-session-id = %q, want [%q]", got, w.ResponseSessionID)
		}
	}
	return backendSession
}

// checkBody checks the request body that continued, and its length.
func checkBody(t *testing.T, c Case, res Result) {
	t.Helper()
	body := c.Want.Body
	if body == "" {
		body = c.Request.Body
	}
	if res.Body != body {
		t.Errorf("body = %q\nwant   %q", res.Body, body)
	}
	if c.Want.Body != "" {
		if cl := res.Headers["content-length"]; len(cl) != 1 || cl[0] != strconv.Itoa(len(body)) {
			t.Errorf("content-length = %q, want %d", cl, len(body))
		}
	}
}

// newBackendSession waits for the backend to report a session other than
// old, and returns it.
func newBackendSession(t *testing.T, env *Env, old string) string {
	t.Helper()
	for {
		select {
		case id := <-env.Backend.Inits:
			if id != old {
				return id
			}
		case <-time.After(5 * time.Second):
			t.Errorf("no new backend session opened (the current one is %q)", old)
			return old
		}
	}
}

func checkReply(t *testing.T, want *WantReply, got []Reply) {
	t.Helper()
	if want == nil {
		if len(got) != 0 {
			t.Errorf("unexpected local replies %+v", got)
		}
		return
	}
	if len(got) != 1 {
		t.Fatalf("%d local replies, want 1: %+v", len(got), got)
	}
	r := got[0]
	ct := want.ContentType
	if ct == "" {
		ct = "application/json"
	}
	if r.Status != want.Status || r.Details != want.Details || r.ContentType != ct {
		t.Errorf("reply %d %q %q, want %d %q %q", r.Status, r.Details, r.ContentType,
			want.Status, want.Details, ct)
	}
	msg := message(r.Body)
	if code := gjson.Get(msg, "error.code").Int(); code != want.Code {
		t.Errorf("error code %d, want %d: %s", code, want.Code, r.Body)
	}
	if id := gjson.Get(msg, "id").Raw; id != want.ID {
		t.Errorf("reply id %s, want %s", id, want.ID)
	}
	if text := gjson.Get(msg, "result.content.0.text").Str; text != want.Text {
		t.Errorf("result text %q, want %q: %s", text, want.Text, r.Body)
	}
	if want.SessionID != "" && r.SessionID != want.SessionID {
		t.Errorf("reply mcp-session-id %q, want %q", r.SessionID, want.SessionID)
	}
}

// message returns the JSON-RPC message of a JSON body, or the last data
// line of an SSE body.
func message(body string) string {
	if !strings.HasPrefix(body, "event:") && !strings.HasPrefix(body, "id:") && !strings.HasPrefix(body, "data:") {
		return body
	}
	msg := ""
	for line := range strings.Lines(body) {
		if d, ok := strings.CutPrefix(strings.TrimRight(line, "\r\n"), "data:"); ok {
			msg = strings.TrimSpace(d)
		}
	}
	return msg
}

// upstreamHost is the backend's host:port, as x-mcp-upstream-host carries it.
func upstreamHost(b *Backend) string {
	u, _ := url.Parse(b.URL)
	return u.Host
}
