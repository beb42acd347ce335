package config

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// WatchOptions tune Watch. The zero value is usable.
type WatchOptions struct {
	// Logger receives reload results; nil discards.
	Logger *slog.Logger
	// Debounce waits this long after the last file event before reloading,
	// so that a writer's several writes give one reload (default 100ms).
	Debounce time.Duration
	// Resync reloads this often even without events, a safety net for file
	// systems that do not report changes, and the only way to notice a
	// changed environment variable (default 10s; negative disables).
	Resync time.Duration
}

// WatchStats counts reload outcomes; read them with the atomic getters.
type WatchStats struct {
	Reloads       atomic.Int64 // good configs applied (including the first)
	ReloadErrors  atomic.Int64 // invalid or unreadable files, last good kept
	LastErrorUnix atomic.Int64
	// SecretReloads counts the reloads (among Reloads) caused by a
	// referenced secret that resolves differently, the file unchanged.
	SecretReloads atomic.Int64
	stopped       chan struct{}
	// checks counts the reloads begun (file events and resyncs, whatever
	// they found): tests that check that nothing happens wait for some.
	checks atomic.Int64
}

// Stopped is closed once the watch has ended (its context is done): apply
// is not called again, and the watch's goroutine and file watcher are gone.
// A reader that closes what apply feeds waits for it first.
func (s *WatchStats) Stopped() <-chan struct{} { return s.stopped }

// Watch loads path, calls apply with it, then calls apply again each time
// the file changes to a valid config that differs from the last one
// applied, or a secret it references (SecretRef: the session keys and the
// servers' credentials, files or environment variables) resolves to a
// different value, or fails to resolve where it did not, or the reverse.
// apply resolves the secrets itself; Watch only compares a digest of them.
//
// An invalid or half-written file is logged and counted, and the last good
// config stays in effect. The config file's directory is watched rather
// than the file, so that atomic renames and Kubernetes' Secret symlink swaps
// are seen; so are the directories of the secret files, for the same
// reasons (a mounted Secret is updated in place by such a swap). Every
// Resync, the file is read and the secrets resolved again regardless.
//
// Watch returns the first load's error without watching if the file is not
// valid at start. Otherwise it watches in a goroutine until ctx is done.
func Watch(ctx context.Context, path string, opts WatchOptions, apply func(*Config)) (*WatchStats, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Debounce <= 0 {
		opts.Debounce = 100 * time.Millisecond
	}
	if opts.Resync == 0 {
		opts.Resync = 10 * time.Second
	}
	first, raw, err := loadRaw(path)
	if err != nil {
		return nil, err
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	if err := w.Add(filepath.Dir(path)); err != nil {
		w.Close()
		return nil, err
	}
	wt := &watcher{path: path, opts: opts, log: log, fs: w, stats: &WatchStats{stopped: make(chan struct{})}, apply: apply,
		last: raw, lastSecrets: secretsDigest(first), dirs: map[string]bool{}}
	wt.watchSecretDirs(first)
	wt.stats.Reloads.Add(1)
	apply(first)
	log.Info("config loaded", "path", path, "servers", len(first.Servers))
	go wt.loop(ctx)
	return wt.stats, nil
}

// watcher is the state of one Watch.
type watcher struct {
	path  string
	opts  WatchOptions
	log   *slog.Logger
	fs    *fsnotify.Watcher
	stats *WatchStats
	apply func(*Config)

	last        []byte            // the applied file's content
	lastSecrets [sha256.Size]byte // and its secrets' digest
	dirs        map[string]bool   // secret directories being watched
	lastBad     []byte            // the same invalid content is reported once
	// haveBad tells an empty lastBad (a truncated file, itself invalid)
	// from none: string(nil) == "" would hide the first empty file.
	haveBad bool
}

func (wt *watcher) loop(ctx context.Context) {
	defer close(wt.stats.stopped)
	defer wt.fs.Close()
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	var resync <-chan time.Time
	if wt.opts.Resync > 0 {
		t := time.NewTicker(wt.opts.Resync)
		defer t.Stop()
		resync = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-wt.fs.Events:
			if !ok {
				return
			}
			_ = ev // any change in the directory may be ours (symlink swaps rename other names)
			debounce.Reset(wt.opts.Debounce)
		case err, ok := <-wt.fs.Errors:
			if !ok {
				return
			}
			wt.log.Warn("config watch error", "error", err)
		case <-debounce.C:
			wt.reload()
		case <-resync:
			wt.reload()
		}
	}
}

func (wt *watcher) reload() {
	wt.stats.checks.Add(1)
	c, raw, err := loadRaw(wt.path)
	if err != nil {
		if raw != nil && wt.haveBad && string(raw) == string(wt.lastBad) {
			return
		}
		wt.lastBad, wt.haveBad = raw, raw != nil
		wt.stats.ReloadErrors.Add(1)
		wt.stats.LastErrorUnix.Store(time.Now().Unix())
		wt.log.Error("config reload failed; keeping the last good config", "path", wt.path, "error", err)
		return
	}
	// A valid file ends the bad episode: the same bad content coming
	// back later is a new failure and must be counted and logged again.
	wt.lastBad, wt.haveBad = nil, false
	secrets := secretsDigest(c)
	sameFile := string(raw) == string(wt.last)
	if sameFile && secrets == wt.lastSecrets {
		return
	}
	wt.last, wt.lastSecrets = raw, secrets
	wt.watchSecretDirs(c)
	wt.stats.Reloads.Add(1)
	if sameFile {
		wt.stats.SecretReloads.Add(1)
	}
	wt.apply(c)
	if sameFile {
		wt.log.Info("config re-applied: a referenced secret changed", "path", wt.path)
	} else {
		wt.log.Info("config reloaded", "path", wt.path, "servers", len(c.Servers))
	}
}

// watchSecretDirs watches the directories of c's secret files, and stops
// watching those it no longer references. The config file's own directory
// is always watched. A directory that cannot be watched (it does not
// exist yet, say) is logged; Resync still notices its files' changes.
func (wt *watcher) watchSecretDirs(c *Config) {
	configDir := filepath.Dir(wt.path)
	want := map[string]bool{}
	for _, r := range c.secretRefs() {
		if r.File != "" {
			if d := filepath.Dir(r.File); d != configDir {
				want[d] = true
			}
		}
	}
	for d := range wt.dirs {
		if !want[d] {
			_ = wt.fs.Remove(d)
			delete(wt.dirs, d)
		}
	}
	for d := range want {
		if wt.dirs[d] {
			continue
		}
		if err := wt.fs.Add(d); err != nil {
			wt.log.Warn("cannot watch a secret directory; changes are seen on resync", "dir", d, "error", err)
			continue
		}
		wt.dirs[d] = true
	}
}

// secretsDigest resolves every secret c references and returns a digest of
// the outcomes (values and errors), so that a change is noticed without
// keeping the values.
func secretsDigest(c *Config) [sha256.Size]byte {
	h := sha256.New()
	for _, r := range c.secretRefs() {
		v, err := r.Resolve()
		if err != nil {
			fmt.Fprintf(h, "error %d:%s\x00", len(err.Error()), err)
			continue
		}
		fmt.Fprintf(h, "value %d:%s\x00", len(v), v)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

func loadRaw(path string) (*Config, []byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	c, err := Parse(raw)
	if err != nil {
		return nil, raw, fmt.Errorf("%s: %w", path, err)
	}
	c.resolveRelativeFiles(filepath.Dir(path))
	return c, raw, nil
}
