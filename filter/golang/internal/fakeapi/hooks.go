package fakeapi

import (
	"strconv"

	"github.com/envoyproxy/envoy/contrib/golang/common/go/api"
)

// DecodeHeaders delivers the request headers (Filter::decodeHeaders) and
// returns the filter's status.
func (s *Stream) DecodeHeaders(endStream bool) api.StatusType {
	s.mustWorker()
	defer s.hookDone()
	st, _ := s.doHeaders(&s.dec, s.Request, endStream)
	return st
}

// DecodeData delivers a request body chunk (Filter::decodeData and doData):
// while the filter waits for the whole body Envoy buffers chunks itself
// (NotCalled), and hands the filter the buffer plus the last chunk.
func (s *Stream) DecodeData(data []byte, endStream bool) api.StatusType {
	s.mustWorker()
	defer s.hookDone()
	return s.doData(&s.dec, append([]byte(nil), data...), endStream)
}

func (s *Stream) doData(p *procState, data []byte, end bool) api.StatusType {
	s.mu.Lock()
	p.endStream = end
	state := p.state
	s.mu.Unlock()
	switch state {
	case waitingData:
	case waitingAllData:
		if !end {
			s.buffer(p, data)
			return NotCalled
		}
		s.mu.Lock()
		data = append(p.dataBuffer, data...)
		p.dataBuffer = nil
		s.mu.Unlock()
	case processingHeader, processingData:
		s.buffer(p, data)
		return NotCalled
	default:
		if !p.encoding {
			// Done or stopped for a reply: Envoy passes data on, or drops
			// it after a local reply; either way Go is not involved.
			s.mu.Lock()
			if state == done {
				s.upstream.Body = append(s.upstream.Body, data...)
				s.upstream.EndStream = end
			}
			s.mu.Unlock()
		}
		return NotCalled
	}
	st, ok := s.doDataGo(p, data, end)
	if ok {
		s.continueDoData(p)
	}
	return st
}

func (s *Stream) buffer(p *procState, data []byte) {
	s.mu.Lock()
	p.dataBuffer = append(p.dataBuffer, data...)
	s.mu.Unlock()
}

// DecodeTrailers delivers the request trailers (Filter::doTrailer) and
// returns the filter's last status (NotCalled if Go was not involved).
func (s *Stream) DecodeTrailers() api.StatusType {
	s.mustWorker()
	defer s.hookDone()
	p := &s.dec
	s.mu.Lock()
	p.trailers = &headerMap{p: p, m: s.RequestTrailers, check: needTrailers}
	state, buffered := p.state, p.dataBuffer
	s.mu.Unlock()
	switch state {
	case waitingTrailer, waitingData:
		st, _ := s.doTrailerGo(p)
		return st
	case waitingAllData:
		if len(buffered) > 0 {
			s.mu.Lock()
			p.dataBuffer = nil
			s.mu.Unlock()
			st, _ := s.doDataGo(p, buffered, false)
			s.mu.Lock()
			next := p.state
			s.mu.Unlock()
			if next != waitingTrailer {
				return st
			}
		}
		s.continueDoData(p)
		st, _ := s.doTrailerGo(p)
		return st
	}
	return NotCalled // processing in Go: the trailers wait for it
}

func (s *Stream) doTrailerGo(p *procState) (api.StatusType, bool) {
	s.mu.Lock()
	p.state, p.doEndStream = processingTrailer, true
	t := p.trailers
	s.mu.Unlock()
	st := s.callGo(p, func() api.StatusType { return s.filter.DecodeTrailers(t) })
	ok := s.handleStatus(p, st)
	if ok {
		s.mu.Lock()
		s.upstream.EndStream = true
		s.mu.Unlock()
	}
	return st, ok
}

// EncodeData delivers a chunk of the response body (Filter::doData on the
// encoder side) and returns the filter's status (NotCalled if Go was not
// involved). What continues is in Downstream().Body.
func (s *Stream) EncodeData(data []byte, endStream bool) api.StatusType {
	s.mustWorker()
	defer s.hookDone()
	return s.doData(&s.enc, append([]byte(nil), data...), endStream)
}

