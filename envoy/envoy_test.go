// Package envoy_test validates the Envoy configs in this directory: the
// golang-filter bootstrap (golang.yaml) and the operator snippets that embed
// the same filter (istio-envoyfilter.yaml, envoy-gateway.yaml).
//
// What is validated, and how:
//   - the golang filter stanza: its fields against the Config message of
//     the pinned Envoy's golang.proto (names, required ones non-empty), its
//     plugin_name against the plugin's, and its plugin_config by mcpgw's own
//     parser (filter/golang.Parser), run on the same protobuf Any Envoy
//     would hand it;
//   - everything else in golang.yaml by `envoy --mode validate` of the
//     stock Envoy (make envoy). It has no golang filter, so the stanza is
//     swapped for the dynamic-module filter with the same filter config,
//     which Envoy then loads and initializes.
//
// Not validated: that a contrib Envoy accepts the stanza itself (the proto
// check stands in for it), the snippets' Istio and Envoy Gateway resources
// beyond their shape, and the Kubernetes mounts.
package envoy_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/envoyproxy/envoy/contrib/golang/common/go/api"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"sigs.k8s.io/yaml"

	"github.com/mcpgw/mcpgw/filter/golang"
)

const (
	golangFilter   = "envoy.filters.http.golang"
	golangConfig   = "type.googleapis.com/envoy.extensions.filters.http.golang.v3alpha.Config"
	golangProto    = "api/contrib/envoy/extensions/filters/http/golang/v3alpha/golang.proto"
	typedStructURL = "type.googleapis.com/xds.type.v3.TypedStruct"
)

type object = map[string]any

// readYAML returns the documents of a YAML file as JSON objects.
func readYAML(t *testing.T, file string) []object {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var docs []object
	for _, doc := range regexp.MustCompile(`(?m)^---$`).Split(string(raw), -1) {
		var o object
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if o != nil {
			docs = append(docs, o)
		}
	}
	return docs
}

// at walks o along path (keys, or ints for list indexes).
func at(t *testing.T, o any, path ...any) any {
	t.Helper()
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := o.(object)
			if !ok {
				t.Fatalf("at %v: not an object", path)
			}
			o = m[k]
		case int:
			l, ok := o.([]any)
			if !ok || k >= len(l) {
				t.Fatalf("at %v: not a list of %d+", path, k+1)
			}
			o = l[k]
		}
	}
	return o
}

// httpFilters returns the bootstrap's HTTP filter list.
func httpFilters(t *testing.T, bootstrap object) []any {
	t.Helper()
	hcm := at(t, bootstrap, "static_resources", "listeners", 0, "filter_chains", 0, "filters", 0, "typed_config")
	return at(t, hcm, "http_filters").([]any)
}

// golangStanza returns golang.yaml's golang filter and its index.
func golangStanza(t *testing.T, bootstrap object) (object, int) {
	t.Helper()
	for i, f := range httpFilters(t, bootstrap) {
		if f.(object)["name"] == golangFilter {
			return f.(object), i
		}
	}
	t.Fatalf("no %s filter", golangFilter)
	return nil, 0
}

func TestGolangStanza(t *testing.T) {
	f, i := golangStanza(t, readYAML(t, "golang.yaml")[0])
	checkStanza(t, f)
	filters := httpFilters(t, readYAML(t, "golang.yaml")[0])
	if last := filters[len(filters)-1].(object)["name"]; i != len(filters)-2 || last != "envoy.filters.http.router" {
		t.Errorf("the golang filter must come right before the router filter (last: %v)", last)
	}
}

// checkStanza validates a golang filter stanza (see the package comment).
func checkStanza(t *testing.T, f object) {
	t.Helper()
	if f["name"] != golangFilter {
		t.Errorf("filter name %v, want %s", f["name"], golangFilter)
	}
	tc := at(t, f, "typed_config").(object)
	if tc["@type"] != golangConfig {
		t.Errorf("@type %v, want %s", tc["@type"], golangConfig)
	}
	fields, required := protoFields(t)
	for k := range tc {
		if k != "@type" && !fields[k] {
			t.Errorf("typed_config.%s is not a field of golang.v3alpha.Config (Envoy 1.39.1)", k)
		}
	}
	for _, k := range required {
		if s, _ := tc[k].(string); s == "" {
			t.Errorf("typed_config.%s is required (min_len: 1)", k)
		}
	}
	if tc["plugin_name"] != golang.PluginName {
		t.Errorf("plugin_name %v: the plugin registers as %q", tc["plugin_name"], golang.PluginName)
	}
	parsePluginConfig(t, at(t, tc, "plugin_config").(object))
}

