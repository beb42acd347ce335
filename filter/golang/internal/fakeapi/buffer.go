package fakeapi

import (
	"strconv"

	"github.com/envoyproxy/envoy/contrib/golang/common/go/api"
)

// buffer is one entry of a processor state's doDataList: the body chunk a
// DecodeData/EncodeData call received. It is valid while the entry exists
// (until the data moves on, or a local reply clears the list), and only
// while Envoy processes in Go (cgo.cc: InvalidPhase, NotInGo otherwise).
type buffer struct {
	p    *procState
	data []byte // guarded by Stream.mu
}

var _ api.BufferInstance = (*buffer)(nil)

// op runs f on the data after the CAPI checks, under the stream's lock.
// Buffer writes are direct even from goroutines (setBufferHelper has no
// thread check: the stopped filter owns its buffer).
func (b *buffer) op(name string, f func()) {
	b.p.s.capi(b.p, name, func(p *procState) string {
		for _, d := range p.doDataList {
			if d == b {
				return ""
			}
		}
		return errInvalidPhase
	})
	b.p.s.mu.Lock()
	defer b.p.s.mu.Unlock()
	f()
}

func (b *buffer) Bytes() []byte {
	var out []byte
	b.op("GetBuffer", func() {
		if len(b.data) > 0 {
			out = append([]byte(nil), b.data...) // the shim copies into Go memory
		}
	})
	return out
}

func (b *buffer) String() string { return string(b.Bytes()) }

func (b *buffer) Len() int {
	n := 0
	b.op("Len", func() { n = len(b.data) })
	return n
}

func (b *buffer) Set(d []byte) error {
	b.op("SetBuffer", func() { b.data = append([]byte(nil), d...) })
	return nil
}

func (b *buffer) SetString(s string) error { return b.Set([]byte(s)) }

func (b *buffer) Append(d []byte) error {
	b.op("AppendBuffer", func() { b.data = append(b.data, d...) })
	return nil
}

func (b *buffer) AppendString(s string) error { return b.Append([]byte(s)) }

func (b *buffer) Prepend(d []byte) error {
	b.op("PrependBuffer", func() { b.data = append(append([]byte(nil), d...), b.data...) })
	return nil
}

func (b *buffer) PrependString(s string) error { return b.Prepend([]byte(s)) }

func (b *buffer) Write(p []byte) (int, error)       { return len(p), b.Append(p) }
func (b *buffer) WriteString(s string) (int, error) { return len(s), b.Append([]byte(s)) }
func (b *buffer) WriteByte(c byte) error            { return b.Append([]byte{c}) }
func (b *buffer) WriteUint16(v uint16) error {
	return b.AppendString(strconv.FormatUint(uint64(v), 10))
}
func (b *buffer) WriteUint32(v uint32) error {
	return b.AppendString(strconv.FormatUint(uint64(v), 10))
}
func (b *buffer) WriteUint64(v uint64) error { return b.AppendString(strconv.FormatUint(v, 10)) }

func (b *buffer) Drain(n int) {
	b.op("DrainBuffer", func() { b.data = b.data[min(max(n, 0), len(b.data)):] })
}

func (b *buffer) Reset() { b.Drain(1 << 62) }
