package host

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/mcpgw/mcpgw/filter/config"
	"github.com/mcpgw/mcpgw/filter/router"
)

// Shared is a Router and the watch feeding it, shared by every Envoy filter
// config naming the same config file. Envoy creates the new filter config
// before destroying the old one on a listener update, so sharing keeps the
// router (and its backend sessions) alive across updates: otherwise every
// update would make every client re-open every backend session.
type Shared struct {
	path     string
	router   *router.Router
	log      *slog.Logger
	cancel   context.CancelFunc // stops the watch
	watch    *config.WatchStats
	refs     int // guarded by registry.mu
	counters Counters
}

var registry = struct {
	sync.Mutex
	m map[string]*Shared
}{m: map[string]*Shared{}}

// Acquire returns the Shared router of the config file at path, loading the
// file and starting its watch on first use; every Acquire needs a Release.
// Records are logged through handler, tagged with the path. It runs on
// Envoy's main thread, while Envoy creates a filter config; path may alias
// host memory (it is copied).
//
// A file that parses but does not compile (e.g. a session key variable
// missing from Envoy's environment) fails like a parse error: better an
// Envoy config rejected at load than a router answering 503 to everything.
func Acquire(path string, handler slog.Handler) (*Shared, error) {
	registry.Lock()
	defer registry.Unlock()
	if sr := registry.m[path]; sr != nil {
		sr.refs++
		return sr, nil
	}
	path = strings.Clone(path)
	log := slog.New(handler).With("config", path)
	r := router.New(router.Options{Logger: log})
	ctx, cancel := context.WithCancel(context.Background())
	// Watch applies the first load before returning.
	var firstErr error
	first := true
	stats, err := config.Watch(ctx, path, config.WatchOptions{Logger: log}, func(c *config.Config) {
		err := r.Apply(c)
		if first {
			first, firstErr = false, err
			return
		}
		if err != nil {
			log.Error("config not applied; keeping the previous one", "error", err)
		}
	})
	if err == nil {
		err = firstErr
	}
	if err != nil {
		cancel()
		return nil, fmt.Errorf("config_path %q: %w", path, err)
	}
	sr := &Shared{path: path, router: r, log: log, cancel: cancel, watch: stats, refs: 1}
	sr.counters.init(&r.Metrics, stats)
	registry.m[path] = sr
	return sr, nil
}

// Release drops a reference; both adapters call it from their config
// destroy hook. The last Release stops the watch and closes the Router
// (router.Router.Close): the watch's goroutine and the Router's (backend
// session opens, notifications to backends) are cancelled and waited for,
// which takes as long as cancelled network requests take to return.
// Streams may still use the Router (Envoy keeps a filter config alive
// while its streams are): it goes on routing them, but a backend session
// one of them still needs cannot be opened any more (a retryable 503).
func (sr *Shared) Release() {
	registry.Lock()
	sr.refs--
	last := sr.refs == 0
	if last {
		sr.cancel()
		delete(registry.m, sr.path)
	}
	registry.Unlock()
	if last {
		// Outside the lock: a new Acquire of the path must not wait for the
		// revocation follower's long poll or for cancelled requests.
		<-sr.watch.Stopped() // no Apply after Close
		sr.router.Close()
	}
}

// Router returns the shared router.
func (sr *Shared) Router() *router.Router { return sr.router }

// Log returns the logger tagged with the config path.
func (sr *Shared) Log() *slog.Logger { return sr.log }

// Counters returns the router's counters and their export state.
func (sr *Shared) Counters() *Counters { return &sr.counters }
