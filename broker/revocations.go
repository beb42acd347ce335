package broker

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/mcpgw/mcpgw/filter/config"
	"github.com/mcpgw/mcpgw/filter/sessionid"
)

// The revocation feed.
//
// The routers in Envoy verify gateway session ids by signature, without
// asking the broker; so the broker tells them which sessions it ended. It
// keeps a log of the client sessions it terminated — by DELETE, for
// idleness, or because their virtual server went away — each until the
// session's id reaches gateway.sessionMaxLifetime (the routers refuse it by
// then anyway), and serves it at config.RevocationsPath on its own
// listener, which Envoy does not route clients to. Each router long-polls
// it (filter/router/follow.go).
//
// The broker keeps its sessions in memory, so a restart ends them all: the
// feed carries the process's epoch and start time, and a router that sees a
// new epoch ends every session issued before that start. The broker never
// issues an id dated before its start (mintSessionID), so that rule cannot
// catch one of its own.

// Long-poll bounds of the feed (config.RevocationsPath documents them).
const (
	defaultFeedWait = 25 * time.Second
	maxFeedWait     = 60 * time.Second
)

// revocationLog is the broker's record of terminated sessions.
type revocationLog struct {
	epoch string
	// startedAt is the broker's start, rounded up to the second (Unix
	// seconds): every id this process mints is issued at or after it.
	startedAt int64

	mu      sync.Mutex
	seq     uint64
	entries []revocation  // by seq
	changed chan struct{} // closed (and replaced) by each add
	stopped chan struct{} // closed by stop: long polls return
	stop    func()
}

type revocation struct {
	seq      uint64
	id       string
	issuedAt int64
}

func newRevocationLog(now time.Time) *revocationLog {
	var e [8]byte
	_, _ = rand.Read(e[:])
	l := &revocationLog{epoch: hex.EncodeToString(e[:]), startedAt: now.Unix() + 1,
		changed: make(chan struct{}), stopped: make(chan struct{})}
	l.stop = sync.OnceFunc(func() { close(l.stopped) })
	return l
}

// add records the session id as terminated (ids of unknown formats are
// not: no router verifies them).
func (l *revocationLog) add(id string) {
	c, ok := sessionid.Parse(id)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	l.entries = append(l.entries, revocation{seq: l.seq, id: id, issuedAt: c.IssuedAt})
	close(l.changed)
	l.changed = make(chan struct{})
}

// prune forgets the entries whose ids are past lifetime at now.
func (l *revocationLog) prune(now time.Time, lifetime time.Duration) {
	cutoff := now.Add(-lifetime).Unix()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = slices.DeleteFunc(l.entries, func(r revocation) bool { return r.issuedAt <= cutoff })
}

// since returns the answer for a follower at (epoch, after): every entry
// for another epoch, else those after seq; ready is false when there are
// none yet, and changed is then closed by the next add.
func (l *revocationLog) since(epoch string, after uint64) (feed config.Revocations, ready bool, changed <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	feed = config.Revocations{Epoch: l.epoch, StartedAt: l.startedAt, Seq: l.seq, Sessions: []string{}}
	from := 0
	if epoch != l.epoch || after > l.seq {
		feed.Full = true
	} else {
		from, _ = slices.BinarySearchFunc(l.entries, after+1, func(r revocation, seq uint64) int { return cmp.Compare(r.seq, seq) })
	}
	for _, r := range l.entries[from:] {
		feed.Sessions = append(feed.Sessions, r.id)
	}
	return feed, feed.Full || len(feed.Sessions) > 0, l.changed
}

// len returns the number of entries.
func (l *revocationLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}

// serveRevocations serves the feed (config.RevocationsPath): at once when
// there is news for the follower, else when news comes or the wait ends.
func (b *Broker) serveRevocations(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	after, err := strconv.ParseUint(q.Get("after"), 10, 64)
	if q.Get("after") == "" {
		after, err = 0, nil
	}
	wait := defaultFeedWait
	if v := q.Get("wait"); v != "" && err == nil {
		var secs int
		secs, err = strconv.Atoi(v)
		wait = min(time.Duration(max(secs, 0))*time.Second, maxFeedWait)
	}
	if err != nil {
		http.Error(w, "after and wait must be non-negative integers", http.StatusBadRequest)
		return
	}
	feed := b.awaitRevocations(r.Context(), q.Get("epoch"), after, wait)
	if feed == nil {
		return // the follower went away
	}
	b.metrics.feedAnswers.Add(1)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(feed)
}

// awaitRevocations returns the answer for a follower at (epoch, after),
// waiting up to wait for one with news; nil if ctx ends first.
func (b *Broker) awaitRevocations(ctx context.Context, epoch string, after uint64, wait time.Duration) *config.Revocations {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	waiting := false
	defer func() {
		if waiting {
			b.metrics.feedWaiting.Add(-1)
		}
	}()
	for {
		feed, ready, changed := b.revocations.since(epoch, after)
		if ready || wait <= 0 {
			return &feed
		}
		if !waiting {
			waiting = true
			b.metrics.feedWaiting.Add(1)
		}
		select {
		case <-changed:
		case <-timer.C:
			wait = 0 // answer with what there is
		case <-b.revocations.stopped:
			wait = 0
		case <-ctx.Done():
			return nil
		}
	}
}
