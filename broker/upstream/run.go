package upstream

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// run connects, watches the session and reconnects until ctx is done.
func (u *Upstream) run(ctx context.Context) {
	defer close(u.done)
	bo := backoff{min: u.opts.BackoffMin, max: u.opts.BackoffMax}
	for {
		cs, cat, err := u.connect(ctx)
		if ctx.Err() != nil {
			if cs != nil {
				cs.Close()
			}
			return
		}
		if err != nil {
			u.fail(err)
			if !sleep(ctx, bo.next()) {
				return
			}
			continue
		}
		readyAt := time.Now()
		// Publish first: once the status says ready, the lists are in place.
		u.publish(cat, cs)
		u.setState(StateReady, cs.InitializeResult().ProtocolVersion, nil)
		u.resubscribe(ctx, cs)
		// Wait returns when the connection breaks, e.g. the standalone SSE
		// stream got a 404 because the backend restarted, and at the
		// latest once cs is closed below: the goroutine is waited for.
		closed, waited := make(chan error, 1), make(chan struct{})
		go func() {
			defer close(waited)
			closed <- cs.Wait()
		}()
		err = u.monitor(ctx, cs, closed)
		u.dropSession()
		cs.Close()
		<-waited
		if ctx.Err() != nil {
			return
		}
		// A session that lived long was healthy: start the backoff afresh.
		// One that died at once must not make us reconnect in a tight loop.
		if time.Since(readyAt) > bo.max {
			bo.reset()
		}
		u.setState(StateConnecting, "", fmt.Errorf("session lost: %w", err))
		if !sleep(ctx, bo.next()) {
			return
		}
	}
}

// fail records a failed connection attempt and withdraws the catalog.
func (u *Upstream) fail(err error) {
	st := StateUnreachable
	if ierr := (*InvalidError)(nil); errors.As(err, &ierr) {
		st = StateInvalid
	}
	u.setState(st, "", err)
	u.publish(Catalog{}, nil)
}

// monitor watches a ready session; closed receives the result of its Wait.
// It returns why the session is no longer usable, or ctx's error.
func (u *Upstream) monitor(ctx context.Context, cs *mcp.ClientSession, closed <-chan error) error {
	ping := time.NewTicker(u.opts.PingInterval)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-closed:
			if err == nil {
				err = errors.New("closed by backend")
			}
			return err
		case <-ping.C:
			if err := u.probe(ctx, cs); err != nil {
				return err
			}
		case <-u.relist:
			if err := u.refresh(ctx, cs); err != nil {
				return err
			}
		}
	}
}

// probe checks that a ready session still works. The stateless protocol
// (2026-07-28) has no ping, so such a session re-lists instead, which also
// repairs a missed list_changed.
func (u *Upstream) probe(ctx context.Context, cs *mcp.ClientSession) error {
	if cs.InitializeResult().ProtocolVersion < statelessVersion {
		return u.ping(ctx, cs)
	}
	return u.reload(ctx, cs, true)
}

func (u *Upstream) ping(ctx context.Context, cs *mcp.ClientSession) error {
	pctx, cancel := context.WithTimeout(ctx, u.opts.RequestTimeout)
	defer cancel()
	if err := cs.Ping(pctx, nil); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	return nil
}

// refresh re-lists after a list_changed notification. A JSON-RPC error keeps
// the session and the previous catalog; anything else ends the session.
func (u *Upstream) refresh(ctx context.Context, cs *mcp.ClientSession) error {
	return u.reload(ctx, cs, false)
}

// reload is refresh; when probing, a request that never reached the backend
// also ends the session. The go-sdk reports those as JSON-RPC errors too
// ("rejected by transport", wrapping the HTTP client's *url.Error), which a
// list_changed re-list may keep since the next ping will tell, but a probe
// is that next ping.
func (u *Upstream) reload(ctx context.Context, cs *mcp.ClientSession, probing bool) error {
	lctx, cancel := context.WithTimeout(ctx, u.opts.RequestTimeout)
	defer cancel()
	announced := u.takeAnnounced()
	cat, err := discover(lctx, cs)
	if err == nil {
		u.publish(cat, cs)
		if announced != 0 {
			u.opts.OnListChanged(announced)
		}
		return nil
	}
	if uerr := (*url.Error)(nil); probing && errors.As(err, &uerr) {
		return err
	}
	if ierr, werr := (*InvalidError)(nil), (*jsonrpc.Error)(nil); errors.As(err, &ierr) || errors.As(err, &werr) {
		u.log.Warn("re-list failed; keeping the previous lists", "error", err)
		u.mu.Lock()
		u.snap.LastError = err.Error()
		u.mu.Unlock()
		return nil
	}
	return err
}

// sleep waits d or until ctx is done, reporting whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// backoff yields exponentially growing delays with jitter, so that many
// brokers reconnecting to one restarted backend do not arrive in lockstep.
type backoff struct {
	min, max time.Duration
	cur      time.Duration
}

// next returns a delay in [cur/2, cur], cur doubling from min up to max.
func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	half := b.cur / 2
	return half + rand.N(b.cur-half+1)
}

func (b *backoff) reset() { b.cur = 0 }
