package fakehost

import (
	"strconv"
	"strings"
	"time"
)

// Statuses the hooks report: the api.StatusType Go returned, or NotCalled.
const (
	Running       = 0
	LocalReply    = 1
	Continue      = 2
	StopAndBuffer = 3
	NotCalled     = -1
)

// Stream is one HTTP stream in the fake Envoy; its worker is the fake's
// main thread.
type Stream struct {
	h  *Host
	id string
}

// NewStream creates a stream of c on worker workerID (0..3).
func (c *Config) NewStream(workerID int) *Stream {
	f := c.h.one("stream", "stream", c.id, strconv.Itoa(workerID))
	return &Stream{h: c.h, id: f[0]}
}

// Header adds a header to the request ("req"), response ("resp") or
// request trailers ("trailer") map.
func (s *Stream) Header(which, name, value string) {
	s.h.call("header", s.id, which, hexOf(name), hexOf(value))
}

// SetDetails sets the response code details the plugin reads.
func (s *Stream) SetDetails(d string) { s.h.call("details", s.id, hexOf(d)) }

func (s *Stream) status(args ...string) int { return atoi(s.h.one("status", args...)[0]) }

// DecodeHeaders delivers the request headers.
func (s *Stream) DecodeHeaders(end bool) int { return s.status("decode_headers", s.id, flag(end)) }

// DecodeData delivers a request body chunk.
func (s *Stream) DecodeData(data string, end bool) int {
	return s.status("decode_data", s.id, hexOf(data), flag(end))
}

// DecodeTrailers delivers the request trailers.
func (s *Stream) DecodeTrailers() int { return s.status("decode_trailers", s.id) }

// EncodeHeaders delivers the response headers.
func (s *Stream) EncodeHeaders(end bool) int { return s.status("encode_headers", s.id, flag(end)) }

// Await runs work the plugin posts until the stream resumed (a Continue or
// a local reply ran) or d passes.
func (s *Stream) Await(d time.Duration) bool {
	return s.h.one("resumed", "await", s.id, strconv.Itoa(int(d/time.Millisecond)))[0] == "1"
}

// Destroy ends the stream: OnStreamComplete, then OnDestroy.
func (s *Stream) Destroy() { s.h.call("destroy", s.id) }

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// Reply is a local reply.
type Reply struct {
	Status      int
	Body        string
	Details     string
	ContentType string
	FromEncoder bool
	Panic       bool   // the shim's reply to a panic that escaped the plugin
	SessionID   string // its mcp-session-id header
}

// Snapshot is a stream's state in the fake Envoy.
type Snapshot struct {
	Request, Response map[string][]string
	// UpstreamHeaders, UpstreamEnd and UpstreamBody: what continued towards
	// the upstream.
	UpstreamHeaders, UpstreamEnd bool
	UpstreamBody                 string
	DownstreamHeaders            bool
	Replies                      []Reply
	RouteCacheClears             int
	Continues                    int
	Finalized                    int
	// Errors are the API calls Envoy refused (or does not model).
	Errors []string
}

// Dump returns the stream's state (after running posted work).
func (s *Stream) Dump() *Snapshot {
	snap := &Snapshot{Request: map[string][]string{}, Response: map[string][]string{}}
	for _, line := range s.h.call("dump", s.id) {
		f := strings.Fields(line)
		switch f[0] {
		case "req", "resp":
			m := snap.Request
			if f[0] == "resp" {
				m = snap.Response
			}
			k := unhex(f[1])
			m[k] = append(m[k], unhex(f[2]))
		case "upstream":
			snap.UpstreamHeaders, snap.UpstreamEnd, snap.UpstreamBody = f[1] == "1", f[2] == "1", unhex(f[3])
		case "downstream":
			snap.DownstreamHeaders = f[1] == "1"
		case "reply":
			snap.Replies = append(snap.Replies, Reply{Status: atoi(f[1]), Body: unhex(f[2]), Details: unhex(f[3]),
				ContentType: unhex(f[4]), FromEncoder: f[5] == "1", Panic: f[6] == "1", SessionID: unhex(f[7])})
		case "clears":
			snap.RouteCacheClears = atoi(f[1])
		case "continues":
			snap.Continues = atoi(f[1])
		case "finalized":
			snap.Finalized = atoi(f[1])
		case "errors":
			snap.Errors = strings.Split(strings.TrimSuffix(unhex(f[1]), "\n"), "\n")
		}
	}
	return snap
}
