package compactor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/fluxpulse/fluxpulse/blockstore"
	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/deletion"
)

// Heads carries out a due deletion request in the ingesters: every
// ingester that may hold the tenant's recent data tombstones what the
// request deletes, or the call fails (and is made again next pass).
type Heads interface {
	ApplyDeletion(ctx context.Context, tenant string, req deletion.Request) error
}

// HeadsFunc adapts a function to Heads.
type HeadsFunc func(ctx context.Context, tenant string, req deletion.Request) error

// ApplyDeletion implements Heads.
func (f HeadsFunc) ApplyDeletion(ctx context.Context, tenant string, req deletion.Request) error {
	return f(ctx, tenant, req)
}

// Deletions is what the compactor needs to carry out deletion requests.
type Deletions struct {
	Store *deletion.Store
	// Heads is told of each due request first; nil when no ingester
	// holds data (tests of the bucket alone).
	Heads Heads
	// Processed, when set, is told of each request the compactor marks
	// processed (for the audit log).
	Processed func(req deletion.Request)
}

// CarryOutDeletions makes every pass carry out the tenants' due deletion
// requests (#14): the ingesters' heads first, then every block of the
// bucket that holds a deleted sample is rewritten without it (a new block,
// encrypted under the tenant's newest key; the old one marked and deleted
// after -compactor.deletion-delay). A request is processed once, in a pass
// after its heads were done, a scan of every block of the bucket, marked
// ones included, finds none of its samples. Call it before Run.
func (c *Compactor) CarryOutDeletions(d Deletions) error {
	scan, err := blockstore.New(blockstore.Config{Dir: filepath.Join(c.cfg.Dir, scanDir), SyncInterval: time.Minute, ChunkCacheSize: 32 << 20},
		c.bkt, c.logger, nil)
	if err != nil {
		return err
	}
	c.deletions, c.scan = &d, scan
	return nil
}

// scanDir keeps the indexes of blocks being scanned; '~' is no character
// of tenant IDs, so it is never a tenant's scratch directory.
const scanDir = "~scan"

