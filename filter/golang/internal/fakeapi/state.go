package fakeapi

import (
	"strconv"

	"github.com/envoyproxy/envoy/contrib/golang/common/go/api"
)

// filterState mirrors processor_state.h's FilterState.
type filterState int

const (
	waitingHeader filterState = iota
	processingHeader
	waitingData
	waitingAllData
	processingData
	waitingTrailer
	processingTrailer
	done
)

// The shim's panic messages for refused CAPI calls (pkg/http/type.go).
const (
	errRequestFinished = "request has been finished"
	errFilterDestroyed = "golang filter has been destroyed"
	errNotInGo         = "not proccessing Go"
	errInvalidPhase    = "invalid phase, maybe headers/buffer already continued"
)

// procState mirrors ProcessorState: one for decoding, one for encoding.
// Fields are guarded by Stream.mu.
type procState struct {
	s           *Stream
	encoding    bool
	state       filterState
	endStream   bool       // end_stream_: the end of the stream was seen
	doEndStream bool       // do_end_stream_: Go is processing the end
	headers     *headerMap // state.headers: nil once the header phase continued
	trailers    *headerMap // state.trailers: non-nil once trailers were seen
	dataBuffer  []byte     // data_buffer_: Envoy's buffer while Go waits or works
	doDataList  []*buffer  // the chunks handed to Go, until they move on
}

func (p *procState) processingInGo() bool {
	return p.state == processingHeader || p.state == processingData || p.state == processingTrailer
}

func (p *procState) streamEnd() bool { return p.endStream || p.trailers != nil }

func needHeaders(p *procState) string {
	if p.headers == nil {
		return errInvalidPhase
	}
	return ""
}

func needTrailers(p *procState) string {
	if p.trailers == nil {
		return errInvalidPhase
	}
	return ""
}

// callGo is the shim's entry point around a filter method: a panic the
// filter lets escape is recovered (status stays 0, api.Running) and, unless
// it is a refused-CAPI panic, answered with the shim's plain-text 500.
func (s *Stream) callGo(p *procState, fn func() api.StatusType) (st api.StatusType) {
	if s.panicked {
		s.sendPanicReply(p)
		return api.LocalReply
	}
	defer func() {
		if r := recover(); r != nil {
			s.mu.Lock()
			s.escaped = append(s.escaped, r)
			s.mu.Unlock()
			switch r {
			case errRequestFinished, errFilterDestroyed:
			case errNotInGo:
				s.panicked = true
			default:
				s.sendPanicReply(p)
			}
			st = api.Running
		}
	}()
	return fn()
}

func (s *Stream) sendPanicReply(p *procState) {
	defer func() { _ = recover() }() // refused: nothing more to do, as in the shim
	s.capi(p, "SendPanicReply", nil)
	r := Reply{Status: 500, Body: "error happened in filter\r\n", Panic: true, FromEncoder: p.encoding}
	s.post(func() { s.sendLocalReplyInternal(p, r) })
}

// doHeaders mirrors Filter::doHeaders for the request or response headers.
func (s *Stream) doHeaders(p *procState, m *Headers, endStream bool) (api.StatusType, bool) {
	s.mu.Lock()
	p.endStream = endStream
	p.headers = &headerMap{p: p, m: m, check: needHeaders}
	p.state, p.doEndStream = processingHeader, endStream
	h := p.headers
	s.mu.Unlock()
	st := s.callGo(p, func() api.StatusType {
		if p.encoding {
			return s.filter.EncodeHeaders(h, endStream)
		}
		return s.filter.DecodeHeaders(h, endStream)
	})
	ok := s.handleStatus(p, st)
	if ok {
		s.passHeaders(p)
	}
	return st, ok
}

