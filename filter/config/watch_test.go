package config

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// testing/synctest cannot drive these tests: fsnotify's reader goroutine
// blocks in the netpoller, which synctest does not count as durably blocked,
// so fake time never advances. They use real temp dirs and a short debounce
// instead, and wait for outcomes with a deadline rather than fixed sleeps;
// a test that checks that nothing happens waits for the reloads that could
// make it happen (waitChecks).

const (
	debounce = 20 * time.Millisecond
	timeout  = 5 * time.Second
)

// version renders a valid config whose gateway.maxSessions tags it.
func version(n int) []byte {
	return fmt.Appendf(nil, "version: mcpgw/v1\ngateway:\n  sessionKey: {env: K}\n  maxSessions: %d\n", n)
}

type watched struct {
	dir, path string
	applied   chan *Config
	stats     *WatchStats
	cancel    context.CancelFunc
	log       *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// startWatch writes the initial file (unless path already exists) and
// starts Watch with resync disabled, so that only file events can cause a
// reload.
func startWatch(t *testing.T, dir, path string, initial []byte) *watched {
	t.Helper()
	if initial != nil {
		writeFile(t, path, initial)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	w := &watched{dir: dir, path: path, applied: make(chan *Config, 100), cancel: cancel, log: &syncBuffer{}}
	opts := WatchOptions{Debounce: debounce, Resync: -1, Logger: slog.New(slog.NewTextHandler(w.log, nil))}
	stats, err := Watch(ctx, path, opts, func(c *Config) { w.applied <- c })
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	w.stats = stats
	return w
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// next waits for the next applied config and checks its tag.
func (w *watched) next(t *testing.T, wantTag int) {
	t.Helper()
	select {
	case c := <-w.applied:
		if c.Gateway.MaxSessions != wantTag {
			t.Fatalf("applied config %d, want %d", c.Gateway.MaxSessions, wantTag)
		}
	case <-time.After(timeout):
		t.Fatalf("config %d not applied within %v (log:\n%s)", wantTag, timeout, w.log)
	}
}

// waitChecks waits until the watch has begun and finished n more reloads
// than now (each begins after the one before it ended).
func waitChecks(t *testing.T, stats *WatchStats, n int64) {
	t.Helper()
	from := stats.checks.Load()
	waitFor(t, fmt.Sprintf("%d reloads", n), func() bool { return stats.checks.Load() > from+n })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestWatchFirstLoad(t *testing.T) {
	dir := t.TempDir()
	w := startWatch(t, dir, filepath.Join(dir, "c.yaml"), version(1))
	// The first apply happens before Watch returns.
	select {
	case c := <-w.applied:
		if c.Gateway.MaxSessions != 1 {
			t.Fatalf("first config %+v", c.Gateway)
		}
	default:
		t.Fatal("Watch returned before applying the first config")
	}
	if w.stats.Reloads.Load() != 1 || w.stats.ReloadErrors.Load() != 0 {
		t.Fatalf("stats reloads=%d errors=%d", w.stats.Reloads.Load(), w.stats.ReloadErrors.Load())
	}
}

func TestWatchInvalidAtStart(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string][]byte{
		"missing": nil,
		"invalid": []byte("version: v0\n"),
		"empty":   {},
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, name)
			if content != nil {
				writeFile(t, p, content)
			}
			called := false
			stats, err := Watch(t.Context(), p, WatchOptions{}, func(*Config) { called = true })
			if err == nil || stats != nil || called {
				t.Fatalf("Watch = %v, %v, applied=%v; want an error and no apply", stats, err, called)
			}
			if content != nil && !strings.HasPrefix(err.Error(), p+": ") {
				t.Errorf("error does not name the file: %q", err)
			}
		})
	}
}

func TestWatchReloadsOnChange(t *testing.T) {
	dir := t.TempDir()
	w := startWatch(t, dir, filepath.Join(dir, "c.yaml"), version(1))
	w.next(t, 1)
	for n := 2; n <= 4; n++ {
		writeFile(t, w.path, version(n))
		w.next(t, n)
	}
	if got := w.stats.Reloads.Load(); got != 4 {
		t.Fatalf("Reloads = %d, want 4", got)
	}
}

