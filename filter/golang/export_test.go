package golang

import "github.com/envoyproxy/envoy/contrib/golang/common/go/api"

// WaitSessions waits for the session goroutines of the streams of a config
// that Parser.Parse returned: tests wait on it rather than sleep.
func WaitSessions(parsed api.Config) { parsed.(*filterConfig).sessions.Wait() }
