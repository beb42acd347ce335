package golang_test

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/envoyproxy/envoy/contrib/golang/common/go/api"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mcpgw/mcpgw/filter/golang"
	"github.com/mcpgw/mcpgw/filter/golang/internal/fakeapi"
	"github.com/mcpgw/mcpgw/filter/golang/internal/fakehost"
	"github.com/mcpgw/mcpgw/filter/internal/adaptertest"
)

func TestMain(m *testing.M) {
	fakeapi.InstallLog() // api.Log* panics outside Envoy otherwise
	code := m.Run()
	fakehost.Cleanup() // the shared object and fake Envoy, if built
	// Destroyed configs leave nothing running: their streams' session
	// goroutines and their routers' background work are waited for.
	if err := goleak.Find(); code == 0 && err != nil {
		fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
		code = 1
	}
	os.Exit(code)
}

// typedStruct is plugin_config as an xds.type.v3.TypedStruct holding fields.
func typedStruct(t testing.TB, typeURL string, fields map[string]any) *anypb.Any {
	t.Helper()
	s, err := structpb.NewStruct(fields)
	if err != nil {
		t.Fatal(err)
	}
	v, err := proto.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, "type.googleapis.com/mcpgw.Config")
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendBytes(b, v)
	return &anypb.Any{TypeUrl: typeURL, Value: b}
}

// pluginConfig is the usual plugin_config for the config file at path.
func pluginConfig(t testing.TB, path string) *anypb.Any {
	return typedStruct(t, "type.googleapis.com/xds.type.v3.TypedStruct", map[string]any{"config_path": path})
}

// filterConfig parses a plugin config for path, as Envoy does when it
// loads the golang filter config; Destroy runs at the end of the test.
type filterConfig struct {
	parsed  interface{}
	metrics *fakeapi.Config
}

func newFilterConfig(t testing.TB, path string) *filterConfig {
	t.Helper()
	metrics := fakeapi.NewConfig()
	parsed, err := golang.Parser{}.Parse(pluginConfig(t, path), metrics)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(parsed.(api.Config).Destroy)
	return &filterConfig{parsed: parsed, metrics: metrics}
}

func (fc *filterConfig) counter(t testing.TB, name string) uint64 {
	t.Helper()
	v, ok := fc.metrics.Counter(name)
	if !ok {
		t.Fatalf("counter %q not defined; have %v", name, fc.metrics.Names())
	}
	return v
}

// start creates a stream with the request headers of r, but runs no hook.
func (fc *filterConfig) start(r adaptertest.Request) *fakeapi.Stream {
	s := fakeapi.NewStream(golang.FilterFactory, fc.parsed)
	for _, hd := range r.HeaderList() {
		s.Request.Add(hd[0], hd[1])
	}
	return s
}

// send runs the request side of r and waits for a stream the filter left
// running (a session being opened) to resume.
func send(t testing.TB, s *fakeapi.Stream, r adaptertest.Request) {
	t.Helper()
	s.DecodeHeaders(r.Body == "")
	if r.Body != "" {
		s.DecodeData([]byte(r.Body), !r.Trailers)
		if r.Trailers {
			s.DecodeTrailers()
		}
	}
	if !s.Upstream().EndStream && len(s.Replies()) == 0 && !s.Await(10*time.Second) {
		t.Error("the stream neither continued nor replied") // not Fatal: Do runs on goroutines too
	}
}

// Do implements adaptertest.Host.
func (fc *filterConfig) Do(t testing.TB, r adaptertest.Request) adaptertest.Result {
	t.Helper()
	s := fc.start(r)
	defer checkClean(t, s)
	defer s.Destroy()
	send(t, s, r)
	up := s.Upstream()
	res := adaptertest.Result{
		Continued:        up.HeadersSent && up.EndStream,
		Headers:          s.Request.Map(),
		Body:             string(up.Body),
		RouteCacheClears: s.RouteCacheClears(),
	}
	if r.Response != nil && res.Continued && len(s.Replies()) == 0 {
		s.Response.Add(":status", strconv.Itoa(r.Response.Status))
		if sid := r.Response.SessionHeader(res.Headers); sid != "" {
			s.Response.Add("mcp-session-id", sid)
		}
		s.Details = r.Response.Details
		receive(t, s, r.Response.NoBody)
		res.ResponseHeaders = s.Response.Map()
	}
	for _, rp := range s.Replies() {
		first := func(name string) string {
			if v := rp.Headers[name]; len(v) > 0 {
				return v[0]
			}
			return ""
		}
		res.Replies = append(res.Replies, adaptertest.Reply{Status: rp.Status, ContentType: first("content-type"),
			Body: rp.Body, Details: rp.Details, SessionID: first("mcp-session-id")})
	}
	return res
}

// receive runs the response side: headers, then the body; a response the
// filter left running (a call being replayed) must end in a local reply.
func receive(t testing.TB, s *fakeapi.Stream, noBody bool) {
	t.Helper()
	st := s.EncodeHeaders(noBody)
	if st == api.LocalReply {
		return
	}
	if !noBody {
		s.EncodeData([]byte(adaptertest.ResponseBody), true)
	}
	if st == api.Running && !s.Await(10*time.Second) {
		t.Error("the response neither continued nor was replaced")
	}
}

// checkClean fails on API misuse: calls Envoy refused, panics that reached
// the shim.
func checkClean(t testing.TB, s *fakeapi.Stream) {
	t.Helper()
	for _, e := range s.CAPIErrors() {
		t.Errorf("API call refused: %s", e)
	}
	for _, p := range s.EscapedPanics() {
		t.Errorf("panic escaped the filter: %v", p)
	}
}
