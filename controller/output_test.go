package controller

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/mcpgw/mcpgw/filter/config"
)

func rendered(t *testing.T, creds map[string][]byte) Rendered {
	t.Helper()
	out := Build(goldenInput())
	out.Credentials = creds
	r, err := Render(out)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRenderRejectsInvalidConfig(t *testing.T) {
	out := Build(Input{}) // no session key reference: readers would refuse it
	if _, err := Render(out); err == nil {
		t.Fatal("Render accepted a config without a session key")
	}
}

func TestFileSink(t *testing.T) {
	dir := t.TempDir()
	s := &FileSink{Path: filepath.Join(dir, "config.yaml"), CredentialsDir: filepath.Join(dir, "creds")}
	ctx := context.Background()
	write := func(r Rendered, wantChanged bool) {
		t.Helper()
		changed, err := s.Write(ctx, r)
		if err != nil || changed != wantChanged {
			t.Fatalf("Write: changed %v, err %v; want changed %v", changed, err, wantChanged)
		}
	}
	r := rendered(t, map[string][]byte{"ns_s_k": []byte("v1")})
	write(r, true)
	write(r, false) // idempotent
	if _, err := config.Load(s.Path); err != nil {
		t.Errorf("written config: %v", err)
	}
	fi, err := os.Stat(filepath.Join(dir, "creds", "ns_s_k"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("credential file: %v %v", fi, err)
	}
	write(rendered(t, map[string][]byte{"ns_s_k2": []byte("v2")}), true)
	if _, err := os.Stat(filepath.Join(dir, "creds", "ns_s_k")); !os.IsNotExist(err) {
		t.Errorf("stale credential kept: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 { // config.yaml, creds
		t.Errorf("files written: %v", entries)
	}
}

func TestSecretSink(t *testing.T) {
	c := fake.NewClientBuilder().WithScheme(Scheme()).Build()
	s := &SecretSink{Reader: c, Writer: c, Namespace: "sys", ConfigName: "cfg", CredentialsName: "creds"}
	ctx := context.Background()
	write := func(r Rendered, wantChanged bool) {
		t.Helper()
		changed, err := s.Write(ctx, r)
		if err != nil || changed != wantChanged {
			t.Fatalf("Write: changed %v, err %v; want changed %v", changed, err, wantChanged)
		}
	}
	r := rendered(t, map[string][]byte{"ns_s_k": []byte("v1")})
	write(r, true) // creates both
	write(r, false)
	var sec corev1.Secret
	if err := c.Get(ctx, types.NamespacedName{Namespace: "sys", Name: "cfg"}, &sec); err != nil {
		t.Fatal(err)
	}
	rv := sec.ResourceVersion
	if _, err := config.Parse(sec.Data[ConfigKey]); err != nil {
		t.Errorf("config.yaml: %v", err)
	}
	write(rendered(t, map[string][]byte{"ns_s_k": []byte("v2")}), true)
	if err := c.Get(ctx, types.NamespacedName{Namespace: "sys", Name: "cfg"}, &sec); err != nil || sec.ResourceVersion != rv {
		t.Errorf("config Secret rewritten for a credential change (rv %s → %s, %v)", rv, sec.ResourceVersion, err)
	}
	if err := c.Get(ctx, types.NamespacedName{Namespace: "sys", Name: "creds"}, &sec); err != nil || string(sec.Data["ns_s_k"]) != "v2" {
		t.Errorf("credentials Secret = %v, %v", sec.Data, err)
	}
}
