package config

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Defaults of the gateway session settings (Gateway.MaxLifetime and
// Gateway.KeyGracePeriod apply them).
const (
	DefaultSessionMaxLifetime    = 24 * time.Hour
	DefaultSessionKeyGracePeriod = time.Hour
)

// Duration is a length of time written as a Go duration string, such as
// "90s", "30m" or "24h". Validate checks it; "" means the field's default.
type Duration string

// Parse returns the duration ("" is 0).
func (d Duration) Parse() (time.Duration, error) {
	if d == "" {
		return 0, nil
	}
	v, err := time.ParseDuration(string(d))
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (want e.g. \"30m\" or \"24h\")", string(d))
	}
	return v, nil
}

// MaxLifetime returns SessionMaxLifetime, or its default when unset.
func (g *Gateway) MaxLifetime() time.Duration {
	if v, err := g.SessionMaxLifetime.Parse(); err == nil && v > 0 {
		return v
	}
	return DefaultSessionMaxLifetime
}

// KeyGracePeriod returns SessionKeyGracePeriod, or its default when unset.
func (g *Gateway) KeyGracePeriod() time.Duration {
	if g.SessionKeyGracePeriod == "" {
		return DefaultSessionKeyGracePeriod
	}
	v, _ := g.SessionKeyGracePeriod.Parse()
	return max(v, 0)
}

// SessionKeys resolves the key ring: the session key, then each previous
// key. Errors name the field and never contain a value.
func (g *Gateway) SessionKeys() (current []byte, previous [][]byte, err error) {
	v, err := g.SessionKey.Resolve()
	if err != nil {
		return nil, nil, fmt.Errorf("gateway.sessionKey: %w", err)
	}
	if len(v) < minSessionKeyLen {
		return nil, nil, fmt.Errorf("gateway.sessionKey: must be at least %d bytes", minSessionKeyLen)
	}
	for i, ref := range g.PreviousSessionKeys {
		p, err := ref.Resolve()
		if err != nil {
			return nil, nil, fmt.Errorf("gateway.previousSessionKeys[%d]: %w", i, err)
		}
		if len(p) < minSessionKeyLen {
			return nil, nil, fmt.Errorf("gateway.previousSessionKeys[%d]: must be at least %d bytes", i, minSessionKeyLen)
		}
		previous = append(previous, []byte(p))
	}
	return []byte(v), previous, nil
}

// minSessionKeyLen is sessionid.MinKeyLen (this package imports nothing of
// the gateway's own).
const minSessionKeyLen = 32

// validateSessions checks the session settings of the gateway.
func (g *Gateway) validateSessions() []error {
	var errs []error
	for i, ref := range g.PreviousSessionKeys {
		if err := ref.validate(); err != nil {
			errs = append(errs, fmt.Errorf("gateway.previousSessionKeys[%d]: %w", i, err))
		}
	}
	if v, err := g.SessionMaxLifetime.Parse(); err != nil {
		errs = append(errs, fmt.Errorf("gateway.sessionMaxLifetime: %w", err))
	} else if g.SessionMaxLifetime != "" && v < time.Second {
		// Ids carry their issue time in whole seconds.
		errs = append(errs, fmt.Errorf("gateway.sessionMaxLifetime: %s is shorter than 1s", v))
	}
	if v, err := g.SessionKeyGracePeriod.Parse(); err != nil {
		errs = append(errs, fmt.Errorf("gateway.sessionKeyGracePeriod: %w", err))
	} else if v < 0 {
		errs = append(errs, errors.New("gateway.sessionKeyGracePeriod: must not be negative"))
	}
	if g.BrokerURL != "" {
		if err := validateURL(g.BrokerURL); err != nil {
			errs = append(errs, fmt.Errorf("gateway.brokerURL: %w", err))
		} else if strings.ContainsAny(g.BrokerURL, "?#") {
			errs = append(errs, fmt.Errorf("gateway.brokerURL: %q: want a base URL without query or fragment", g.BrokerURL))
		}
	}
	return errs
}

// RevocationsPath is where the broker serves its revocation feed, on its
// own listener, outside EndpointPath: Envoy routes only EndpointPath (and
// below) to the broker, and the router refuses this path (see
// IsInternalPath), so clients cannot reach it through the gateway.
//
//	GET RevocationsPath?epoch=<epoch>&after=<seq>&wait=<seconds>
//
// answers a Revocations: when epoch is not the broker's current one (the
// follower's first request, or the broker restarted), at once, with every
// retained entry; otherwise with the entries after seq, waiting up to wait
// seconds (default 25, at most 60) for one (a long poll).
const RevocationsPath = "/.mcpgw/v1/revocations"

// internalPrefix is the path prefix of every internal endpoint.
const internalPrefix = "/.mcpgw/"

// IsInternalPath reports whether an HTTP request path (":path", query
// included) names one of the broker's internal endpoints however it is
// spelled: percent-encoded, or behind dot segments (which Go's ServeMux
// answers with a redirect, but other servers may resolve). The router
// refuses such requests from clients. It allocates only for a path with a
// percent sign.
func IsInternalPath(path string) bool {
	path, _, _ = strings.Cut(path, "?")
	if strings.IndexByte(path, '%') >= 0 {
		u, err := url.PathUnescape(path)
		if err != nil {
			return false // no server decodes it to anything
		}
		path = u
	}
	return strings.Contains(path, internalPrefix[:len(internalPrefix)-1])
}

// Revocations is the body of the broker's answer on RevocationsPath.
type Revocations struct {
	// Epoch names the broker process: a new one each time it starts.
	Epoch string `json:"epoch"`
	// StartedAt is when this broker process started, in Unix seconds. A
	// broker keeps its sessions in memory: none issued before StartedAt
	// exists any more (the router's brokerRestartEndsSessions rule).
	StartedAt int64 `json:"startedAt"`
	// Seq numbers the broker's last entry; the follower asks for the
	// entries after it next.
	Seq uint64 `json:"seq"`
	// Full is set when Sessions holds every retained entry (a new epoch
	// for the follower) rather than only those after the requested seq.
	Full bool `json:"full,omitempty"`
	// Sessions are the gateway session ids the broker terminated (DELETE,
	// idle expiry, virtual server removed) and that have not reached their
	// maximum lifetime yet.
	Sessions []string `json:"sessions"`
}
