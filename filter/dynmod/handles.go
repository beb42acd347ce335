package dynmod

import (
	"sync"
	"sync/atomic"
)

// Envoy keeps one opaque integer per stream (the "filter module pointer")
// and hands it back to every hook. It must not be a Go pointer (the GC may
// not know Envoy holds it), and runtime/cgo.Handle allocates on every
// NewHandle; so the integer is a slot index into this table, which reuses
// both slots and the filter objects in them: creating a stream allocates
// nothing in the steady state.
//
// Lookups are lock-free (they happen on every hook); alloc and release take
// a mutex, once each per stream.
const (
	chunkBits = 10
	chunkSize = 1 << chunkBits
	maxChunks = 1 << 12 // up to 4M concurrent streams
)

type slotChunk [chunkSize]atomic.Pointer[filter]

type slotTable struct {
	mu     sync.Mutex
	free   []uint32 // LIFO: a just-freed filter is likely still in cache
	next   uint32
	chunks [maxChunks]atomic.Pointer[slotChunk]
}

var slots slotTable

// alloc returns a free filter and its handle (never 0, which Envoy treats as
// "no filter"), or nil when the table is full.
func (t *slotTable) alloc() (*filter, uintptr) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var i uint32
	if n := len(t.free); n > 0 {
		i = t.free[n-1]
		t.free = t.free[:n-1]
	} else {
		if t.next >= maxChunks*chunkSize {
			return nil, 0
		}
		i = t.next
		t.next++
	}
	c := t.chunks[i>>chunkBits].Load()
	if c == nil {
		c = new(slotChunk)
		t.chunks[i>>chunkBits].Store(c)
	}
	f := c[i&(chunkSize-1)].Load()
	if f == nil {
		f = &filter{slot: i}
		c[i&(chunkSize-1)].Store(f)
	}
	return f, uintptr(i) + 1
}

// get returns the filter of handle h, or nil for 0 (filter_new failed) or a
// handle we never gave out.
func (t *slotTable) get(h uintptr) *filter {
	if h == 0 || h > maxChunks*chunkSize {
		return nil
	}
	i := uint32(h - 1)
	c := t.chunks[i>>chunkBits].Load()
	if c == nil {
		return nil
	}
	return c[i&(chunkSize-1)].Load()
}

// release makes f's slot reusable. The caller must be the last user of f:
// Envoy never passes a handle again after on_http_filter_destroy, and a
// session-opening goroutine releases the slot itself if it outlives the
// stream.
func (t *slotTable) release(f *filter) {
	t.mu.Lock()
	t.free = append(t.free, f.slot)
	t.mu.Unlock()
}
