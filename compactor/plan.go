package compactor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/fluxpulse/fluxpulse/blockstore"
	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/encryption"
)

// plan picks the next group of blocks to compact, sorted by MinTime:
// first any overlapping blocks (vertical compaction), then adjacent blocks
// that together fill a window of the next larger range (level compaction),
// smallest ranges first. A window is compacted only once it has ended a
// whole first-level range ago, so that late blocks from ingesters have
// arrived; a window whose blocks already form one block is done.
func (c *Compactor) plan(metas []tsdb.BlockMeta) ([]tsdb.BlockMeta, string) {
	// Overlaps.
	for i := 0; i < len(metas); i++ {
		group := []tsdb.BlockMeta{metas[i]}
		maxt := metas[i].MaxTime
		for j := i + 1; j < len(metas) && metas[j].MinTime < maxt; j++ {
			group = append(group, metas[j])
			maxt = max(maxt, metas[j].MaxTime)
		}
		if len(group) > 1 {
			return group, "vertical"
		}
	}
	// Levels.
	settled := c.now().Add(-c.cfg.Ranges[0]).UnixMilli()
	for _, r := range c.cfg.Ranges[1:] {
		rm := r.Milliseconds()
		for i := 0; i < len(metas); {
			start := metas[i].MinTime - mod(metas[i].MinTime, rm)
			end := start + rm
			var group []tsdb.BlockMeta
			j := i
			for ; j < len(metas) && metas[j].MinTime >= start && metas[j].MaxTime <= end; j++ {
				group = append(group, metas[j])
			}
			if j == i { // the block spans past this window: it is of a larger level
				i++
				continue
			}
			if len(group) > 1 && end <= settled {
				return group, "level"
			}
			i = j
		}
	}
	return nil, ""
}

func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

// compact downloads the group, compacts it into one block, uploads that and
// marks the group for deletion. It returns the metas of the new blocks (none
// when the group held no samples).
func (c *Compactor) compact(ctx context.Context, tenant string, group []tsdb.BlockMeta) ([]tsdb.BlockMeta, error) {
	work, err := c.scratch(tenant)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	var dirs []string
	for _, m := range group {
		dir := filepath.Join(work, m.ULID.String())
		if err := downloadBlock(ctx, c.bkt, blockstore.BlockDir(tenant, m.ULID), dir); err != nil {
			return nil, err
		}
		dirs = append(dirs, dir)
	}
	comp, err := tsdb.NewLeveledCompactorWithOptions(ctx, nil, c.logger, c.rangesMs(), chunkenc.NewPool(),
		tsdb.LeveledCompactorOptions{MergeFunc: mergeFunc, EnableOverlappingCompaction: true})
	if err != nil {
		return nil, err
	}
	out := filepath.Join(work, "out")
	if err := os.MkdirAll(out, 0o750); err != nil {
		return nil, err
	}
	ids, err := comp.Compact(out, dirs, nil)
	if err != nil {
		return nil, err
	}
	var metas []tsdb.BlockMeta
	for _, id := range ids {
		dir := filepath.Join(out, id.String())
		m, err := readMeta(dir)
		if err != nil {
			return nil, err
		}
		if err := uploadDir(ctx, c.bkt, dir, blockstore.BlockDir(tenant, id)); err != nil {
			return nil, err
		}
		metas = append(metas, *m)
	}
	for _, m := range group {
		if err := c.markForDeletion(ctx, tenant, m.ULID, "compacted"); err != nil {
			return nil, err
		}
	}
	c.logger.Info("compacted blocks", "tenant", tenant, "sources", len(group), "results", len(ids))
	return metas, nil
}

// downloadBlock downloads every object of a block directory into dir.
func downloadBlock(ctx context.Context, bkt bucket.Bucket, prefix, dir string) error {
	return bkt.Iter(ctx, prefix, bucket.IterOptions{Recursive: true}, func(name string) error {
		rel := strings.TrimPrefix(name, prefix+"/")
		if rel == blockstore.DeletionMarkFile {
			return nil
		}
		dst := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
			return err
		}
		r, err := bkt.Get(ctx, name)
		if err != nil {
			return err
		}
		defer r.Close()
		f, err := os.Create(dst)
		if err != nil {
			return err
		}
		if _, err := f.ReadFrom(r); err != nil {
			f.Close()
			return fmt.Errorf("download %s: %w", name, err)
		}
		return f.Close()
	})
}

// uploadDir uploads a local block directory, meta.json last.
func uploadDir(ctx context.Context, bkt bucket.Bucket, dir, prefix string) error {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err == nil && rel != blockstore.MetaFile {
			files = append(files, rel)
		}
		return err
	})
	if err != nil {
		return err
	}
	for _, rel := range append(files, blockstore.MetaFile) {
		f, err := os.Open(filepath.Join(dir, rel))
		if err != nil {
			return err
		}
		err = bkt.Upload(ctx, path.Join(prefix, filepath.ToSlash(rel)), f)
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// removeShredded deletes the objects of a tenant that its deleted data keys
// made unreadable, and reports whether the tenant had any deleted keys. The
// tombstones of the keys go last, once nothing encrypted under them is
// left.
func (c *Compactor) removeShredded(ctx context.Context, tenant string) (bool, error) {
	keys, err := c.keys.Keys(ctx, tenant)
	if err != nil {
		return false, err
	}
	var tombstones []encryption.DataKeyInfo
	for _, k := range keys {
		if k.Deleted {
			tombstones = append(tombstones, k)
		}
	}
	if len(tombstones) == 0 {
		return false, nil
	}
	removed := 0
	err = c.raw.Iter(ctx, tenant, bucket.IterOptions{Recursive: true}, func(name string) error {
		if strings.HasPrefix(name, tenant+"/keys/") {
			return nil
		}
		r, err := c.bkt.GetRange(ctx, name, 0, 1)
		if err == nil {
			r.Close()
			return nil // readable: written under a key created after the deletion
		}
		if !errors.Is(err, encryption.ErrTenantKeysDeleted) && !errors.Is(err, encryption.ErrKeyNotFound) && !errors.Is(err, encryption.ErrDecrypt) {
			return err
		}
		removed++
		return c.raw.Delete(ctx, name)
	})
	if err != nil {
		return true, err
	}
	for _, k := range tombstones {
		if err := c.raw.Delete(ctx, path.Join(tenant, "keys", k.ID.String()+".deleted")); err != nil {
			return true, err
		}
	}
	c.logger.Info("removed the objects of a deleted tenant", "tenant", tenant, "objects", removed)
	return true, nil
}

// rangesMs returns -compactor.block-ranges in milliseconds.
func (c *Compactor) rangesMs() []int64 {
	ranges := make([]int64, len(c.cfg.Ranges))
	for i, r := range c.cfg.Ranges {
		ranges[i] = r.Milliseconds()
	}
	return ranges
}

// writeMeta writes a local block's meta.json.
func writeMeta(dir string, m *tsdb.BlockMeta) error {
	b, err := json.MarshalIndent(m, "", "\t")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, blockstore.MetaFile), b, 0o640)
}

func readMeta(dir string) (*tsdb.BlockMeta, error) {
	b, err := os.ReadFile(filepath.Join(dir, blockstore.MetaFile))
	if err != nil {
		return nil, err
	}
	var m tsdb.BlockMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decode %s/meta.json: %w", dir, err)
	}
	return &m, nil
}
