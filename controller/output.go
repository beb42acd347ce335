package controller

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/mcpgw/mcpgw/filter/config"
)

// ConfigKey is the config Secret's one key.
const ConfigKey = "config.yaml"

const header = "# Written by mcpgw-controller from MCPServerRegistration and MCPVirtualServer resources; edits are overwritten.\n"

// Rendered is what the gateway's readers see: the bytes of the config file
// and of each credential file.
type Rendered struct {
	Config      []byte
	Credentials map[string][]byte
}

// Render serializes Build's output. It parses the config back with the
// readers' own parser, so a config the broker or the router would reject is
// never written: they would keep their last good config and the statuses
// would lie.
func Render(out Output) (Rendered, error) {
	cfg, err := yaml.Marshal(out.Config)
	if err != nil {
		return Rendered{}, err
	}
	if _, err := config.Parse(cfg); err != nil {
		return Rendered{}, fmt.Errorf("built config is invalid: %w", err)
	}
	return Rendered{Config: append([]byte(header), cfg...), Credentials: out.Credentials}, nil
}

// Sink writes rendered output where the gateway reads it. Write is
// idempotent: it changes nothing when the content is already there, so
// reconciling often costs no writes and no reloads.
type Sink interface {
	Write(ctx context.Context, r Rendered) (changed bool, err error)
}

// SecretSink writes two Secrets in the controller's namespace: the config
// (key config.yaml) and the credentials (one key per credential file). The
// broker and Envoy mount both.
type SecretSink struct {
	// Reader reads the Secrets directly from the API server: the cache only
	// holds credential Secrets, and RBAC may allow get on these two names
	// only.
	Reader client.Reader
	Writer client.Writer
	// Namespace holds both Secrets.
	Namespace string
	// ConfigName and CredentialsName name them.
	ConfigName, CredentialsName string
}

// ManagedByLabel marks the Secrets the controller writes.
const ManagedByLabel = "app.kubernetes.io/managed-by"

// Write updates the credentials before the config, so that a config never
// refers to a credential file its readers cannot have yet. A credential
// whose value changed rewrites only the credentials Secret, not the config:
// the kubelet updates the mounted files in place, and the readers' config
// watch sees the new value on its own (it watches the secret files'
// directories and re-resolves every reference on each resync).
func (s *SecretSink) Write(ctx context.Context, r Rendered) (bool, error) {
	c1, err := s.sync(ctx, s.CredentialsName, r.Credentials)
	if err != nil {
		return c1, fmt.Errorf("credentials Secret: %w", err)
	}
	c2, err := s.sync(ctx, s.ConfigName, map[string][]byte{ConfigKey: r.Config})
	if err != nil {
		return c1 || c2, fmt.Errorf("config Secret: %w", err)
	}
	return c1 || c2, nil
}

func (s *SecretSink) sync(ctx context.Context, name string, data map[string][]byte) (bool, error) {
	var cur corev1.Secret
	err := s.Reader.Get(ctx, types.NamespacedName{Namespace: s.Namespace, Name: name}, &cur)
	if apierrors.IsNotFound(err) {
		// The deployment creates both Secrets empty, so that RBAC can limit
		// the controller to these names; creating them is for clusters set
		// up by hand and for tests.
		sec := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: s.Namespace, Name: name,
				Labels: map[string]string{ManagedByLabel: "mcpgw-controller"}},
			Type: corev1.SecretTypeOpaque,
			Data: data,
		}
		return true, s.Writer.Create(ctx, sec)
	}
	if err != nil {
		return false, err
	}
	if maps.EqualFunc(cur.Data, data, bytes.Equal) {
		return false, nil
	}
	cur.Data = data
	return true, s.Writer.Update(ctx, &cur)
}

// FileSink writes the config to a file and the credentials to files in a
// directory: for running the controller outside the cluster next to a local
// broker and Envoy.
type FileSink struct {
	// Path of the config file.
	Path string
	// CredentialsDir receives one file per credential (mode 0600). The
	// controller owns it: files it did not write are removed.
	CredentialsDir string
}

// Write replaces each file atomically (rename), and only when its content
// changed, so file watchers see one event per real change.
func (f *FileSink) Write(_ context.Context, r Rendered) (bool, error) {
	changed, err := f.syncCredentials(r.Credentials)
	if err != nil {
		return changed, err
	}
	c, err := writeIfChanged(f.Path, r.Config, 0o644)
	return changed || c, err
}

func (f *FileSink) syncCredentials(creds map[string][]byte) (bool, error) {
	if err := os.MkdirAll(f.CredentialsDir, 0o700); err != nil {
		return false, err
	}
	changed := false
	for name, v := range creds {
		c, err := writeIfChanged(filepath.Join(f.CredentialsDir, name), v, 0o600)
		changed = changed || c
		if err != nil {
			return changed, err
		}
	}
	entries, err := os.ReadDir(f.CredentialsDir)
	if err != nil {
		return changed, err
	}
	var errs []error
	for _, e := range entries {
		if _, keep := creds[e.Name()]; !keep && e.Type().IsRegular() {
			changed = true
			errs = append(errs, os.Remove(filepath.Join(f.CredentialsDir, e.Name())))
		}
	}
	return changed, errors.Join(errs...)
}

func writeIfChanged(path string, data []byte, mode os.FileMode) (bool, error) {
	if cur, err := os.ReadFile(path); err == nil && bytes.Equal(cur, data) {
		return false, nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Close(); err != nil {
		return false, err
	}
	return true, os.Rename(tmp.Name(), path)
}
