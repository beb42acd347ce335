package controller

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	"github.com/mcpgw/mcpgw/controller/api/v1alpha1"
	"github.com/mcpgw/mcpgw/filter/config"
)

var update = flag.Bool("update", false, "rewrite the golden *.out.yaml files")

// goldenInput is the Input every golden case starts from; the objects come
// from the case's *.in.yaml.
func goldenInput() Input {
	return Input{
		Gateway:        config.Gateway{SessionKey: config.SecretRef{File: "/var/run/secrets/mcpgw/session/session-key"}},
		CredentialsDir: "/var/run/secrets/mcpgw/credentials",
	}
}

// TestBuildGolden runs Build on testdata/build/*.in.yaml (Kubernetes objects,
// one per YAML document) and compares with *.out.yaml. Run with -update to
// rewrite the expectations, then review the diff.
func TestBuildGolden(t *testing.T) {
	ins, err := filepath.Glob("testdata/build/*.in.yaml")
	if err != nil || len(ins) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, inPath := range ins {
		name := strings.TrimSuffix(filepath.Base(inPath), ".in.yaml")
		t.Run(name, func(t *testing.T) {
			in := goldenInput()
			readObjects(t, inPath, &in)
			got := renderGolden(t, Build(in))
			outPath := strings.TrimSuffix(inPath, ".in.yaml") + ".out.yaml"
			if *update {
				if err := os.WriteFile(outPath, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(outPath)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if d := cmp.Diff(string(want), string(got)); d != "" {
				t.Errorf("%s differs (-want +got):\n%s", outPath, d)
			}
			// Build must not depend on the order objects are listed in.
			reverseAll(&in)
			if again := renderGolden(t, Build(in)); !bytes.Equal(again, got) {
				t.Errorf("output depends on input order:\n%s", cmp.Diff(string(got), string(again)))
			}
			// And what it writes must parse for the broker and the router.
			if _, err := config.Parse(mustYAML(t, Build(in).Config)); err != nil {
				t.Errorf("written config does not parse: %v", err)
			}
		})
	}
}

func reverseAll(in *Input) {
	slices.Reverse(in.Registrations)
	slices.Reverse(in.Routes)
	slices.Reverse(in.Secrets)
	slices.Reverse(in.VirtualServers)
}

// goldenView is Output as the *.out.yaml files show it.
type goldenView struct {
	Config               config.Config                `json:"config"`
	Credentials          map[string]string            `json:"credentials"`
	Registrations        map[string]goldenCondition   `json:"registrations"`
	VirtualServerResults map[string][]goldenCondition `json:"virtualServerResults,omitempty"`
}

type goldenCondition struct {
	Type    string `json:"type"`
	Status  string `json:"status"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

func view(c metav1.Condition) goldenCondition {
	return goldenCondition{c.Type, string(c.Status), c.Reason, c.Message}
}

func renderGolden(t *testing.T, out Output) []byte {
	t.Helper()
	v := goldenView{
		Config: out.Config, Credentials: map[string]string{},
		Registrations: map[string]goldenCondition{}, VirtualServerResults: map[string][]goldenCondition{},
	}
	for k, b := range out.Credentials {
		v.Credentials[k] = string(b)
	}
	for k, r := range out.Registrations {
		v.Registrations[k.String()] = view(r.Accepted)
		if (r.Server != nil) != (r.Accepted.Status == metav1.ConditionTrue) {
			t.Errorf("%s: server set = %v but Accepted = %s", k, r.Server != nil, r.Accepted.Status)
		}
	}
	for k, r := range out.VirtualServerResults {
		v.VirtualServerResults[k.String()] = []goldenCondition{view(r.Accepted), view(r.ResolvedRefs)}
	}
	return mustYAML(t, v)
}

func mustYAML(t *testing.T, v any) []byte {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readObjects decodes a multi-document YAML file of registrations, virtual
// servers, HTTPRoutes and Secrets into in.
func readObjects(t *testing.T, path string, in *Input) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(string(b), "\n---\n") {
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if err := decodeObject([]byte(doc), meta.Kind, in); err != nil {
			t.Fatalf("%s: %s: %v", path, meta.Kind, err)
		}
	}
}

func decodeObject(doc []byte, kind string, in *Input) error {
	switch kind {
	case "":
		return nil // a document of comments only
	case "MCPServerRegistration":
		var o v1alpha1.MCPServerRegistration
		err := yaml.UnmarshalStrict(doc, &o)
		in.Registrations = append(in.Registrations, o)
		return err
	case "MCPVirtualServer":
		var o v1alpha1.MCPVirtualServer
		err := yaml.UnmarshalStrict(doc, &o)
		in.VirtualServers = append(in.VirtualServers, o)
		return err
	case "HTTPRoute":
		var o gatewayv1.HTTPRoute
		err := yaml.UnmarshalStrict(doc, &o)
		in.Routes = append(in.Routes, o)
		return err
	case "Secret":
		var o corev1.Secret
		err := yaml.UnmarshalStrict(doc, &o)
		// The API server folds stringData into data; do the same.
		for k, v := range o.StringData {
			if o.Data == nil {
				o.Data = map[string][]byte{}
			}
			o.Data[k] = []byte(v)
		}
		o.StringData = nil
		in.Secrets = append(in.Secrets, o)
		return err
	}
	return os.ErrInvalid
}

// TestBuildServiceAddresses: a mapped Service is reached at its address,
// which is also the :authority; others keep their cluster DNS name.
func TestBuildServiceAddresses(t *testing.T) {
	in := goldenInput()
	in.ServiceAddresses = map[string]string{"team-a/weather:8080": "127.0.0.1:18080", "team-a/weather:9090": "10.0.0.1:1"}
	readObjects(t, "testdata/build/basic.in.yaml", &in)
	out := Build(in)
	byName := map[string]config.Server{}
	for _, s := range out.Config.Servers {
		byName[s.Name] = s
	}
	if s := byName["team-a/weather"]; s.URL != "http://127.0.0.1:18080/mcp" || s.Hostname != "127.0.0.1:18080" {
		t.Errorf("mapped server = %+v", s)
	}
	for name, s := range byName {
		if name != "team-a/weather" && !strings.Contains(s.URL, ".svc.cluster.local:") {
			t.Errorf("unmapped server %s = %+v", name, s)
		}
	}
	if len(byName) < 2 {
		t.Fatalf("basic.in.yaml has %d accepted servers; the test wants an unmapped one too", len(byName))
	}
	if _, err := config.Parse(mustYAML(t, out.Config)); err != nil {
		t.Errorf("config does not parse: %v", err)
	}
}

func TestOptionsServiceAddresses(t *testing.T) {
	base := Options{RestConfig: &rest.Config{}, OutputFile: "/tmp/c.yaml", CredentialsDir: "/tmp/creds",
		Gateway: config.Gateway{SessionKey: config.SecretRef{File: "/k"}}}
	ok := base
	ok.ServiceAddresses = map[string]string{"team-a/weather:8080": "127.0.0.1:18080", "b/c:1": "localhost:9"}
	if err := ok.Validate(); err != nil {
		t.Errorf("valid mapping refused: %v", err)
	}
	bad := base
	bad.ConfigSecret, bad.Namespace, bad.CredentialsSecret = "cfg", "ns", "creds"
	bad.ServiceAddresses = map[string]string{"weather:8080": "127.0.0.1:1", "a/b:1": "127.0.0.1", "a/c:1": "h:0", "a/d:1": "bad host:1", "d/e:2": "[::1]:3"}
	err := bad.Validate()
	for _, want := range []string{"output file only", `"weather:8080": the Service must be given as namespace/name:port`,
		`a/b:1: "127.0.0.1" is not host:port`, `a/c:1: "h:0" has no valid port`, `a/d:1: url: not a valid URL: invalid character " " in host name; hostname: "bad host:1"`, `d/e:2: hostname: "[::1]:3" is not a valid host name`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v; want it to mention %q", err, want)
		}
	}
}

// The routers' broker URL (gateway.brokerURL) defaults to the status URL's
// base; a URL that is set, or no status URL, is kept as it is.
func TestOptionsBrokerURL(t *testing.T) {
	for _, tc := range []struct{ set, status, want string }{
		{"", "http://mcpgw-broker:8090/status", "http://mcpgw-broker:8090"},
		{"", "http://broker.example/gw/status?x=1", "http://broker.example/gw"},
		{"http://mcpgw-broker.mcpgw-system.svc:8090", "http://mcpgw-broker:8090/status", "http://mcpgw-broker.mcpgw-system.svc:8090"},
		{"", "", ""},
	} {
		o := Options{Gateway: config.Gateway{BrokerURL: tc.set}, BrokerStatusURL: tc.status}
		if got := o.gateway().BrokerURL; got != tc.want {
			t.Errorf("broker URL %q, status URL %q: got %q, want %q", tc.set, tc.status, got, tc.want)
		}
	}
	bad := Options{RestConfig: &rest.Config{}, OutputFile: "/tmp/c.yaml", CredentialsDir: "/tmp/creds",
		Gateway: config.Gateway{SessionKey: config.SecretRef{File: "/k"}, BrokerURL: "ftp://broker"}}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "gateway.brokerURL") {
		t.Errorf("Validate() = %v, want a gateway.brokerURL error", err)
	}
}