// A writer's burst of writes gives one reload of the final content.
func TestWatchDebouncesBursts(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	writeFile(t, path, version(1))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	applied := make(chan int, 10)
	// A long debounce, so the burst below certainly falls inside one window.
	if _, err := Watch(ctx, path, WatchOptions{Debounce: 300 * time.Millisecond, Resync: -1},
		func(c *Config) { applied <- c.Gateway.MaxSessions }); err != nil {
		t.Fatal(err)
	}
	<-applied
	for n := 2; n <= 6; n++ {
		writeFile(t, path, version(n))
	}
	select {
	case got := <-applied:
		if got != 6 {
			t.Fatalf("applied %d, want only the final 6", got)
		}
	case <-time.After(timeout):
		t.Fatal("burst not applied")
	}
	select {
	case got := <-applied:
		t.Fatalf("second apply %d after a single burst", got)
	case <-time.After(600 * time.Millisecond):
	}
}

func TestWatchKeepsLastGood(t *testing.T) {
	dir := t.TempDir()
	w := startWatch(t, dir, filepath.Join(dir, "c.yaml"), version(1))
	w.next(t, 1)
	full := version(2)
	bad := []struct {
		name    string
		content []byte
		remove  bool
	}{
		{name: "half-written", content: full[:len(full)/2]},
		{name: "truncated to empty", content: []byte{}},
		{name: "invalid", content: []byte("version: mcpgw/v1\ngateway: {sessionKey: {env: K}}\nservers: [{name: x}]\n")},
		{name: "unknown field", content: append(version(9), "extra: true\n"...)},
		{name: "removed", remove: true},
	}
	for i, b := range bad {
		before := w.stats.ReloadErrors.Load()
		if b.remove {
			os.Remove(w.path)
		} else {
			writeFile(t, w.path, b.content)
		}
		waitFor(t, b.name+" counted as a reload error", func() bool { return w.stats.ReloadErrors.Load() > before })
		if w.stats.LastErrorUnix.Load() == 0 {
			t.Errorf("%s: LastErrorUnix not set", b.name)
		}
		select {
		case c := <-w.applied:
			t.Fatalf("%s: applied %+v", b.name, c.Gateway)
		default:
		}
		// A valid file after the bad one is applied again.
		writeFile(t, w.path, version(10+i))
		w.next(t, 10+i)
	}
	if got := w.stats.Reloads.Load(); got != int64(1+len(bad)) {
		t.Errorf("Reloads = %d, want %d", got, 1+len(bad))
	}
	if !strings.Contains(w.log.String(), "keeping the last good config") {
		t.Errorf("reload failure not logged:\n%s", w.log)
	}
}

// The same invalid content is reported once while it stays (resync re-reads
// it), but again when it comes back after a good config.
func TestWatchSameBadContentReportedOncePerEpisode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	writeFile(t, path, version(1))
	applied := make(chan int, 10)
	stats, err := Watch(t.Context(), path, WatchOptions{Debounce: debounce, Resync: debounce},
		func(c *Config) { applied <- c.Gateway.MaxSessions })
	if err != nil {
		t.Fatal(err)
	}
	<-applied
	bad := []byte("version: mcpgw/v1\ngateway: {sessionKey: {env: K}}\nservers: [{name: x}]\n")
	writeFile(t, path, bad)
	waitFor(t, "first report", func() bool { return stats.ReloadErrors.Load() == 1 })
	waitChecks(t, stats, 3) // resyncs re-read the same bad file
	if got := stats.ReloadErrors.Load(); got != 1 {
		t.Fatalf("ReloadErrors = %d for one unchanged bad file, want 1", got)
	}
	writeFile(t, path, version(2))
	if got := <-applied; got != 2 {
		t.Fatalf("applied %d", got)
	}
	writeFile(t, path, bad)
	waitFor(t, "the same bad content reported again after a good config",
		func() bool { return stats.ReloadErrors.Load() == 2 })
}

// A bad file restored to the content still in effect is not re-applied.
func TestWatchRestoredContentNotReapplied(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	writeFile(t, path, version(1))
	applied := make(chan int, 10)
	// Resync on: reloads certainly read the restored file below.
	stats, err := Watch(t.Context(), path, WatchOptions{Debounce: debounce, Resync: debounce},
		func(c *Config) { applied <- c.Gateway.MaxSessions })
	if err != nil {
		t.Fatal(err)
	}
	<-applied
	writeFile(t, path, []byte("garbage: [\n"))
	waitFor(t, "reload error", func() bool { return stats.ReloadErrors.Load() > 0 })
	writeFile(t, path, version(1))
	waitChecks(t, stats, 3)
	if got := stats.Reloads.Load(); got != 1 || len(applied) != 0 {
		t.Fatalf("Reloads = %d, want 1 (%d applied)", got, len(applied))
	}
}