// protoFields reads the fields of message Config from the pinned Envoy's
// golang.proto, and those with validate rule min_len: 1.
func protoFields(t *testing.T) (map[string]bool, []string) {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(envoySources(t), golangProto))
	if err != nil {
		t.Fatal(err)
	}
	s := string(src)
	start := strings.Index(s, "\nmessage Config {")
	end := strings.Index(s[start:], "\n}\n")
	if start < 0 || end < 0 {
		t.Fatalf("%s: no message Config", golangProto)
	}
	fields := map[string]bool{}
	var required []string
	fieldRE := regexp.MustCompile(`(?m)^  (?:repeated )?[\w.]+ (\w+) = \d+( \[\(validate\.rules\)\.string = \{min_len: 1\}\])?;`)
	for _, m := range fieldRE.FindAllStringSubmatch(s[start:start+end], -1) {
		fields[m[1]] = true
		if m[2] != "" {
			required = append(required, m[1])
		}
	}
	if !fields["plugin_config"] || len(required) != 3 {
		t.Fatalf("%s: parsed fields %v, required %v: the proto changed shape", golangProto, fields, required)
	}
	return fields, required
}

// parsePluginConfig runs the plugin's parser on plugin_config, encoded as
// the protobuf Any Envoy hands over, with config_path pointing at a real
// config file (the original must be absolute).
func parsePluginConfig(t *testing.T, pc object) {
	t.Helper()
	if pc["@type"] != typedStructURL {
		t.Fatalf("plugin_config @type %v, want %s", pc["@type"], typedStructURL)
	}
	value := at(t, pc, "value").(object)
	if p, _ := value["config_path"].(string); !filepath.IsAbs(p) {
		t.Errorf("config_path %q must be absolute", p)
	}
	local := object{}
	for k, v := range value {
		local[k] = v
	}
	local["config_path"] = writeConfig(t)
	s, err := structpb.NewStruct(local)
	if err != nil {
		t.Fatal(err)
	}
	v, err := proto.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	ts := protowire.AppendTag(nil, 2, protowire.BytesType) // TypedStruct.value
	ts = protowire.AppendBytes(ts, v)
	api.SetCommonCAPI(quietLog{}) // the parser logs; api.Log* panics outside Envoy
	cfg, err := golang.Parser{}.Parse(&anypb.Any{TypeUrl: typedStructURL, Value: ts}, noMetrics{})
	if err != nil {
		t.Fatalf("the plugin rejects plugin_config: %v", err)
	}
	cfg.(api.Config).Destroy()
}

// writeConfig writes a minimal valid mcpgw config and returns its path.
func writeConfig(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	key := filepath.Join(dir, "session-key")
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(key, []byte(strings.Repeat("k", 48)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := "version: mcpgw/v1\ngateway:\n  sessionKey: {file: " + key + "}\nservers: []\n"
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

type quietLog struct{}

func (quietLog) Log(api.LogType, string) {}
func (quietLog) LogLevel() api.LogType   { return api.Critical }

type noMetrics struct{}

func (noMetrics) DefineCounterMetric(string) api.CounterMetric { return noMetric{} }
func (noMetrics) DefineGaugeMetric(string) api.GaugeMetric     { return noMetric{} }

type noMetric struct{}

func (noMetric) Increment(int64) {}
func (noMetric) Get() uint64     { return 0 }
func (noMetric) Record(uint64)   {}

// The operator snippets embed golang.yaml's filter, verbatim.
func TestOperatorSnippets(t *testing.T) {
	want, _ := golangStanza(t, readYAML(t, "golang.yaml")[0])
	istio := readYAML(t, "istio-envoyfilter.yaml")
	patch := at(t, istio[0], "spec", "configPatches", 0)
	if at(t, patch, "applyTo") != "HTTP_FILTER" || at(t, patch, "patch", "operation") != "INSERT_BEFORE" ||
		at(t, patch, "match", "listener", "filterChain", "filter", "subFilter", "name") != "envoy.filters.http.router" {
		t.Errorf("Istio patch: want HTTP_FILTER inserted before envoy.filters.http.router: %v", patch)
	}
	eg := readYAML(t, "envoy-gateway.yaml")
	if len(eg) != 2 || eg[0]["kind"] != "EnvoyProxy" || eg[1]["kind"] != "EnvoyPatchPolicy" {
		t.Fatalf("envoy-gateway.yaml: want an EnvoyProxy and an EnvoyPatchPolicy")
	}
	jp := at(t, eg[1], "spec", "jsonPatches", 0)
	if at(t, jp, "type") != "type.googleapis.com/envoy.config.listener.v3.Listener" || at(t, jp, "operation", "op") != "add" ||
		!strings.HasSuffix(at(t, jp, "operation", "path").(string), "/http_filters/0") {
		t.Errorf("EnvoyPatchPolicy: want an add to a Listener's http_filters: %v", jp)
	}
	for name, got := range map[string]any{
		"istio-envoyfilter.yaml": at(t, patch, "patch", "value"),
		"envoy-gateway.yaml":     at(t, jp, "operation", "value"),
	} {
		if !reflect.DeepEqual(got, any(want)) {
			a, _ := json.Marshal(got)
			b, _ := json.Marshal(want)
			t.Errorf("%s: the filter differs from golang.yaml's:\n got %s\nwant %s", name, a, b)
		}
	}
}
