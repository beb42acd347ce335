package mcptest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Initializes records the credential (Authorization header) of each
// initialize request a server gets, by the client that sent it
// (clientInfo.name: the router's backend sessions are "mcpgw-router"), so a
// test can tell which token each new backend session was opened with.
type Initializes struct {
	mu  sync.Mutex
	got map[string][]string
}

// RouterClient is the clientInfo.name of the backend sessions the router
// opens.
const RouterClient = "mcpgw-router"

// Wrap returns next recording into i.
func (i *Initializes) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.Header.Get("Mcp-Session-Id") == "" {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			var msg struct {
				Method string
				Params struct{ ClientInfo struct{ Name string } }
			}
			if json.Unmarshal(body, &msg) == nil && msg.Method == "initialize" {
				i.mu.Lock()
				if i.got == nil {
					i.got = map[string][]string{}
				}
				name := msg.Params.ClientInfo.Name
				i.got[name] = append(i.got[name], r.Header.Get("Authorization"))
				i.mu.Unlock()
			}
		}
		next.ServeHTTP(w, r)
	})
}

// Of returns the credentials of client's initializes, in order.
func (i *Initializes) Of(client string) []string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return append([]string(nil), i.got[client]...)
}

// ServeRecording serves srv like Serve, recording its initializes into i.
func ServeRecording(ctx context.Context, addr string, srv *mcp.Server, i *Initializes) (url string, stop func(), err error) {
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil)
	return ServeHandler(ctx, addr, i.Wrap(h), func() {
		for ss := range srv.Sessions() {
			ss.Close()
		}
	})
}
