package upstream

import (
	"net/http"
	"sync/atomic"

	"github.com/mcpgw/mcpgw/filter/config"
)

// credential is an Upstream's backend credential: its reference and the
// value last resolved, which every request to the backend reads. So a new
// value (RefreshCredential, which the broker calls when the config watch saw
// the secret change) reaches the backend on the very next request of the
// live session, without a reconnect.
type credential struct {
	ref   *config.Credential // nil: the server has none
	value atomic.Pointer[string]
}

// resolve reads the referenced value and makes it current. On error the
// current value stays; errors never contain a value.
func (c *credential) resolve() error {
	if c.ref == nil {
		return nil
	}
	v, err := c.ref.Resolve()
	if err != nil {
		return invalidf("credential: %v", err)
	}
	c.value.Store(&v)
	return nil
}

// ensure resolves the credential unless a value is already current.
func (c *credential) ensure() error {
	if c.ref == nil || c.value.Load() != nil {
		return nil
	}
	return c.resolve()
}

// transport wraps base to send the current value on every request.
func (c *credential) transport(base http.RoundTripper) http.RoundTripper {
	if c.ref == nil {
		return base
	}
	return &credentialTransport{base: base, name: c.ref.HeaderName(), value: &c.value}
}

// credentialTransport sets the backend credential's header on every
// request, to the value current at the time.
type credentialTransport struct {
	base  http.RoundTripper
	name  string
	value *atomic.Pointer[string]
}

func (t *credentialTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context()) // a RoundTripper must not modify its request
	if v := t.value.Load(); v != nil {
		r.Header.Set(t.name, *v)
	}
	return t.base.RoundTrip(r)
}

// RefreshCredential resolves the backend credential again: the requests
// that follow (on the live session too) send the new value. If it cannot be
// resolved, the last value stays in use and the error is returned.
func (u *Upstream) RefreshCredential() error {
	return u.cred.resolve()
}