func TestWatchUnchangedContentNotReapplied(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	writeFile(t, path, version(1))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	applied := make(chan int, 10)
	// Resync on: reloads certainly re-read the file below.
	stats, err := Watch(ctx, path, WatchOptions{Debounce: debounce, Resync: debounce},
		func(c *Config) { applied <- c.Gateway.MaxSessions })
	if err != nil {
		t.Fatal(err)
	}
	<-applied
	writeFile(t, path, version(1))
	now := time.Now()
	os.Chtimes(path, now, now)
	writeFile(t, filepath.Join(dir, "unrelated"), []byte("x"))
	waitChecks(t, stats, 3) // resyncs and the events re-read the unchanged file
	if len(applied) != 0 {
		t.Fatalf("unchanged content re-applied (%d)", <-applied)
	}
	if stats.Reloads.Load() != 1 || stats.ReloadErrors.Load() != 0 {
		t.Fatalf("stats reloads=%d errors=%d", stats.Reloads.Load(), stats.ReloadErrors.Load())
	}
}

// Resync reloads even when no event arrives.
func TestWatchResync(t *testing.T) {
	dir := t.TempDir()
	applied := make(chan int, 10)
	// Watch a different directory's file through a symlink whose target
	// directory is not watched: changing the target emits no event in the
	// watched directory, so only resync can see it.
	other := t.TempDir()
	target := filepath.Join(other, "real.yaml")
	writeFile(t, target, version(1))
	link := filepath.Join(dir, "link.yaml")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal("symlink:", err) // every platform mcpgw runs on has them
	}
	if _, err := Watch(t.Context(), link, WatchOptions{Debounce: debounce, Resync: 3 * debounce},
		func(c *Config) { applied <- c.Gateway.MaxSessions }); err != nil {
		t.Fatal(err)
	}
	<-applied
	writeFile(t, target, version(2))
	select {
	case n := <-applied:
		if n != 2 {
			t.Fatalf("applied %d", n)
		}
	case <-time.After(timeout):
		t.Fatal("resync did not pick up the change")
	}
}

func TestWatchAtomicRename(t *testing.T) {
	dir := t.TempDir()
	w := startWatch(t, dir, filepath.Join(dir, "c.yaml"), version(1))
	w.next(t, 1)
	for n := 2; n <= 3; n++ {
		tmp := filepath.Join(dir, fmt.Sprintf(".c.yaml.tmp%d", n))
		writeFile(t, tmp, version(n))
		if err := os.Rename(tmp, w.path); err != nil {
			t.Fatal(err)
		}
		w.next(t, n)
	}
}

// TestWatchKubernetesSymlinkSwap mimics how the kubelet updates a mounted
// ConfigMap or Secret: the file is a symlink into ..data, itself a symlink
// to a timestamped directory, and an update atomically renames a new ..data
// over the old one. The file itself never gets an event.
func TestWatchKubernetesSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	publish := func(n int) string {
		t.Helper()
		ts := filepath.Join(dir, fmt.Sprintf("..2025_01_01_00_00_%02d.%d", n, n))
		if err := os.Mkdir(ts, 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(ts, "config.yaml"), version(n))
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
			t.Fatal("symlink:", err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
		return ts
	}
	old := publish(1)
	path := filepath.Join(dir, "config.yaml")
	if err := os.Symlink(filepath.Join("..data", "config.yaml"), path); err != nil {
		t.Fatal(err)
	}
	w := startWatch(t, dir, path, nil)
	w.next(t, 1)
	for n := 2; n <= 3; n++ {
		ts := publish(n)
		os.RemoveAll(old)
		old = ts
		w.next(t, n)
	}
	if w.stats.ReloadErrors.Load() != 0 {
		t.Errorf("ReloadErrors = %d during clean swaps", w.stats.ReloadErrors.Load())
	}
}

func TestWatchStopsOnCancel(t *testing.T) {
	dir := t.TempDir()
	base := runtime.NumGoroutine()
	w := startWatch(t, dir, filepath.Join(dir, "c.yaml"), version(1))
	w.next(t, 1)
	w.cancel()
	select {
	case <-w.stats.Stopped(): // no apply from now on
	case <-time.After(timeout):
		t.Fatal("the watch did not stop after cancel")
	}
	// The watch goroutine and fsnotify's reader end.
	waitFor(t, "watch goroutines to end", func() bool { return runtime.NumGoroutine() <= base })
	writeFile(t, w.path, version(2))
	if got := w.stats.Reloads.Load(); got != 1 || len(w.applied) != 0 {
		t.Fatalf("Reloads = %d, %d applied after the watch stopped", got, len(w.applied))
	}
}