// EncodeHeaders delivers the response headers in s.Response (with s.Details
// as the response code details) and returns the filter's status.
func (s *Stream) EncodeHeaders(endStream bool) api.StatusType {
	s.mustWorker()
	defer s.hookDone()
	st, _ := s.doHeaders(&s.enc, s.Response, endStream)
	return st
}

// continueStatus mirrors Filter::continueStatusInternal, run from the
// dispatcher after the filter called Continue.
func (s *Stream) continueStatus(p *procState, st api.StatusType) {
	s.mu.Lock()
	saved := p.state
	s.resumed = true
	s.mu.Unlock()
	if s.handleStatus(p, st) {
		switch saved {
		case processingHeader:
			s.mu.Lock()
			resume := p.doEndStream || !p.streamEnd()
			s.mu.Unlock()
			if resume {
				s.continueProcessing(p)
			}
		case processingData:
			s.continueDoData(p)
		case processingTrailer:
			s.continueDoData(p)
			s.continueProcessing(p)
			s.mu.Lock()
			s.upstream.EndStream = true
			s.mu.Unlock()
		}
	}
	s.mu.Lock()
	cur, buffered, end, trailers := p.state, p.dataBuffer, p.endStream, p.trailers != nil
	if (cur == waitingData && (len(buffered) > 0 || end)) || (cur == waitingAllData && (end || trailers)) {
		p.dataBuffer = nil
		s.mu.Unlock()
		if _, ok := s.doDataGo(p, buffered, end); !ok {
			return // do not process trailers when data is not finished
		}
		s.continueDoData(p)
		s.mu.Lock()
	}
	cur = p.state
	s.mu.Unlock()
	if cur == waitingTrailer && trailers {
		if _, ok := s.doTrailerGo(p); ok {
			s.continueProcessing(p)
		}
	}
}

// sendLocalReplyInternal mirrors Filter::sendLocalReplyInternal, run from the
// dispatcher. From the decoder, Envoy sends the reply through the encoder
// filters, ours included; from the encoder, it replaces the response.
func (s *Stream) sendLocalReplyInternal(p *procState, r Reply) {
	s.mu.Lock()
	s.resumed = true
	p.doDataList, p.dataBuffer = nil, nil
	if !p.encoding {
		p.state = waitingHeader
	}
	s.replies = append(s.replies, r)
	s.mu.Unlock()
	if p.encoding {
		return
	}
	resp := &Headers{}
	resp.Add(":status", strconv.Itoa(r.Status))
	for k, vs := range r.Headers {
		for _, v := range vs {
			if v != "" {
				resp.Add(k, v)
			}
		}
	}
	s.mu.Lock()
	s.Response, s.Details = resp, r.Details
	s.mu.Unlock()
	s.doHeaders(&s.enc, resp, r.Body == "")
}

// Destroy ends the stream as Envoy does: OnStreamComplete, then the filter is
// marked destroyed (the API refuses every stream call from then on) and
// OnDestroy runs, with Terminate when Go was still processing.
func (s *Stream) Destroy() {
	s.mustWorker()
	s.mu.Lock()
	if s.destroyed {
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	s.shim(func() { s.filter.OnStreamComplete() })
	s.mu.Lock()
	reason := api.Normal
	if s.dec.processingInGo() || s.enc.processingInGo() {
		reason = api.Terminate
	}
	s.destroyed = true
	s.mu.Unlock()
	s.shim(func() { s.filter.OnDestroy(reason) })
}

// shim runs fn like the shim's request-level entry points: panics are only
// logged (recorded here).
func (s *Stream) shim(fn func()) {
	defer func() {
		if r := recover(); r != nil {
			s.mu.Lock()
			s.escaped = append(s.escaped, r)
			s.mu.Unlock()
		}
	}()
	fn()
}
