package config

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// withCredential renders a valid config tagged n whose server's credential
// is the file cred (and whose session key is the env variable
// MCPGW_WATCH_TEST_KEY).
func withCredential(n int, cred string) []byte {
	return fmt.Appendf(nil, "version: mcpgw/v1\ngateway:\n  sessionKey: {env: MCPGW_WATCH_TEST_KEY}\n  maxSessions: %d\n"+
		"servers:\n- {name: a, url: 'http://a/mcp', hostname: a, prefix: a_, credential: {file: %q}}\n", n, cred)
}

// credentialOf resolves the applied config's credential.
func credentialOf(t *testing.T, c *Config) string {
	t.Helper()
	v, err := c.Servers[0].Credential.Resolve()
	if err != nil {
		t.Fatalf("credential: %v", err)
	}
	return v
}

// nextCredential waits for the next apply and checks the credential it
// resolves to.
func (w *watched) nextCredential(t *testing.T, want string) {
	t.Helper()
	select {
	case c := <-w.applied:
		if got := credentialOf(t, c); got != want {
			t.Fatalf("applied config resolves the credential to %q, want %q", got, want)
		}
	case <-time.After(timeout):
		t.Fatalf("no re-apply for credential %q within %v (log:\n%s)", want, timeout, w.log)
	}
}

// A credential file rewritten in place, in a directory other than the
// config's, re-applies the unchanged config: the directory is watched.
func TestWatchSecretFileRewritten(t *testing.T) {
	t.Setenv("MCPGW_WATCH_TEST_KEY", "k")
	dir, secrets := t.TempDir(), t.TempDir()
	cred := filepath.Join(secrets, "token")
	writeFile(t, cred, []byte("Bearer one\n"))
	w := startWatch(t, dir, filepath.Join(dir, "c.yaml"), withCredential(1, cred))
	w.nextCredential(t, "Bearer one")
	writeFile(t, cred, []byte("Bearer two\n"))
	w.nextCredential(t, "Bearer two")
	// A rewrite to the same value, then a real config change: the next
	// apply is the config change, so the rewrite applied nothing.
	writeFile(t, cred, []byte("Bearer two\n"))
	writeFile(t, w.path, withCredential(2, cred))
	w.next(t, 2)
	if got := w.stats.SecretReloads.Load(); got != 1 {
		t.Errorf("SecretReloads = %d, want 1", got)
	}
	if got := w.stats.Reloads.Load(); got != 3 {
		t.Errorf("Reloads = %d, want 3", got)
	}
}

// A mounted Kubernetes Secret is updated by a symlink swap in its own
// directory (TestWatchKubernetesSymlinkSwap): the credential read through
// the symlink changes, the config file does not.
func TestWatchSecretKubernetesSwap(t *testing.T) {
	t.Setenv("MCPGW_WATCH_TEST_KEY", "k")
	dir, mount := t.TempDir(), t.TempDir()
	publish := func(n int) {
		t.Helper()
		ts := filepath.Join(mount, fmt.Sprintf("..2025_01_01_00_00_%02d.%d", n, n))
		if err := os.Mkdir(ts, 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(ts, "token"), fmt.Appendf(nil, "Bearer v%d", n))
		tmp := filepath.Join(mount, "..data_tmp")
		if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
			t.Fatal("symlink:", err)
		}
		if err := os.Rename(tmp, filepath.Join(mount, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	publish(1)
	cred := filepath.Join(mount, "token")
	if err := os.Symlink(filepath.Join("..data", "token"), cred); err != nil {
		t.Fatal(err)
	}
	w := startWatch(t, dir, filepath.Join(dir, "c.yaml"), withCredential(1, cred))
	w.nextCredential(t, "Bearer v1")
	publish(2)
	w.nextCredential(t, "Bearer v2")
}

// An environment variable cannot announce its change: resync sees it.
func TestWatchSecretResync(t *testing.T) {
	t.Setenv("MCPGW_WATCH_TEST_KEY", "k")
	t.Setenv("MCPGW_WATCH_TEST_TOKEN", "one")
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	writeFile(t, path, []byte("version: mcpgw/v1\ngateway:\n  sessionKey: {env: MCPGW_WATCH_TEST_KEY}\n"+
		"servers:\n- {name: a, url: 'http://a/mcp', hostname: a, prefix: a_, credential: {env: MCPGW_WATCH_TEST_TOKEN}}\n"))
	applied := make(chan *Config, 10)
	log := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stats, err := Watch(ctx, path, WatchOptions{Debounce: debounce, Resync: 2 * debounce, Logger: slog.New(slog.NewTextHandler(log, nil))},
		func(c *Config) { applied <- c })
	if err != nil {
		t.Fatal(err)
	}
	w := &watched{path: path, applied: applied, stats: stats, log: log}
	w.nextCredential(t, "one")
	os.Setenv("MCPGW_WATCH_TEST_TOKEN", "two") // restored by t.Setenv's cleanup
	w.nextCredential(t, "two")
	if got := stats.SecretReloads.Load(); got != 1 {
		t.Errorf("SecretReloads = %d, want 1", got)
	}
}