// handleStatus mirrors ProcessorState::handle*GolangStatus; it reports
// whether the current phase is done (the stream continues).
func (s *Stream) handleStatus(p *procState, st api.StatusType) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch p.state {
	case processingHeader:
		return p.headerStatus(st)
	case processingData:
		return p.dataStatus(st)
	case processingTrailer:
		if st == api.Continue {
			p.state = done
			return true
		}
		if st != api.LocalReply && st != api.Running {
			s.capiErrors = append(s.capiErrors, "unexpected trailer status "+strconv.Itoa(int(st)))
		}
		return false
	}
	s.capiErrors = append(s.capiErrors, "status while not processing in Go")
	return false
}

func (p *procState) headerStatus(st api.StatusType) bool {
	switch st {
	case api.LocalReply, api.Running:
		return false
	case api.Continue:
		p.state = waitingData
		if p.doEndStream {
			p.state = done
		}
		p.headers = nil
		return true
	case api.StopAndBuffer:
		p.state = waitingAllData
	case api.StopAndBufferWatermark:
		p.state = waitingData
	default:
		p.s.capiErrors = append(p.s.capiErrors, "unexpected header status "+strconv.Itoa(int(st)))
	}
	return false
}

func (p *procState) dataStatus(st api.StatusType) bool {
	isDone := false
	switch st {
	case api.LocalReply, api.Running:
		return false // skip the trailers check, as Envoy does
	case api.Continue:
		p.state = waitingData
		if p.doEndStream {
			p.state = done
		}
		isDone = true
	case api.StopAndBuffer, api.StopAndBufferWatermark, api.StopNoBuffer:
		if p.doEndStream {
			p.s.capiErrors = append(p.s.capiErrors, "want more data while stream is end")
		}
		p.state = waitingData
		if st == api.StopAndBuffer {
			p.state = waitingAllData
		}
		if st == api.StopNoBuffer && len(p.doDataList) > 0 {
			p.doDataList = p.doDataList[:len(p.doDataList)-1]
		}
	default:
		p.s.capiErrors = append(p.s.capiErrors, "unexpected data status "+strconv.Itoa(int(st)))
	}
	if p.trailers != nil && len(p.dataBuffer) == 0 {
		p.state = waitingTrailer
	}
	return isDone
}

// passHeaders: the header phase continued towards the next filter.
func (s *Stream) passHeaders(p *procState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p.headers = nil
	if p.encoding {
		s.downstream.HeadersSent = true
		return
	}
	s.upstream.HeadersSent = true
	if p.doEndStream && p.trailers == nil {
		s.upstream.EndStream = true
	}
}

// doDataGo mirrors Filter::doDataGo: data becomes a doDataList entry that Go
// may read and rewrite.
func (s *Stream) doDataGo(p *procState, data []byte, end bool) (api.StatusType, bool) {
	b := &buffer{p: p, data: data}
	s.mu.Lock()
	p.state, p.doEndStream = processingData, end
	p.doDataList = append(p.doDataList, b)
	s.mu.Unlock()
	st := s.callGo(p, func() api.StatusType {
		if p.encoding {
			return s.filter.EncodeData(b, end)
		}
		return s.filter.DecodeData(b, end)
	})
	return st, s.handleStatus(p, st)
}

// continueDoData mirrors ProcessorState::continueDoData: the chunks Go held
// move on (decoding: towards the upstream). Data that continues also
// releases headers the filter had stopped: Envoy's filter manager sends them
// first when iteration resumes.
func (s *Stream) continueDoData(p *procState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !p.endStream && len(p.doDataList) == 0 {
		return
	}
	for _, b := range p.doDataList {
		if p.encoding {
			s.downstream.Body = append(s.downstream.Body, b.data...)
		} else {
			s.upstream.Body = append(s.upstream.Body, b.data...)
		}
	}
	p.doDataList = nil
	if p.encoding {
		s.downstream.HeadersSent = true
		return
	}
	s.upstream.HeadersSent = true
	if p.doEndStream {
		s.upstream.EndStream = true
	}
}

// continueProcessing mirrors continueDecoding/continueEncoding.
func (s *Stream) continueProcessing(p *procState) {
	s.mu.Lock()
	s.continues++
	s.mu.Unlock()
	s.passHeaders(p)
}
