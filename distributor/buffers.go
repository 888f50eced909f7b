package distributor

import (
	"fmt"
	"math/bits"
	"net/http"
	"runtime/debug"
	"sync"
	"time"
)

// bodyBuffers hands out the buffers of request bodies, compressed and
// decompressed, and keeps the bytes they hold within a budget shared by
// every request (-distributor.max-inflight-bytes). A buffer is counted at
// its capacity from get to put, so the budget bounds what bodies hold,
// whatever their headers claim.
//
// Buffers are kept for reuse in free lists of power-of-two sizes, large ones
// included: a buffer holds less than twice what its request needs, and a
// flood of large bodies reuses the same few buffers instead of leaving one
// garbage buffer per request (which would let the heap grow to twice its
// live size before the next garbage collection). Kept buffers count against
// the budget too: a new buffer is allocated only if the buffers in use and
// kept fit within it with the new one, else kept ones of other sizes are
// let go first. So buffers never hold more than the budget.
//
// Memory goes back once it is not needed. While requests keep coming, the
// kept buffers of a size no request took for trimIdle are let go. Once a
// burst has allocated trimAfterBytes or more and no buffer has been taken
// for trimIdle, every kept buffer is let go and the memory handed back to
// the operating system (debug.FreeOSMemory: a garbage collection, a few
// tens of milliseconds of one core, only after bursts and only while idle).
// Without that an idle process stays at its peak for minutes: the Go runtime
// hands memory back only after a collection, and an idle process does not
// collect.
type bodyBuffers struct {
	limit int64
	idle  time.Duration // trimIdle; shorter in tests

	mu        sync.Mutex
	inflight  int64 // bytes of the buffers handed out
	kept      int64 // bytes of the buffers in free
	free      [poolClasses][]*[]byte
	used      [poolClasses]bool // a buffer of the size was taken since the last check
	allocated int64             // bytes allocated since the last trim
	started   uint64            // buffers handed out, ever: tells whether idle
	armed     bool              // a check is scheduled
	trims     int
}

const (
	minBuffer      = 16 << 10
	poolClasses    = 20 // up to 8 GiB
	trimAfterBytes = 32 << 20
	trimIdle       = 5 * time.Second
)

// class returns the size class of a buffer of at least n bytes, or -1 when
// n is too large for any.
func class(n int) int {
	if n <= minBuffer {
		return 0
	}
	k := bits.Len(uint(n-1)) - bits.Len(uint(minBuffer-1))
	if k >= poolClasses {
		return -1
	}
	return k
}

// bufferSize is the capacity of the buffer get hands out for n bytes.
func bufferSize(n int) int {
	if k := class(n); k >= 0 {
		return minBuffer << k
	}
	return n
}

// inUse returns the bytes of the buffers handed out.
func (p *bodyBuffers) inUse() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inflight
}

// get returns an empty buffer with room for at least n bytes, counted
// against the budget, or, over it, a 503 naming the flag. Return it with
// put.
func (p *bodyBuffers) get(n int) (*[]byte, error) {
	size, k := bufferSize(n), class(n)
	p.mu.Lock()
	if p.inflight+int64(size) > p.limit {
		inflight := p.inflight
		p.mu.Unlock()
		return nil, &httpError{http.StatusServiceUnavailable, fmt.Sprintf(
			"the server is busy: %d bytes of request bodies are in memory and this one needs %d more, over the limit of %d bytes (-%s); retry later",
			inflight, size, p.limit, FlagMaxInflightBytes)}
	}
	p.inflight += int64(size)
	p.started++
	if k >= 0 {
		p.used[k] = true
		if l := len(p.free[k]); l > 0 {
			b := p.free[k][l-1]
			p.free[k][l-1] = nil
			p.free[k] = p.free[k][:l-1]
			p.kept -= int64(size)
			p.mu.Unlock()
			return b, nil
		}
	}
	// Room for a new buffer: let kept ones go, the largest first.
	for c := poolClasses - 1; c >= 0 && p.inflight+p.kept > p.limit; c-- {
		for len(p.free[c]) > 0 && p.inflight+p.kept > p.limit {
			p.dropOne(c)
		}
	}
	p.allocated += int64(size)
	p.mu.Unlock()
	b := make([]byte, 0, size)
	return &b, nil
}

// dropOne lets one kept buffer of class c go. p.mu is held.
func (p *bodyBuffers) dropOne(c int) {
	l := len(p.free[c])
	p.free[c][l-1] = nil
	p.free[c] = p.free[c][:l-1]
	p.kept -= int64(minBuffer << c)
}

// grow replaces b with a buffer of at least n bytes holding b's contents.
// On error, b is kept.
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
	*b = (*b)[:0]
	p.mu.Lock()
	p.inflight -= int64(size)
	if k := class(size); k >= 0 && minBuffer<<k == size {
		p.free[k] = append(p.free[k], b)
		p.kept += int64(size)
	}
	arm := p.inflight == 0 && p.kept > 0 && !p.armed
	if arm {
		p.armed = true
	}
	seen := p.started
	p.mu.Unlock()
	if arm {
		p.scheduleCheck(seen)
	}
}

// trimCount returns how often memory was handed back.
func (p *bodyBuffers) trimCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.trims
}

// scheduleCheck looks at the buffers again after p.idle: buffers taken
// since seen means busy, so kept sizes nobody took go; else all of them do.
func (p *bodyBuffers) scheduleCheck(seen uint64) {
	time.AfterFunc(p.idle, func() {
		p.mu.Lock()
		if p.started != seen || p.inflight != 0 {
			for c := range p.free {
				for !p.used[c] && len(p.free[c]) > 0 {
					p.dropOne(c)
				}
				p.used[c] = false
			}
			now := p.started
			p.mu.Unlock()
			p.scheduleCheck(now)
			return
		}
		for c := range p.free {
			for len(p.free[c]) > 0 {
				p.dropOne(c)
			}
			p.used[c] = false
		}
		handBack := p.allocated >= trimAfterBytes
		p.allocated = 0
		p.armed = false
		if handBack {
			p.trims++
		}
		p.mu.Unlock()
		if handBack {
			debug.FreeOSMemory()
		}
	})
}
