package golang_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/envoyproxy/envoy/contrib/golang/common/go/api"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/mcpgw/mcpgw/filter/golang"
	"github.com/mcpgw/mcpgw/filter/golang/internal/fakeapi"
	"github.com/mcpgw/mcpgw/filter/internal/adaptertest"
)

func anyOf(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// Every plugin_config form an operator may write is accepted.
func TestParseForms(t *testing.T) {
	path := adaptertest.WriteConfig(t, t.TempDir())
	st, err := structpb.NewStruct(map[string]any{"config_path": path})
	if err != nil {
		t.Fatal(err)
	}
	for name, a := range map[string]*anypb.Any{
		"xds TypedStruct":  pluginConfig(t, path),
		"udpa TypedStruct": typedStruct(t, "type.googleapis.com/udpa.type.v1.TypedStruct", map[string]any{"config_path": path}),
		"Struct":           anyOf(t, st),
		"StringValue":      anyOf(t, wrapperspb.String(`{"config_path": "`+path+`"}`)),
	} {
		t.Run(name, func(t *testing.T) {
			metrics := fakeapi.NewConfig()
			c, err := golang.Parser{}.Parse(a, metrics)
			if err != nil {
				t.Fatal(err)
			}
			c.(api.Config).Destroy()
			c.(api.Config).Destroy() // Envoy destroys once; twice must not double-release
		})
	}
}

func TestParseErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	invalid := filepath.Join(t.TempDir(), "invalid.yaml")
	if err := os.WriteFile(invalid, []byte("version: nope\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ts := func(fields map[string]any) *anypb.Any {
		return typedStruct(t, "type.googleapis.com/xds.type.v3.TypedStruct", fields)
	}
	tests := []struct {
		name    string
		config  *anypb.Any
		noCB    bool
		wantErr string
	}{
		{"absent", nil, false, "plugin_config is required"},
		{"unsupported type", anyOf(t, wrapperspb.Int64(1)), false, `unsupported type "type.googleapis.com/google.protobuf.Int64Value"`},
		{"garbage TypedStruct", &anypb.Any{TypeUrl: "type.googleapis.com/xds.type.v3.TypedStruct", Value: []byte{0xff}}, false, "TypedStruct"},
		{"empty", ts(map[string]any{}), false, "config_path is required"},
		{"unknown field", ts(map[string]any{"config_path": "/x", "path": "/y"}), false, `unknown field "path"`},
		{"relative path", ts(map[string]any{"config_path": "config.yaml"}), false, "must be absolute"},
		{"not a string", ts(map[string]any{"config_path": 3}), false, "cannot unmarshal number"},
		{"StringValue not JSON", anyOf(t, wrapperspb.String("config_path: /x")), false, "plugin_config: invalid character"},
		{"missing file", ts(map[string]any{"config_path": missing}), false, "no such file or directory"},
		{"invalid file", ts(map[string]any{"config_path": invalid}), false, `version: got "nope"`},
		{"per-route config", ts(map[string]any{"config_path": "/x"}), true, "no per-route plugin config"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var cb api.ConfigCallbackHandler = fakeapi.NewConfig()
			if tc.noCB {
				cb = nil
			}
			c, err := golang.Parser{}.Parse(tc.config, cb)
			if err == nil {
				c.(api.Config).Destroy()
				t.Fatal("Parse accepted the config")
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestMergeKeepsChild(t *testing.T) {
	if got := (golang.Parser{}).Merge("parent", "child"); got != "child" {
		t.Errorf("Merge = %v", got)
	}
}

func TestCountersDefinedAtParse(t *testing.T) {
	fc := newFilterConfig(t, adaptertest.WriteConfig(t, t.TempDir()))
	names := fc.metrics.Names()
	for _, want := range []string{"mcpgw.requests", "mcpgw.routed", "mcpgw.forwarded", "mcpgw.session_inits",
		"mcpgw.session_init_failures", "mcpgw.sessions_lost", "mcpgw.config_reloads",
		"mcpgw.config_reload_errors", "mcpgw.rejected.parse_error", "mcpgw.rejected.backend_session_lost",
		"mcpgw.replays", "mcpgw.replays_succeeded", "mcpgw.rejected.ambiguous_response"} {
		fc.counter(t, want)
	}
	for _, n := range names {
		if strings.Contains(n, "rejected.none") {
			t.Errorf("counter %s for a non-rejection", n)
		}
	}
	r := adaptertest.Request{Body: "nope"}
	fc.Do(t, r) // exports the initial load and the rejection
	if fc.counter(t, "mcpgw.config_reloads") != 1 || fc.counter(t, "mcpgw.rejected.parse_error") != 1 ||
		fc.counter(t, "mcpgw.requests") != 1 {
		t.Errorf("counters after one rejected request: reloads %d, parse errors %d, requests %d",
			fc.counter(t, "mcpgw.config_reloads"), fc.counter(t, "mcpgw.rejected.parse_error"),
			fc.counter(t, "mcpgw.requests"))
	}
}

// A listener update creates the new config before destroying the old one:
// the router, and the backend sessions it holds, survive.
func TestConfigsShareRouter(t *testing.T) {
	env := adaptertest.NewEnv(t)
	gw := env.Codec.Mint("")
	call := func(fc *filterConfig, id int) adaptertest.Result {
		return fc.Do(t, adaptertest.Request{Body: adaptertest.ToolCall(id, "weather_now"),
			Headers: [][2]string{{"mcp-session-id", gw}}})
	}
	metrics := fakeapi.NewConfig()
	old, err := golang.Parser{}.Parse(pluginConfig(t, env.Path), metrics)
	if err != nil {
		t.Fatal(err)
	}
	first := call(&filterConfig{parsed: old, metrics: metrics}, 1)
	sid := first.Headers["mcp-session-id"]
	fc2 := newFilterConfig(t, env.Path)
	old.(api.Config).Destroy()
	second := call(fc2, 2)
	if got := second.Headers["mcp-session-id"]; len(sid) != 1 || len(got) != 1 || got[0] != sid[0] {
		t.Errorf("backend session %q after the update, want %q", got, sid)
	}
	select { // reported after the backend's handler returned
	case <-env.Backend.Inits:
	case <-time.After(5 * time.Second):
		t.Error("no backend session opened")
	}
	select {
	case <-env.Backend.Inits:
		t.Error("a second backend session opened")
	case <-time.After(50 * time.Millisecond):
	}
}

func TestConfigReload(t *testing.T) {
	dir := t.TempDir()
	path := adaptertest.WriteConfig(t, dir)
	fc := newFilterConfig(t, path)
	env := adaptertest.NewEnv(t)
	req := adaptertest.Request{Body: adaptertest.ToolCall(1, "weather_now"),
		Headers: [][2]string{{"mcp-session-id", env.Codec.Mint("")}}}
	if res := fc.Do(t, req); len(res.Replies) != 1 || res.Replies[0].Details != "mcpgw_unknown_tool" {
		t.Fatalf("before the reload: %+v, want unknown_tool", res.Replies)
	}
	adaptertest.WriteConfig(t, dir, env.Backend.Entry())
	deadline := time.Now().Add(10 * time.Second)
	for {
		res := fc.Do(t, req)
		if res.Continued {
			break // the new server is known
		}
		if time.Now().After(deadline) {
			t.Fatalf("the config change was not applied: %+v", res.Replies)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLogLines(t *testing.T) {
	path := adaptertest.WriteConfig(t, t.TempDir())
	fc := newFilterConfig(t, path)
	fc.Do(t, adaptertest.Request{Body: "nope"})
	lines := fakeapi.Logs("mcpgw: request rejected")
	if len(lines) == 0 {
		t.Fatal("no rejection logged")
	}
	l := lines[len(lines)-1]
	if l.Level != api.Info || !strings.Contains(l.Message, "config="+path) ||
		!strings.Contains(l.Message, "reason=parse_error") || !strings.Contains(l.Message, "status=400") {
		t.Errorf("log line %+v", l)
	}
	// Envoy's level gates formatting: above it nothing is logged.
	fakeapi.SetLogLevel(api.Error)
	defer fakeapi.SetLogLevel(api.Trace)
	before := len(fakeapi.Logs("mcpgw: request rejected"))
	fc.Do(t, adaptertest.Request{Body: "nope"})
	if after := len(fakeapi.Logs("mcpgw: request rejected")); after != before {
		t.Error("info line logged while Envoy's level is error")
	}
}
