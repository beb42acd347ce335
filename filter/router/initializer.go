package router

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/mcpgw/mcpgw/filter/config"
)

// DefaultProtocolVersion is offered to backends when the client did not say
// which version it speaks.
const DefaultProtocolVersion = "2025-06-18"

// initializer opens backend sessions on a client's behalf: initialize, then
// notifications/initialized, straight to the server's URL. It runs on a
// goroutine of the adapter's, never on an Envoy worker thread.
type initializer struct {
	client *http.Client
	calls  *http.Client // client without its timeout, for replayed calls
	log    *slog.Logger
}

const maxInitResponse = 1 << 20

// open initializes a session with srv on behalf of the client described by
// c and returns its id ("" when the server is stateless and assigns none).
// The backend sees the client's capabilities (so it may elicit or sample),
// and, once the session is open, the client's logging level, if it set one
// (failing that is logged, not fatal).
func (in *initializer) open(ctx context.Context, srv *Server, c clientContext) (string, error) {
	protocolVersion := c.version
	if protocolVersion == "" {
		protocolVersion = DefaultProtocolVersion
	}
	// The version comes from the client's header: encode it as a JSON
	// string rather than splicing it in, or a crafted header could rewrite
	// the initialize request (e.g. add capabilities).
	version, _ := appendJSONString(nil, protocolVersion)
	// The capabilities are a JSON object the router parsed out of the
	// client's valid initialize request (rememberInitialize): splicing the
	// raw value in keeps the request valid.
	capabilities := c.capabilities
	if capabilities == "" {
		capabilities = "{}"
	}
	body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":` + string(version) +
		`,"capabilities":` + capabilities + `,"clientInfo":{"name":"mcpgw-router","version":"0.1.0"}}}`
	resp, err := in.post(ctx, srv, body, "", "")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("initialize: HTTP %d", resp.StatusCode)
	}
	msg, err := readResponse(resp, "1")
	if err != nil {
		return "", fmt.Errorf("initialize: %w", err)
	}
	if e := gjson.GetBytes(msg, "error"); e.Exists() {
		return "", fmt.Errorf("initialize: backend error %s", e.Raw)
	}
	negotiated := gjson.GetBytes(msg, "result.protocolVersion").String()
	if negotiated == "" {
		return "", errors.New("initialize: result has no protocolVersion")
	}
	sid := resp.Header.Get(config.HeaderSessionID)
	note, err := in.post(ctx, srv, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, sid, negotiated)
	if err != nil {
		return "", fmt.Errorf("notifications/initialized: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(note.Body, maxInitResponse))
	note.Body.Close()
	if note.StatusCode/100 != 2 {
		return "", fmt.Errorf("notifications/initialized: HTTP %d", note.StatusCode)
	}
	in.log.Debug("backend session opened", "server", srv.Name, "protocolVersion", negotiated)
	if c.level != "" && sid != "" {
		if err := in.setLevel(ctx, srv, sid, negotiated, c.level); err != nil {
			in.log.Warn("backend logging/setLevel failed", "server", srv.Name, "error", err)
		}
	}
	return sid, nil
}

// setLevelID is the JSON-RPC id of the router's own logging/setLevel
// requests; a string, so that it cannot collide with a client's numeric ids.
const setLevelID = `"mcpgw-setlevel"`

// setLevel sends logging/setLevel to the backend session sid. level must be
// one of logLevels (it is spliced in).
func (in *initializer) setLevel(ctx context.Context, srv *Server, sid, version, level string) error {
	body := `{"jsonrpc":"2.0","id":` + setLevelID + `,"method":"logging/setLevel","params":{"level":"` + level + `"}}`
	resp, err := in.post(ctx, srv, body, sid, version)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("logging/setLevel: HTTP %d", resp.StatusCode)
	}
	msg, err := readResponse(resp, setLevelID)
	if err != nil {
		return fmt.Errorf("logging/setLevel: %w", err)
	}
	if e := gjson.GetBytes(msg, "error"); e.Exists() {
		return fmt.Errorf("logging/setLevel: backend error %s", e.Raw)
	}
	in.log.Debug("backend logging level set", "server", srv.Name, "level", level)
	return nil
}

// notify sends a client's notification (a JSON-RPC message without id) to
// the backend session sid.
func (in *initializer) notify(ctx context.Context, srv *Server, sid, version, body string) error {
	resp, err := in.post(ctx, srv, body, sid, version)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return nil
}

func (in *initializer) post(ctx context.Context, srv *Server, body, sid, version string) (*http.Response, error) {
	req, err := newBackendRequest(ctx, srv, strings.NewReader(body), sid, version)
	if err != nil {
		return nil, err
	}
	// A backend that restarted leaves dead connections in the idle pool, and
	// net/http only retries a request that failed on one when it is
	// idempotent. Opening a session may safely be retried (at worst the
	// backend holds an unused session until it expires it), so say so; a nil
	// Idempotency-Key marks the request without sending the header.
	req.Header["Idempotency-Key"] = nil
	return in.client.Do(req)
}

// call sends a client's call (a replay: replay.go) to the backend session
// sid, with the client's protocol version header, as Envoy sent the
// original. Unlike post's requests it is not marked idempotent: a call must
// not run twice because a connection broke.
func (in *initializer) call(ctx context.Context, srv *Server, sid, version string, body []byte) (*http.Response, error) {
	req, err := newBackendRequest(ctx, srv, bytes.NewReader(body), sid, version)
	if err != nil {
		return nil, err
	}
	return in.calls.Do(req)
}

// newBackendRequest is a POST of a JSON-RPC message to srv, on the backend
// session sid ("" for none), with the server's credential.
func newBackendRequest(ctx context.Context, srv *Server, body io.Reader, sid, version string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if sid != "" {
		req.Header.Set(config.HeaderSessionID, sid)
	}
	if version != "" {
		req.Header.Set(config.HeaderProtocolVersion, version)
	}
	if srv.CredentialHeader != "" {
		req.Header.Set(srv.CredentialHeader, srv.CredentialValue)
	}
	return req, nil
}

// readResponse returns the JSON-RPC response with the given raw id from a
// JSON or SSE body.
func readResponse(resp *http.Response, rawID string) ([]byte, error) {
	body := io.LimitReader(resp.Body, maxInitResponse)
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		b, err := io.ReadAll(body)
		if err != nil {
			return nil, err
		}
		if !gjson.ValidBytes(b) {
			return nil, errors.New("response is not JSON")
		}
		return b, nil
	}
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 64<<10), maxInitResponse)
	for sc.Scan() {
		data, ok := bytes.CutPrefix(sc.Bytes(), []byte("data:"))
		if !ok {
			continue
		}
		data = bytes.TrimSpace(data)
		if gjson.GetBytes(data, "id").Raw == rawID {
			return bytes.Clone(data), nil
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return nil, errors.New("event stream ended without a response")
}

// close ends a backend session (best effort: backends expire sessions
// anyway).
func (in *initializer) close(ctx context.Context, srv *Server, sid string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, srv.URL, nil)
	if err != nil {
		return
	}
	req.Header.Set(config.HeaderSessionID, sid)
	if srv.CredentialHeader != "" {
		req.Header.Set(srv.CredentialHeader, srv.CredentialValue)
	}
	resp, err := in.client.Do(req)
	if err != nil {
		in.log.Debug("backend session close failed", "server", srv.Name, "error", err)
		return
	}
	resp.Body.Close()
}
