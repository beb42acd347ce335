package router

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpgw/mcpgw/filter/sessionid"
)

// Session termination.
//
// The router verifies a gateway session id by its signature alone, without
// asking the broker; to honour the end of a session it checks three rules
// on every request that names one (Stream.checkSession), all without I/O:
//
//  1. Lifetime: an id issued gateway.sessionMaxLifetime ago or more is over
//     (its issue time is in the id).
//  2. Broker restart (brokerRestartEndsSessions): an id issued before the
//     broker process started is over, since the broker keeps its sessions
//     in memory and a restart loses them all.
//  3. Revocation: the broker terminated the session (DELETE, idle expiry,
//     its virtual server removed) and said so on its revocation feed
//     (follow.go), or a DELETE for it passed through this router.
//
// An id that is over gets HTTP 404 with the JSON-RPC error of an unknown
// session (RejectUnknownSession), whatever the request, and the client
// initializes again, as MCP requires.
//
// Delay: a DELETE through this router takes effect here at once; any other
// termination reaches every router following the broker within one long-poll
// round trip (typically under 100 ms). While the broker cannot be reached
// the router keeps what it knows and retries with backoff (up to
// maxFeedBackoff): terminations made meanwhile take effect when it reaches
// the broker again, and at the latest when the ids' lifetime ends. A router
// with no gateway.brokerURL applies rules 1 and 3 (its own DELETEs) only.
//
// Memory: a revoked id is remembered (its random part and issue time)
// until its lifetime ends, which bounds the set.

// brokerRestartEndsSessions is rule 2. It holds while broker sessions live
// only in the broker's memory; a broker whose sessions survive a restart
// (or several broker replicas, each with its own start) must switch it off.
const brokerRestartEndsSessions = true

// pruneEvery is how often the revocation set drops ids past their lifetime.
const pruneEvery = time.Minute

// revocations is what the router knows of terminated sessions.
type revocations struct {
	// notBefore is rule 2: ids issued before it (Unix seconds) are over.
	notBefore atomic.Int64

	mu        sync.RWMutex
	ids       map[[sessionid.RandomLen]byte]int64 // random part → issued-at
	lastPrune time.Time
}

func newRevocations() *revocations {
	return &revocations{ids: map[[sessionid.RandomLen]byte]int64{}, lastPrune: time.Now()}
}

// ended reports whether the session c names is over at now (Unix seconds)
// for a lifetime of that many seconds. It does not allocate.
func (v *revocations) ended(c *sessionid.Claims, now, lifetime int64) bool {
	if now-c.IssuedAt >= lifetime || c.IssuedAt < v.notBefore.Load() {
		return true
	}
	v.mu.RLock()
	_, revoked := v.ids[c.Random]
	v.mu.RUnlock()
	return revoked
}

// revoke records the session c names as terminated and reports whether it
// was not already. Ids past their lifetime are dropped once in a while.
func (v *revocations) revoke(c sessionid.Claims, lifetime int64) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if now := time.Now(); now.Sub(v.lastPrune) >= pruneEvery {
		v.pruneLocked(now.Unix(), lifetime)
		v.lastPrune = now
	}
	if _, ok := v.ids[c.Random]; ok {
		return false
	}
	v.ids[c.Random] = c.IssuedAt
	return true
}

// brokerStarted applies rule 2 for a broker process that started at
// startedAt (Unix seconds).
func (v *revocations) brokerStarted(startedAt int64) {
	if !brokerRestartEndsSessions {
		return
	}
	for {
		cur := v.notBefore.Load()
		if startedAt <= cur || v.notBefore.CompareAndSwap(cur, startedAt) {
			return
		}
	}
}

func (v *revocations) pruneLocked(now, lifetime int64) {
	notBefore := v.notBefore.Load()
	for r, issued := range v.ids {
		if now-issued >= lifetime || issued < notBefore {
			delete(v.ids, r)
		}
	}
}

// len returns how many revoked ids are remembered.
func (v *revocations) len() int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return len(v.ids)
}
