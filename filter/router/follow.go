package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mcpgw/mcpgw/filter/config"
	"github.com/mcpgw/mcpgw/filter/sessionid"
)

// The revocation feed follower: a goroutine per Router, started by Apply
// when the config names the broker (gateway.brokerURL), that long-polls the
// broker's feed (config.RevocationsPath) and applies what it learns to the
// router's revocations (revocation.go).

const (
	// feedWait is the long poll's wait the follower asks for; the broker
	// answers at once when it has something new.
	feedWait = 25 * time.Second
	// minFeedBackoff and maxFeedBackoff bound the wait between attempts
	// while the broker cannot be reached.
	minFeedBackoff = 100 * time.Millisecond
	maxFeedBackoff = 5 * time.Second
	// maxFeedBody bounds one answer (a full feed of ~1M terminated
	// sessions is ~60 MB).
	maxFeedBody = 256 << 20
)

// follower follows one broker's revocation feed.
type follower struct {
	base   string // gateway.brokerURL
	feed   string // its feed URL
	r      *Router
	client *http.Client
	cancel context.CancelFunc
	done   chan struct{}
	// epoch and seq say how far the feed has been read (the follower's
	// goroutine only).
	epoch string
	seq   uint64
}

// startFollower starts following the feed at brokerURL.
func (r *Router) startFollower(brokerURL string) *follower {
	t := http.DefaultTransport.(*http.Transport).Clone()
	f := &follower{
		base: brokerURL,
		feed: strings.TrimSuffix(brokerURL, "/") + config.RevocationsPath,
		r:    r,
		// Longer than the long poll, so that only a broker that stopped
		// answering times out.
		client: &http.Client{Timeout: feedWait + 10*time.Second, Transport: t},
		done:   make(chan struct{}),
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	go f.run(ctx)
	r.log.Info("following the broker's revocation feed", "url", f.feed)
	return f
}

// stop ends the follower and waits for its goroutine.
func (f *follower) stop() {
	f.cancel()
	<-f.done
	f.client.CloseIdleConnections()
}

func (f *follower) run(ctx context.Context) {
	defer close(f.done)
	backoff := minFeedBackoff
	failing := false
	for {
		feed, err := f.poll(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			f.r.Metrics.RevocationFeedErrors.Add(1)
			level := slog.LevelDebug
			if !failing {
				level = slog.LevelWarn // once per outage
			}
			failing = true
			f.r.log.Log(ctx, level, "revocation feed unreachable; retrying", "url", f.feed, "error", err, "retryIn", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, maxFeedBackoff)
			continue
		}
		if failing {
			f.r.log.Info("revocation feed reached again", "url", f.feed)
		}
		failing, backoff = false, minFeedBackoff
		f.apply(feed)
	}
}

// poll asks for the entries after the ones read.
func (f *follower) poll(ctx context.Context) (*config.Revocations, error) {
	q := url.Values{"epoch": {f.epoch}, "after": {strconv.FormatUint(f.seq, 10)},
		"wait": {strconv.Itoa(int(feedWait / time.Second))}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.feed+"?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	var feed config.Revocations
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxFeedBody)).Decode(&feed); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if feed.Epoch == "" {
		return nil, errors.New("answer without an epoch")
	}
	return &feed, nil
}

// apply records an answer: a new epoch first (rule 2 of revocation.go),
// then each terminated session, whose backend sessions the router also
// ends.
func (f *follower) apply(feed *config.Revocations) {
	if feed.Epoch != f.epoch {
		if f.epoch != "" {
			f.r.Metrics.BrokerRestarts.Add(1)
			f.r.log.Info("the broker restarted: sessions issued before it started are over", "startedAt", time.Unix(feed.StartedAt, 0).UTC())
		}
		f.r.revoked.brokerStarted(feed.StartedAt)
		f.epoch = feed.Epoch
	}
	f.seq = feed.Seq
	t := f.r.table.Load()
	lifetime := int64(config.DefaultSessionMaxLifetime / time.Second)
	if t != nil {
		lifetime = t.maxLifetime
	}
	var dropped []backendSession
	n := 0
	for _, id := range feed.Sessions {
		c, ok := sessionid.Parse(id)
		if !ok {
			continue // a format this router does not know: it never verifies one
		}
		if f.r.revoked.revoke(c, lifetime) {
			n++
		}
		dropped = append(dropped, f.r.sessions.Drop(id)...)
	}
	f.r.Metrics.RevocationsApplied.Add(int64(n))
	if len(dropped) > 0 && t != nil {
		f.r.closeBackends(t, dropped)
	}
}

// follow makes the router follow the feed of the broker at brokerURL (none
// when empty), replacing the follower of another URL.
func (r *Router) follow(brokerURL string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || (r.follower != nil && r.follower.base == brokerURL) || (r.follower == nil && brokerURL == "") {
		return
	}
	if r.follower != nil {
		r.follower.stop()
		r.follower = nil
	}
	if brokerURL != "" {
		r.follower = r.startFollower(brokerURL)
	}
}

// stopFollowing stops the revocation feed follower for good and waits for
// it: Apply no longer starts one (Router.Close).
func (r *Router) stopFollowing() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	if r.follower != nil {
		r.follower.stop()
		r.follower = nil
	}
}
