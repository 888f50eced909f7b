package blockstore

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/index"
	"github.com/prometheus/prometheus/tsdb/tombstones"

	"github.com/fluxpulse/fluxpulse/bucket"
)

// block is one block in the bucket: its index on local disk, its chunks read
// by range from the bucket. It implements tsdb.BlockReader, so that the
// Prometheus block querier runs over it unchanged.
//
// Readers hold a reference; a block dropped by a sync is closed when the
// last reader is done.
type block struct {
	meta     tsdb.BlockMeta
	dir      string // local directory holding the index
	ir       *index.Reader
	segments []segment
	bkt      bucket.Reader
	pages    *pageCache
	pool     chunkenc.Pool

	mu      sync.Mutex
	readers int
	dropped bool
	closed  bool
}

// segment is one chunks file of a block.
type segment struct {
	name string // object name
	size int64  // plaintext size
}

var _ tsdb.BlockReader = (*block)(nil)

func (b *block) acquire() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return fmt.Errorf("block %s was removed from the store", b.meta.ULID)
	}
	b.readers++
	return nil
}

func (b *block) release() {
	b.mu.Lock()
	b.readers--
	closeNow := b.dropped && b.readers == 0 && !b.closed
	if closeNow {
		b.closed = true
	}
	b.mu.Unlock()
	if closeNow {
		_ = b.ir.Close()
	}
}

// drop closes the block once no reader holds it.
func (b *block) drop() {
	b.mu.Lock()
	b.dropped = true
	closeNow := b.readers == 0 && !b.closed
	if closeNow {
		b.closed = true
	}
	b.mu.Unlock()
	if closeNow {
		_ = b.ir.Close()
	}
}

func (b *block) Meta() tsdb.BlockMeta { return b.meta }

func (b *block) Size() int64 {
	n := b.ir.Size()
	for _, s := range b.segments {
		n += s.size
	}
	return n
}

func (b *block) Index() (tsdb.IndexReader, error) {
	if err := b.acquire(); err != nil {
		return nil, err
	}
	return &indexReader{Reader: b.ir, b: b}, nil
}

func (b *block) Chunks() (tsdb.ChunkReader, error) {
	if err := b.acquire(); err != nil {
		return nil, err
	}
	return &chunkReader{b: b}, nil
}

func (b *block) Tombstones() (tombstones.Reader, error) {
	if err := b.acquire(); err != nil {
		return nil, err
	}
	return &tombstoneReader{MemTombstones: tombstones.NewMemTombstones(), b: b}, nil
}

type tombstoneReader struct {
	*tombstones.MemTombstones
	b    *block
	once sync.Once
}

func (t *tombstoneReader) Close() error {
	t.once.Do(t.b.release)
	return nil
}

// indexReader adds what the raw index reader lacks (matchers on label
// calls) and releases the block on Close.
type indexReader struct {
	*index.Reader
	b    *block
	once sync.Once
}

func (r *indexReader) Close() error {
	r.once.Do(r.b.release)
	return nil
}

func (r *indexReader) SortedLabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, error) {
	vs, err := r.LabelValues(ctx, name, hints, ms...)
	slices.Sort(vs)
	return vs, err
}

func (r *indexReader) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, error) {
	if len(ms) == 0 {
		return r.Reader.SortedLabelValues(ctx, name, hints)
	}
	p, err := tsdb.PostingsForMatchers(ctx, r, ms...)
	if err != nil {
		return nil, err
	}
	seen := map[string]struct{}{}
	var b labels.ScratchBuilder
	for p.Next() {
		if err := r.Reader.Series(p.At(), &b, nil); err != nil {
			return nil, err
		}
		if v := b.Labels().Get(name); v != "" {
			seen[v] = struct{}{}
		}
	}
	if err := p.Err(); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(seen))
	for v := range seen {
		out = append(out, v)
	}
	slices.Sort(out)
	if hints != nil && hints.Limit > 0 && len(out) > hints.Limit {
		out = out[:hints.Limit]
	}
	return out, nil
}

func (r *indexReader) LabelNames(ctx context.Context, ms ...*labels.Matcher) ([]string, error) {
	if len(ms) == 0 {
		return r.Reader.LabelNames(ctx)
	}
	p, err := tsdb.PostingsForMatchers(ctx, r, ms...)
	if err != nil {
		return nil, err
	}
	return r.Reader.LabelNamesFor(ctx, p)
}

// chunkReader reads chunks by byte range from the bucket, through the page
// cache, in the format of the Prometheus chunks files: a uvarint data
// length, one encoding byte, the data, a CRC32 of encoding and data.
type chunkReader struct {
	b    *block
	once sync.Once
	memo memo // not safe for concurrent use, like the querier that owns it
}

// fetchTimeout bounds one chunk read: the ChunkReader interface carries no
// context.
const fetchTimeout = time.Minute

func (c *chunkReader) ChunkOrIterable(meta chunks.Meta) (chunkenc.Chunk, chunkenc.Iterable, error) {
	seg, off := chunks.BlockChunkRef(meta.Ref).Unpack()
	if seg < 0 || seg >= len(c.b.segments) {
		return nil, nil, fmt.Errorf("block %s: chunk segment %d out of range of %d", c.b.meta.ULID, seg, len(c.b.segments))
	}
	s := c.b.segments[seg]
	ctx := context.Background() // bounded by fetchTimeout where the bucket is asked
	head, err := c.b.pages.read(ctx, c.b.bkt, s.name, s.size, int64(off), int64(chunks.MaxChunkLengthFieldSize), &c.memo)
	if err != nil {
		return nil, nil, fmt.Errorf("block %s: read chunk: %w", c.b.meta.ULID, err)
	}
	dataLen, n := binary.Uvarint(head)
	if n <= 0 || dataLen > 1<<30 {
		return nil, nil, fmt.Errorf("block %s: chunk at %s:%d has a corrupt length", c.b.meta.ULID, s.name, off)
	}
	total := int64(n) + chunks.ChunkEncodingSize + int64(dataLen) + crc32.Size
	raw, err := c.b.pages.read(ctx, c.b.bkt, s.name, s.size, int64(off), total, &c.memo)
	if err != nil {
		return nil, nil, fmt.Errorf("block %s: read chunk: %w", c.b.meta.ULID, err)
	}
	if int64(len(raw)) != total {
		return nil, nil, fmt.Errorf("block %s: chunk at %s:%d runs past the end of the segment", c.b.meta.ULID, s.name, off)
	}
	body := raw[n : total-crc32.Size]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(raw[total-crc32.Size:]) {
		return nil, nil, fmt.Errorf("block %s: chunk at %s:%d fails its checksum", c.b.meta.ULID, s.name, off)
	}
	chk, err := c.b.pool.Get(chunkenc.Encoding(body[0]), body[1:])
	return chk, nil, err
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func (c *chunkReader) Close() error {
	c.once.Do(c.b.release)
	return nil
}