// Wake makes the compactor start its next pass now, not at its next
// interval (a deletion request that is due at once was made).
func (c *Compactor) Wake() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// processDeletions carries out the tenant's due requests on its heads and
// on blocks (live, and marked ones that are not deleted yet), and returns
// the live blocks as they are after any rewrite.
func (c *Compactor) processDeletions(ctx context.Context, tenant string, live, marked []tsdb.BlockMeta, passStart time.Time) ([]tsdb.BlockMeta, error) {
	if c.deletions == nil {
		return live, nil
	}
	all, err := c.deletions.Store.List(ctx, tenant)
	if err != nil {
		return nil, err
	}
	var due []deletion.Request
	for _, r := range all {
		if r.Due(c.now()) {
			due = append(due, r)
		}
	}
	if len(due) == 0 {
		return live, nil
	}
	due = c.applyToHeads(ctx, tenant, due)
	if len(due) == 0 {
		return live, nil
	}
	held := make([]bool, len(due)) // whether a block holds samples of due[k]
	for _, m := range marked {
		if _, err := c.holds(ctx, tenant, m, due, held); err != nil {
			return nil, err
		}
	}
	out := live[:0:0]
	rewritten := make([]int, len(due))
	for _, m := range live {
		hit, err := c.holds(ctx, tenant, m, due, held)
		if err != nil {
			return nil, err
		}
		if len(hit) == 0 && m.Stats.NumTombstones == 0 {
			out = append(out, m)
			continue
		}
		metas, err := c.rewrite(ctx, tenant, m, due)
		if err != nil {
			return nil, fmt.Errorf("rewrite block %s without deleted samples: %w", m.ULID, err)
		}
		for _, k := range hit {
			rewritten[k]++
		}
		out = append(out, metas...)
	}
	for k := range due {
		// Done when no block held its samples, and its heads were done
		// before the pass began: a block cut from a head before the
		// ingester tombstoned it may have been uploaded during the pass
		// that told the ingester.
		done := !held[k] && due[k].HeadsAppliedAt.Before(passStart)
		if err := c.finish(ctx, tenant, due[k], done, rewritten[k]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// applyToHeads tells the ingesters of each due request once, and returns
// the requests the pass goes on with. One the ingesters could not be told
// of (one is down, say) waits for the next pass; the tenant's compaction
// goes on meanwhile.
func (c *Compactor) applyToHeads(ctx context.Context, tenant string, due []deletion.Request) []deletion.Request {
	out := due[:0]
	for k := range due {
		if err := c.applyOnce(ctx, tenant, &due[k]); err != nil {
			c.failures.Inc()
			c.logger.Warn("deletion request not carried out yet", "tenant", tenant, "request", due[k].ID, "err", err)
			continue
		}
		out = append(out, due[k])
	}
	return out
}

// applyOnce tells the ingesters of a due request, unless they were told.
func (c *Compactor) applyOnce(ctx context.Context, tenant string, r *deletion.Request) error {
	if !r.HeadsAppliedAt.IsZero() {
		return nil
	}
	if h := c.deletions.Heads; h != nil {
		if err := h.ApplyDeletion(ctx, tenant, *r); err != nil {
			return fmt.Errorf("deletion request %s: tombstone the ingesters' heads: %w", r.ID, err)
		}
	}
	now := c.now().UTC()
	updated, err := c.deletions.Store.Update(ctx, tenant, r.ID, func(s *deletion.Request) error {
		s.HeadsAppliedAt = now
		return nil
	})
	if err == nil {
		*r = updated
	}
	return err
}

// finish records what the pass did for a request: the blocks it
// rewrote, and whether it is done (processed).
func (c *Compactor) finish(ctx context.Context, tenant string, r deletion.Request, done bool, rewritten int) error {
	if !done && rewritten == 0 {
		return nil
	}
	now := c.now().UTC()
	updated, err := c.deletions.Store.Update(ctx, tenant, r.ID, func(s *deletion.Request) error {
		s.BlocksRewritten += rewritten
		if done {
			s.State, s.ProcessedAt = deletion.StateProcessed, now
		}
		return nil
	})
	if err != nil {
		return err
	}
	if done {
		c.logger.Info("deletion request processed", "tenant", tenant, "request", r.ID, "blocks_rewritten", updated.BlocksRewritten)
		if c.deletions.Processed != nil {
			c.deletions.Processed(updated)
		}
	}
	return nil
}

// holds returns the indexes of the requests of which block m holds a
// sample (its chunks, tombstones ignored), and sets held[k] for each.
func (c *Compactor) holds(ctx context.Context, tenant string, m tsdb.BlockMeta, reqs []deletion.Request, held []bool) ([]int, error) {
	var overlapping []int
	for k, r := range reqs {
		if r.Overlaps(m.MinTime, m.MaxTime-1) { // a block's MaxTime is exclusive
			overlapping = append(overlapping, k)
		}
	}
	if len(overlapping) == 0 {
		return nil, nil
	}
	q, err := c.scan.BlockQuerier(ctx, tenant, m.ULID, m.MinTime, m.MaxTime-1)
	if bucket.IsNotFound(err) {
		return nil, nil // deleted since it was listed
	}
	if err != nil {
		return nil, err
	}
	defer q.Close()
	var hit []int
	for _, k := range overlapping {
		ok, err := holdsSample(ctx, q, reqs[k])
		if err != nil {
			return nil, fmt.Errorf("scan block %s: %w", m.ULID, err)
		}
		if ok {
			hit = append(hit, k)
			held[k] = true
		}
	}
	return hit, nil
}

// holdsSample reports whether q has a sample that r deletes.
func holdsSample(ctx context.Context, q storage.Querier, r deletion.Request) (bool, error) {
	for _, ms := range r.Matchers() {
		ss := q.Select(ctx, false, &storage.SelectHints{Start: r.Start, End: r.End}, ms...)
		for ss.Next() {
			it := ss.At().Iterator(nil)
			if it.Seek(r.Start) != chunkenc.ValNone && it.AtT() <= r.End {
				return true, nil
			}
			if err := it.Err(); err != nil {
				return false, err
			}
		}
		if err := ss.Err(); err != nil {
			return false, err
		}
	}
	return false, nil
}

// rewrite writes block m again without the samples reqs delete (and
// without those its own tombstones delete), uploads the new block, marks m
// for deletion and returns the new block's meta (none if nothing is left).
func (c *Compactor) rewrite(ctx context.Context, tenant string, m tsdb.BlockMeta, reqs []deletion.Request) ([]tsdb.BlockMeta, error) {
	work, err := c.scratch(tenant)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	dir := filepath.Join(work, m.ULID.String())
	if err := downloadBlock(ctx, c.bkt, blockstore.BlockDir(tenant, m.ULID), dir); err != nil {
		return nil, err
	}
	b, err := tsdb.OpenBlock(c.logger, dir, chunkenc.NewPool(), nil)
	if err != nil {
		return nil, err
	}
	ids, err := c.cleanBlock(ctx, b, reqs, filepath.Join(work, "out"))
	if err = errors.Join(err, b.Close()); err != nil {
		return nil, err
	}
	var metas []tsdb.BlockMeta
	for _, id := range ids {
		nm, err := c.uploadRewritten(ctx, tenant, filepath.Join(work, "out", id.String()), m)
		if err != nil {
			return nil, err
		}
		metas = append(metas, nm)
	}
	if err := c.markForDeletion(ctx, tenant, m.ULID, "deletion"); err != nil {
		return nil, err
	}
	c.deletionRewrites.Inc()
	c.logger.Info("rewrote block without deleted samples", "tenant", tenant, "block", m.ULID, "results", len(ids))
	return metas, nil
}

// cleanBlock tombstones what reqs delete in the local block b and writes
// it again into out without what its tombstones delete.
func (c *Compactor) cleanBlock(ctx context.Context, b *tsdb.Block, reqs []deletion.Request, out string) ([]ulid.ULID, error) {
	for _, r := range reqs {
		for _, ms := range r.Matchers() {
			if err := b.Delete(ctx, r.Start, r.End, ms...); err != nil {
				return nil, err
			}
		}
	}
	if err := os.MkdirAll(out, 0o750); err != nil {
		return nil, err
	}
	comp, err := tsdb.NewLeveledCompactorWithOptions(ctx, nil, c.logger, c.rangesMs(), chunkenc.NewPool(),
		tsdb.LeveledCompactorOptions{MergeFunc: mergeFunc, EnableOverlappingCompaction: true})
	if err != nil {
		return nil, err
	}
	ids, _, err := b.CleanTombstones(out, comp)
	return ids, err
}

// uploadRewritten gives the rewritten block at dir the compaction level
// and sources of the block it replaces, and uploads it.
func (c *Compactor) uploadRewritten(ctx context.Context, tenant, dir string, old tsdb.BlockMeta) (tsdb.BlockMeta, error) {
	m, err := readMeta(dir)
	if err != nil {
		return tsdb.BlockMeta{}, err
	}
	m.Compaction.Level, m.Compaction.Sources = old.Compaction.Level, old.Compaction.Sources
	if err := writeMeta(dir, m); err != nil {
		return tsdb.BlockMeta{}, err
	}
	if err := uploadDir(ctx, c.bkt, dir, blockstore.BlockDir(tenant, m.ULID)); err != nil {
		return tsdb.BlockMeta{}, err
	}
	return *m, nil
}
