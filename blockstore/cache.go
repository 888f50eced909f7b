package blockstore

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/VictoriaMetrics/fastcache"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fluxpulse/fluxpulse/bucket"
)

// pageSize is the unit of fetching and caching: one DARE package of the
// encryption, so that a page costs exactly one package to decrypt.
const pageSize = 64 << 10

// pageCache keeps decrypted pages of chunk files in a bounded fastcache.
type pageCache struct {
	c                    *fastcache.Cache
	hits, misses, fetchd prometheus.Counter
}

func newPageCache(maxBytes int, reg prometheus.Registerer) *pageCache {
	p := &pageCache{
		c: fastcache.New(maxBytes),
		hits: prometheus.NewCounter(prometheus.CounterOpts{Name: "fluxpulse_store_chunk_cache_hits_total",
			Help: "Chunk pages served from the store's cache of decrypted data."}),
		misses: prometheus.NewCounter(prometheus.CounterOpts{Name: "fluxpulse_store_chunk_cache_misses_total",
			Help: "Chunk pages fetched from the bucket and decrypted."}),
		fetchd: prometheus.NewCounter(prometheus.CounterOpts{Name: "fluxpulse_store_chunk_fetched_bytes_total",
			Help: "Decrypted chunk bytes fetched from the bucket."}),
	}
	if reg != nil {
		reg.MustRegister(p.hits, p.misses, p.fetchd)
	}
	return p
}

func pageKey(name string, page int64) []byte {
	k := make([]byte, 0, len(name)+9)
	k = append(k, name...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, uint64(page))
}

// memo remembers the last page one reader used: a query reads the chunks
// of consecutive series, which mostly share pages, and copying a page out
// of the cache for every chunk would cost more than the chunk itself.
type memo struct {
	name string
	k    int64
	page []byte
}

// page returns page k of object name (of plaintext size size).
func (p *pageCache) page(ctx context.Context, bkt bucket.Reader, name string, size, k int64, m *memo) ([]byte, error) {
	if m != nil && m.page != nil && m.k == k && m.name == name {
		return m.page, nil
	}
	b, err := p.fetch(ctx, bkt, name, size, k)
	if err == nil && m != nil {
		*m = memo{name: name, k: k, page: b}
	}
	return b, err
}

func (p *pageCache) fetch(ctx context.Context, bkt bucket.Reader, name string, size, k int64) ([]byte, error) {
	key := pageKey(name, k)
	if b := p.c.GetBig(nil, key); len(b) > 0 {
		p.hits.Inc()
		return b, nil
	}
	p.misses.Inc()
	off := k * pageSize
	n := min(pageSize, size-off)
	if n <= 0 {
		return nil, fmt.Errorf("read %s: page %d is past the end (%d bytes)", name, k, size)
	}
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	r, err := bkt.GetRange(ctx, name, off, n)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("read %s at %d: %w", name, off, err)
	}
	p.fetchd.Add(float64(n))
	p.c.SetBig(key, b)
	return b, nil
}

// read returns up to n bytes of object name from off: fewer only where the
// object ends.
func (p *pageCache) read(ctx context.Context, bkt bucket.Reader, name string, size, off, n int64, m *memo) ([]byte, error) {
	if off >= size {
		return nil, fmt.Errorf("read %s: offset %d is past the end (%d bytes)", name, off, size)
	}
	n = min(n, size-off)
	first, last := off/pageSize, (off+n-1)/pageSize
	if first == last {
		pg, err := p.page(ctx, bkt, name, size, first, m)
		if err != nil {
			return nil, err
		}
		start := off - first*pageSize
		return pg[start : start+n : start+n], nil
	}
	out := make([]byte, 0, n)
	for k := first; k <= last; k++ {
		pg, err := p.page(ctx, bkt, name, size, k, m)
		if err != nil {
			return nil, err
		}
		lo, hi := int64(0), int64(len(pg))
		if k == first {
			lo = off - k*pageSize
		}
		if k == last {
			hi = off + n - k*pageSize
		}
		out = append(out, pg[lo:hi]...)
	}
	return out, nil
}
