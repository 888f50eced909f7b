package ingester

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/fluxpulse/fluxpulse/bucket"
)

// shippedFile records, in the tenant's directory, which blocks are in the
// bucket already, so that a restart neither ships them again nor deletes
// unshipped ones.
const shippedFile = "shipped.json"

// shipper uploads a tenant's blocks to the bucket.
type shipper struct {
	path string

	mu      sync.Mutex
	shipped map[ulid.ULID]struct{}
}

func newShipper(dir string) (*shipper, error) {
	s := &shipper{path: filepath.Join(dir, shippedFile), shipped: map[ulid.ULID]struct{}{}}
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", s.path, err)
	}
	var ids []ulid.ULID
	if err := json.Unmarshal(b, &ids); err != nil {
		return nil, fmt.Errorf("decode %s: %w", s.path, err)
	}
	for _, id := range ids {
		s.shipped[id] = struct{}{}
	}
	return s, nil
}

func (s *shipper) isShipped(id ulid.ULID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.shipped[id]
	return ok
}

// markShipped records id and forgets blocks that no longer exist locally.
func (s *shipper) markShipped(id ulid.ULID, existing []*tsdb.Block) error {
	s.mu.Lock()
	s.shipped[id] = struct{}{}
	keep := map[ulid.ULID]struct{}{id: {}}
	for _, b := range existing {
		if _, ok := s.shipped[b.Meta().ULID]; ok {
			keep[b.Meta().ULID] = struct{}{}
		}
	}
	s.shipped = keep
	ids := make([]ulid.ULID, 0, len(keep))
	for k := range keep {
		ids = append(ids, k)
	}
	s.mu.Unlock()
	slices.SortFunc(ids, func(a, b ulid.ULID) int { return a.Compare(b) })
	return writeJSON(s.path, ids)
}

// writeJSON writes v as JSON to path, through a temporary file renamed
// over it, so that a crash leaves the old or the new content.
func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o640); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// ship cuts the blocks the head is ready for and uploads every block not
// shipped yet, meta.json last: a block without meta.json in the bucket is
// incomplete and ignored by readers.
func (t *tenant) ship(ctx context.Context, bkt bucket.Bucket) (int, error) {
	if err := t.cut(ctx); err != nil {
		return 0, fmt.Errorf("cut blocks: %w", err)
	}
	n := 0
	for _, b := range t.db.Blocks() {
		id := b.Meta().ULID
		if t.shipper.isShipped(id) {
			continue
		}
		if err := uploadBlock(ctx, bkt, t.id, b.Dir()); err != nil {
			return n, fmt.Errorf("ship block %s: %w", id, err)
		}
		if err := t.shipper.markShipped(id, t.db.Blocks()); err != nil {
			return n, fmt.Errorf("record shipped block %s: %w", id, err)
		}
		n++
	}
	return n, nil
}

// cut applies the deletion requests again, then cuts the blocks the head
// is ready for.
func (t *tenant) cut(ctx context.Context) error {
	if err := t.reapplyDeletions(ctx); err != nil {
		return fmt.Errorf("apply deletion requests before cutting blocks: %w", err)
	}
	return t.db.Compact(ctx)
}

// uploadBlock uploads every file of a local block directory, meta.json last.
func uploadBlock(ctx context.Context, bkt bucket.Bucket, tenant, dir string) error {
	id := filepath.Base(dir)
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if rel != "meta.json" {
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, rel := range append(files, "meta.json") {
		if err := uploadFile(ctx, bkt, filepath.Join(dir, rel), path.Join(tenant, "blocks", id, filepath.ToSlash(rel))); err != nil {
			return err
		}
	}
	return nil
}

func uploadFile(ctx context.Context, bkt bucket.Bucket, src, name string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := bkt.Upload(ctx, name, f); err != nil {
		return fmt.Errorf("upload %s: %w", name, err)
	}
	return nil
}

// blocksToDelete lets the TSDB delete a block only once it is shipped and
// older than the local retention.
func (t *tenant) blocksToDelete(retention time.Duration) func([]*tsdb.Block) map[ulid.ULID]struct{} {
	return func(blocks []*tsdb.Block) map[ulid.ULID]struct{} {
		out := map[ulid.ULID]struct{}{}
		if t.shipper == nil {
			return out
		}
		cutoff := time.Now().Add(-retention).UnixMilli()
		for _, b := range blocks {
			if m := b.Meta(); m.MaxTime < cutoff && t.shipper.isShipped(m.ULID) {
				out[m.ULID] = struct{}{}
			}
		}
		return out
	}
}

// unshipped returns the number of blocks not shipped yet and the age of the
// oldest of them.
func (t *tenant) unshipped() (int, time.Duration) {
	n, oldest := 0, time.Duration(0)
	for _, b := range t.db.Blocks() {
		m := b.Meta()
		if t.shipper.isShipped(m.ULID) {
			continue
		}
		n++
		if age := time.Since(ulid.Time(m.ULID.Time())); age > oldest {
			oldest = age
		}
	}
	return n, oldest
}

// flushHead cuts the whole head into blocks, one per block range, so that
// shipping them leaves nothing behind when the ingester goes away.
func (t *tenant) flushHead(blockRange time.Duration) error {
	h := t.db.Head()
	if h.NumSeries() == 0 {
		return nil
	}
	if err := t.reapplyDeletions(context.Background()); err != nil {
		return fmt.Errorf("apply deletion requests before cutting blocks: %w", err)
	}
	r := blockRange.Milliseconds()
	mint, maxt := h.MinTime(), h.MaxTime()
	for start := mint - mint%r; start <= maxt; start += r {
		// The last block ends at the head's last sample, not at the end of
		// its range: the head then takes samples after it again (an idle
		// tenant that comes back), where a block to the range's end would
		// leave every sample until then out of bounds.
		end := min(start+r-1, maxt)
		if err := t.db.CompactHead(tsdb.NewRangeHead(h, start, end)); err != nil {
			return fmt.Errorf("cut head [%d, %d]: %w", start, end, err)
		}
	}
	return nil
}
