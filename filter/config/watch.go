package config

import (
	"context"
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
	// systems that do not report changes (default 10s; negative disables).
	Resync time.Duration
}

// WatchStats counts reload outcomes; read them with the atomic getters.
type WatchStats struct {
	Reloads       atomic.Int64 // good configs applied (including the first)
	ReloadErrors  atomic.Int64 // invalid or unreadable files, last good kept
	LastErrorUnix atomic.Int64
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
// the file changes to a valid config that differs from the last one applied.
// An invalid or half-written file is logged and counted, and the last good
// config stays in effect. The directory is watched rather than the file, so
// that atomic renames and Kubernetes' Secret symlink swaps are seen.
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
	stats := &WatchStats{stopped: make(chan struct{})}
	stats.Reloads.Add(1)
	apply(first)
	log.Info("config loaded", "path", path, "servers", len(first.Servers))
	go watchLoop(ctx, w, path, raw, opts, log, stats, apply)
	return stats, nil
}

func watchLoop(ctx context.Context, w *fsnotify.Watcher, path string, last []byte,
	opts WatchOptions, log *slog.Logger, stats *WatchStats, apply func(*Config)) {
	defer close(stats.stopped)
	defer w.Close()
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	var resync <-chan time.Time
	if opts.Resync > 0 {
		t := time.NewTicker(opts.Resync)
		defer t.Stop()
		resync = t.C
	}
	var lastBad []byte // the same invalid content is reported once
	// haveBad tells an empty lastBad (a truncated file, itself invalid)
	// from none: string(nil) == "" would hide the first empty file.
	var haveBad bool
	reload := func() {
		stats.checks.Add(1)
		c, raw, err := loadRaw(path)
		if err != nil {
			if raw != nil && haveBad && string(raw) == string(lastBad) {
				return
			}
			lastBad, haveBad = raw, raw != nil
			stats.ReloadErrors.Add(1)
			stats.LastErrorUnix.Store(time.Now().Unix())
			log.Error("config reload failed; keeping the last good config", "path", path, "error", err)
			return
		}
		// A valid file ends the bad episode: the same bad content coming
		// back later is a new failure and must be counted and logged again.
		lastBad, haveBad = nil, false
		if string(raw) == string(last) {
			return
		}
		last = raw
		stats.Reloads.Add(1)
		apply(c)
		log.Info("config reloaded", "path", path, "servers", len(c.Servers))
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			_ = ev // any change in the directory may be ours (symlink swaps rename other names)
			debounce.Reset(opts.Debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			log.Warn("config watch error", "error", err)
		case <-debounce.C:
			reload()
		case <-resync:
			reload()
		}
	}
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
