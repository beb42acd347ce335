package router

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/mcpgw/mcpgw/filter/config"
)

// Replaying a call whose backend session was lost.
//
// A backend that restarted, or expired the session the router opened for
// the client, answers a routed call with 404 without running it. The
// router holds the whole request body, so rather than fail the call it
// opens a new backend session (as for a first call, shared with concurrent
// callers) and sends the call again, once, straight to the server's URL
// with the router's HTTP client. The client gets the backend's answer
// (status, content type, body) rewritten as any routed answer is (relay
// ids and event ids, sse.go). A 404 again, or any failure, gives the
// retryable RejectBackendSessionLost (RejectBackendUnavailable when no new
// session opens): never a loop.
//
// The answer is read whole, then sent as the adapter's local reply (which
// has one body): a replayed call's progress notifications arrive with its
// result. A backend that asks the client something during the replayed
// call (elicitation, sampling, roots) would wait for an answer to a
// question the client sees only afterwards: such a replay is abandoned
// with the retryable error, and the client's retry runs on the new session
// with its answer streamed as usual.

// maxAnswer bounds a replayed call's answer, which is held whole in memory
// until it is sent.
const maxAnswer = 16 << 20

var (
	errAnswerTooLarge = fmt.Errorf("answer larger than %d bytes", maxAnswer)
	errAsksClient     = errors.New("the backend sent the client a request during the call")
)

// answer is a replayed call's response.
type answer struct {
	status      int
	contentType string
	body        []byte
}

// replayable reports whether the call can be sent again after a lost
// backend session: a tools/call or prompts/get whose body the Stream kept.
func (s *Stream) replayable() bool {
	return !s.replayed && (s.method == "tools/call" || s.method == "prompts/get") && s.sentBody() != nil
}

// keepForReplay keeps the body a session-era call goes to its backend with:
// the rewritten body when there is one (NewBody), else a pooled copy of
// the request body json, which goes away after RequestBody.
func (s *Stream) keepForReplay(json string) {
	if s.body != nil {
		return
	}
	bp := bodyPool.Get().(*[]byte)
	*bp = append((*bp)[:0], json...)
	s.replayBody = bp
}

// sentBody returns the body the call went upstream with, if it was kept.
func (s *Stream) sentBody() []byte {
	switch {
	case s.body != nil:
		return *s.body
	case s.replayBody != nil:
		return *s.replayBody
	}
	return nil
}

// Replay sends the call again on a new backend session after ResponseHeaders
// returned ResponseReplay. It blocks on network I/O: call it on a
// goroutine, never on a host worker thread, and cancel ctx when the stream
// goes away. It returns ResponseAnswer (send Answer) or ResponseReply (send
// Reply).
func (s *Stream) Replay(ctx context.Context) ResponseAction {
	s.replayed = true
	s.r.Metrics.Replays.Add(1)
	s.r.log.Info("backend session lost; replaying the call on a new one", "server", s.server.Name)
	backend, err := s.ensureBackend(ctx)
	if err != nil {
		return s.replayFailed(RejectBackendUnavailable, "open a new backend session", err)
	}
	s.backend = backend
	resp, err := s.r.init.call(ctx, s.server, backend, s.protocolVersion, s.sentBody())
	if err != nil {
		return s.replayFailed(RejectBackendSessionLost, "send the call", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		s.invalidateBackend()
		return s.replayFailed(RejectBackendSessionLost, "send the call", errors.New("HTTP 404 on the new session"))
	}
	ct := resp.Header.Get("Content-Type")
	body, err := readAnswer(resp.Body, isEventStream(ct))
	if err != nil {
		return s.replayFailed(RejectBackendSessionLost, "read the answer", err)
	}
	s.answer = answer{status: resp.StatusCode, contentType: ct, body: body}
	// The same rewriting as for a routed answer passing through Envoy.
	if s.WatchResponseBody(ct) {
		if out, replace := s.ResponseBody(body, true); replace {
			s.answer.body = out
		}
	}
	s.r.Metrics.ReplaysSucceeded.Add(1)
	return ResponseAnswer
}

func (s *Stream) replayFailed(r Rejection, step string, err error) ResponseAction {
	s.r.log.Warn("replaying a call after a lost backend session failed",
		"server", s.server.Name, "step", step, "error", err)
	s.reject(r)
	return ResponseReply
}

// Answer returns the replayed call's answer (ResponseAnswer): its HTTP
// status and body. The body is valid until Release.
func (s *Stream) Answer() (status int, body []byte) {
	return s.answer.status, s.answer.body
}

// ApplyAnswer writes the headers of the replayed call's answer: its content
// type, and the client's gateway session id (never the backend's).
func (s *Stream) ApplyAnswer(h HeaderWriter) {
	if s.answer.contentType != "" {
		h.Set("content-type", s.answer.contentType)
	}
	h.Set(config.HeaderSessionID, s.gateway)
}

// readAnswer reads a replayed call's answer whole. An SSE answer is checked
// event by event as it arrives: one carrying a request to the client ends
// the replay (see above).
func readAnswer(body io.Reader, sse bool) ([]byte, error) {
	var buf []byte
	chunk := make([]byte, 32<<10)
	scanned := 0 // buf[:scanned] are whole events checked
	for {
		n, err := body.Read(chunk)
		buf = append(buf, chunk[:n]...)
		if len(buf) > maxAnswer {
			return nil, errAnswerTooLarge
		}
		for sse {
			next := nextEventEnd(buf, scanned)
			if next < 0 {
				break
			}
			if asksClient(buf[scanned:next]) {
				return nil, errAsksClient
			}
			scanned = next
		}
		switch {
		case err == io.EOF:
			if sse && asksClient(buf[scanned:]) {
				return nil, errAsksClient
			}
			return buf, nil
		case err != nil:
			return nil, err
		}
	}
}

// asksClient reports whether an SSE event carries a request to the client
// (or a message the router would refuse in its place).
func asksClient(event []byte) bool {
	data, _, ok := eventData(event)
	if !ok {
		return false
	}
	_, _, v := requestID(data)
	return v != idNone
}
