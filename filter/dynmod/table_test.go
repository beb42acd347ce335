package dynmod_test

import (
	"strconv"
	"testing"

	"github.com/mcpgw/mcpgw/filter/dynmod/internal/fakehost"
	"github.com/mcpgw/mcpgw/filter/internal/adaptertest"
)

// TestTable plays the behavioural table shared with the golang filter.
func TestTable(t *testing.T) {
	env := adaptertest.NewEnv(t)
	cfg, err := fakehost.NewConfig("mcpgw", []byte(`{"config_path": "`+env.Path+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cfg.Destroy)
	adaptertest.Run(t, env, tableHost{cfg})
}

// tableHost runs the table's requests through the fake host.
type tableHost struct{ cfg *fakehost.Config }

func (h tableHost) Do(t testing.TB, r adaptertest.Request) adaptertest.Result {
	t.Helper()
	s := h.cfg.NewStream()
	defer checkViolations(t, s)
	defer s.Destroy()
	for _, hd := range r.HeaderList() {
		s.Request.Add(hd[0], hd[1])
	}
	continued := h.request(t, s, r)
	res := adaptertest.Result{Continued: continued, Headers: s.Request.Map(), Body: s.Body(),
		RouteCacheClears: s.RouteCacheClears}
	if r.Response != nil && continued {
		s.Response.Add(":status", strconv.Itoa(r.Response.Status))
		if sid := r.Response.SessionHeader(res.Headers); sid != "" {
			s.Response.Add("mcp-session-id", sid)
		}
		s.SetAttribute(fakehost.AttributeResponseCodeDetails, r.Response.Details)
		h.response(t, s, r.Response.NoBody)
		res.ResponseHeaders = s.Response.Map()
	}
	for _, rp := range s.Replies {
		res.Replies = append(res.Replies, adaptertest.Reply{Status: rp.Status,
			ContentType: rp.Headers["content-type"], Body: rp.Body, Details: rp.Details,
			SessionID: rp.Headers["mcp-session-id"]})
	}
	return res
}

// request runs the request hooks, and the scheduled hook when the module
// opened a backend session; it reports whether the request continued whole.
func (tableHost) request(t testing.TB, s *fakehost.Stream, r adaptertest.Request) bool {
	st := s.RequestHeaders(r.Body == "")
	if r.Body == "" {
		return st == fakehost.Continue && len(s.Replies) == 0
	}
	if r.Trailers {
		s.RequestBody([]byte(r.Body), false)
		st = s.RequestTrailers()
	} else {
		st = s.RequestBody([]byte(r.Body), true)
	}
	if s.SchedulersCreated > 0 {
		s.Scheduled(awaitEvent(t, s))
		awaitDeleted(t, s)
		return s.ContinueDecodings == 1 && len(s.Replies) == 0
	}
	return st == fakehost.Continue && len(s.Replies) == 0
}

// response runs the response hooks; when the module stops the response to
// replay the call (a scheduler created meanwhile), it drops the body, as
// Envoy does for StopIterationNoBuffer, and the scheduled hook sends the
// answer.
func (tableHost) response(t testing.TB, s *fakehost.Stream, noBody bool) {
	scheds := s.SchedulersCreated
	st := s.ResponseHeaders(noBody)
	if len(s.Replies) > 0 {
		return
	}
	replaying := s.SchedulersCreated > scheds
	wantHeaders, wantBody := fakehost.Continue, fakehost.Continue
	if replaying {
		wantHeaders, wantBody = fakehost.StopIteration, fakehost.StopIterationNoBuffer
	}
	if st != wantHeaders {
		t.Errorf("response headers hook returned %d, want %d (replaying: %v)", st, wantHeaders, replaying)
	}
	if !noBody {
		if bst, _ := s.ResponseBody([]byte(adaptertest.ResponseBody), true); bst != wantBody {
			t.Errorf("response body hook returned %d, want %d (replaying: %v)", bst, wantBody, replaying)
		}
	}
	if replaying {
		s.Scheduled(awaitEvent(t, s))
		awaitDeleted(t, s)
	}
}
