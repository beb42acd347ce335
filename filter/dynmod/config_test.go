package dynmod_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/mcpgw/mcpgw/filter/dynmod/internal/fakehost"
)

const logError = 4 // envoy_dynamic_module_type_log_level_Error

func TestFilterConfigErrors(t *testing.T) {
	good := newGateway(t).path
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	invalid := filepath.Join(t.TempDir(), "invalid.yaml")
	if err := os.WriteFile(invalid, []byte("version: nope\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	noKey := filepath.Join(t.TempDir(), "nokey.yaml")
	if err := os.WriteFile(noKey, []byte("version: mcpgw/v1\ngateway: {sessionKey: {env: MCPGW_TEST_UNSET_KEY}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, filter, config, wantLog string
	}{
		{"wrong filter name", "other", `{"config_path": "` + good + `"}`, `filter_name \"other\": this module only provides \"mcpgw\"`},
		{"empty", "mcpgw", "  ", "filter_config is empty"},
		{"not JSON", "mcpgw", "config_path: /x", "filter_config: invalid character"},
		{"unknown field", "mcpgw", `{"config_path": "/x", "path": "/y"}`, `unknown field \"path\"`},
		{"trailing data", "mcpgw", `{"config_path": "/x"} {}`, "unexpected data after the JSON object"},
		{"no path", "mcpgw", `{}`, "config_path is required"},
		{"relative path", "mcpgw", `{"config_path": "config.yaml"}`, "must be absolute"},
		{"missing file", "mcpgw", `{"config_path": "` + missing + `"}`, "no such file or directory"},
		{"invalid file", "mcpgw", `{"config_path": "` + invalid + `"}`, `version: got \"nope\"`},
		{"unresolvable secret", "mcpgw", `{"config_path": "` + noKey + `"}`, `MCPGW_TEST_UNSET_KEY`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if cfg, err := fakehost.NewConfig(tc.filter, []byte(tc.config)); err == nil {
				cfg.Destroy()
				t.Fatal("config_new accepted the config")
			}
			lines := fakehost.Logs(tc.wantLog)
			if len(lines) == 0 {
				t.Fatalf("no log line containing %q", tc.wantLog)
			}
			if l := lines[len(lines)-1]; l.Level != logError || !strings.HasPrefix(l.Message, "mcpgw: invalid filter config") {
				t.Errorf("log line %+v, want an error starting with \"mcpgw: invalid filter config\"", l)
			}
		})
	}
	// A google.protobuf.Struct reaches the module as Envoy's JSON rendering.
	cfg, err := fakehost.NewConfig("mcpgw", []byte("{\n \"config_path\": \""+good+"\"\n}\n"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Destroy()
}

func TestCountersDefinedAtConfigTime(t *testing.T) {
	g := newGateway(t)
	names := g.cfg.CounterNames()
	for _, want := range []string{"mcpgw.requests", "mcpgw.routed", "mcpgw.forwarded", "mcpgw.session_inits",
		"mcpgw.session_init_failures", "mcpgw.sessions_lost", "mcpgw.config_reloads",
		"mcpgw.config_reload_errors", "mcpgw.rejected.parse_error", "mcpgw.rejected.not_ready",
		"mcpgw.rejected.backend_session_lost", "mcpgw.replays", "mcpgw.replays_succeeded",
		"mcpgw.rejected.ambiguous_response"} {
		if _, ok := g.cfg.Counter(want); !ok {
			t.Errorf("counter %s not defined; have %v", want, names)
		}
	}
	for _, n := range names {
		if strings.Contains(n, "rejected.none") {
			t.Errorf("counter %s for a non-rejection", n)
		}
	}
	s, _ := g.start(g.cfg, request{method: "GET"})
	s.Destroy() // the first stream exports the initial config load
	if n := counter(t, g.cfg, "mcpgw.config_reloads"); n != 1 {
		t.Errorf("mcpgw.config_reloads = %d, want 1", n)
	}
}

func TestConfigReload(t *testing.T) {
	g := newGateway(t)
	s, _ := g.post(request{session: g.codec.Mint(""), body: toolCall(1, "weather_now")})
	if r := reply(t, s); gjson.Get(r.Body, "error.code").Int() != -32602 {
		t.Fatalf("before the reload: %s, want unknown tool", r.Body)
	}
	s.Destroy()

	raw, err := os.ReadFile(g.path)
	if err != nil {
		t.Fatal(err)
	}
	raw = append(raw, `- {name: default/weather, url: "http://127.0.0.1:9/mcp", hostname: w.svc, prefix: weather_}`+"\n"...)
	if err := os.WriteFile(g.path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, st := g.post(request{session: g.codec.Mint(""), body: toolCall(1, "weather_now")})
		s.Destroy()
		if st == fakehost.StopIterationAndBuffer {
			break // the new server is known: the router opens a session
		}
		if time.Now().After(deadline) {
			t.Fatal("the config change was not applied")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLogLines(t *testing.T) {
	g := newGateway(t)
	s, _ := g.post(request{body: "nope"})
	s.Destroy()
	lines := fakehost.Logs("mcpgw: request rejected")
	if len(lines) == 0 {
		t.Fatal("no rejection logged")
	}
	l := lines[len(lines)-1].Message
	if !strings.Contains(l, "config="+g.path) || !strings.Contains(l, "reason=parse_error") || !strings.Contains(l, "status=400") {
		t.Errorf("log line %q", l)
	}

	// log_enabled gates formatting: above the level nothing is logged.
	fakehost.MinLogLevel.Store(logError)
	defer fakehost.MinLogLevel.Store(0)
	before := len(fakehost.Logs("mcpgw: request rejected"))
	s2, _ := g.post(request{body: "nope"})
	s2.Destroy()
	if after := len(fakehost.Logs("mcpgw: request rejected")); after != before {
		t.Errorf("info line logged while Envoy's level is error")
	}
}
