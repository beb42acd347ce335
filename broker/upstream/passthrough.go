package upstream

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
)

// HasExtension reports whether the backend advertised the named protocol
// extension (capabilities.extensions) in its current session; false while
// it is not ready.
func (u *Upstream) HasExtension(name string) bool {
	cs, err := u.Session()
	if err != nil {
		return false
	}
	res := cs.InitializeResult()
	if res == nil || res.Capabilities == nil {
		return false
	}
	_, ok := res.Capabilities.Extensions[name]
	return ok
}

// Post sends one JSON-RPC message to the backend's endpoint as a plain HTTP
// POST with the given headers (plus the server's credential), outside any
// session: for stateless-era requests the broker passes through without
// modelling them (such as the tasks extension's methods). The caller closes
// the response body.
func (u *Upstream) Post(ctx context.Context, header http.Header, body []byte) (*http.Response, error) {
	if err := u.cred.ensure(); err != nil {
		return nil, err
	}
	rt := u.cred.transport(u.base)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.srv.URL, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("server %q: %w", u.srv.Name, err)
	}
	req.Header = header.Clone()
	req.ContentLength = int64(len(body))
	return (&http.Client{Transport: rt, Timeout: u.opts.RequestTimeout}).Do(req)
}
