package distributor

import (
	"fmt"
	"math/bits"
	"net/http"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// bodyBuffers hands out the buffers of request bodies, compressed and
// decompressed, and keeps the bytes they hold within a budget shared by
// every request (-distributor.max-inflight-bytes). A buffer is counted at
// its capacity from get to put, so the budget bounds the memory that bodies
// hold, whatever their headers claim.
//
// Buffers come from pools of power-of-two sizes, large ones included: a
// buffer holds less than twice what its request needs, and a flood of large
// bodies reuses the same few buffers instead of leaving one garbage buffer
// per request, which would let the heap grow to twice the budget before the
// next garbage collection. Pools keep at most what was in use at once and
// empty themselves over two collections.
//
// An idle process does not collect garbage for minutes, and the Go runtime
// hands freed memory back to the operating system only after a collection:
// after a burst the process would stay at its peak. So once a burst has
// allocated trimAfterBytes or more, the pools are emptied and the memory
// handed back as soon as no buffer has been taken for trimIdle
// (runtime.GC, then debug.FreeOSMemory): a few tens of milliseconds of one
// core, only after bursts and only while idle.
type bodyBuffers struct {
	limit    int64
	idle     time.Duration // trimIdle; shorter in tests
	inflight atomic.Int64
	pools    [poolClasses]sync.Pool // class k: buffers of minBuffer<<k bytes

	allocated atomic.Int64  // bytes allocated since the last trim
	started   atomic.Uint64 // buffers handed out, ever: tells whether idle
	trimArmed atomic.Bool
	trims     atomic.Int64
}

const (
	minBuffer       = 16 << 10
	poolClasses     = 20 // up to 8 GiB
	maxPooledBuffer = minBuffer << (poolClasses - 1)
	trimAfterBytes  = 32 << 20
	trimIdle        = 5 * time.Second
)

// bufferSize is the capacity of the buffer get hands out for n bytes.
func bufferSize(n int) int {
	if k := class(n); k >= 0 {
		return minBuffer << k
	}
	return n
}

// errBusy is the refusal of a request that would take the bodies in flight
// over the budget.
func (p *bodyBuffers) errBusy(n int) error {
	return &httpError{http.StatusServiceUnavailable, fmt.Sprintf(
		"the server is busy: %d bytes of request bodies are in memory and this one needs %d more, over the limit of %d bytes (-%s); retry later",
		p.inflight.Load(), n, p.limit, FlagMaxInflightBytes)}
}

// class returns the pool class of a buffer of at least n bytes, or -1 when n
// is too large to pool.
func class(n int) int {
	if n > maxPooledBuffer {
		return -1
	}
	if n <= minBuffer {
		return 0
	}
	return bits.Len(uint(n-1)) - bits.Len(uint(minBuffer-1))
}

// get returns an empty buffer with room for at least n bytes, counted
// against the budget, or errBusy. Return it with put.
func (p *bodyBuffers) get(n int) (*[]byte, error) {
	size, k := bufferSize(n), class(n)
	if p.inflight.Add(int64(size)) > p.limit {
		p.inflight.Add(-int64(size))
		return nil, p.errBusy(size)
	}
	p.started.Add(1)
	if k >= 0 {
		if b, ok := p.pools[k].Get().(*[]byte); ok {
			return b, nil
		}
	}
	p.allocated.Add(int64(size))
	b := make([]byte, 0, size)
	return &b, nil
}

// grow replaces b with a buffer of at least n bytes holding b's contents.
// On errBusy, b is kept.
func (p *bodyBuffers) grow(b *[]byte, n int) (*[]byte, error) {
	nb, err := p.get(n)
	if err != nil {
		return b, err
	}
	*nb = append((*nb)[:0], *b...)
	p.put(b)
	return nb, nil
}

// put returns a buffer that get or grow handed out.
func (p *bodyBuffers) put(b *[]byte) {
	size := cap(*b)
	if k := class(size); k >= 0 && minBuffer<<k == size {
		*b = (*b)[:0]
		p.pools[k].Put(b)
	}
	if p.inflight.Add(-int64(size)) == 0 && p.allocated.Load() >= trimAfterBytes && p.trimArmed.CompareAndSwap(false, true) {
		p.armTrim()
	}
}

// armTrim hands memory back once no buffer has been taken for p.idle,
// looking again every p.idle while requests keep coming.
func (p *bodyBuffers) armTrim() {
	seen := p.started.Load()
	var check func()
	check = func() {
		if now := p.started.Load(); now != seen || p.inflight.Load() != 0 {
			seen = now
			time.AfterFunc(p.idle, check)
			return
		}
		p.allocated.Store(0)
		// Two collections empty the pools (their victim caches too); the
		// second, FreeOSMemory's, hands the freed memory back.
		runtime.GC()
		debug.FreeOSMemory()
		p.trims.Add(1)
		p.trimArmed.Store(false)
	}
	time.AfterFunc(p.idle, check)
}
