package blockstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// scanDir is the store's directory for blocks read one by one. '~' is not
// a character of tenant IDs, so it never meets a tenant's directory.
const scanDir = "~blocks"

// BlockQuerier returns a querier over one block of the bucket, whether or
// not it is marked for deletion, read as queries read blocks (index
// downloaded, chunks by range, decrypted): what the compactor and tests use
// to check what a block holds (#14). Its tombstones are not applied: it
// shows every sample the block's chunks hold. Closing the querier drops
// the block and its downloaded index.
func (s *Store) BlockQuerier(ctx context.Context, tenant string, id ulid.ULID, mint, maxt int64) (storage.Querier, error) {
	if err := tenantauth.ValidateID(tenant); err != nil {
		return nil, err
	}
	var segs []string
	prefix := BlockDir(tenant, id) + "/" + ChunksDir
	err := s.bkt.Iter(ctx, prefix, bucket.IterOptions{Recursive: true}, func(name string) error {
		if strings.HasPrefix(name, prefix+"/") {
			segs = append(segs, name)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list the chunks of block %s: %w", id, err)
	}
	dir := filepath.Join(s.cfg.Dir, scanDir, tenant, id.String())
	b, err := s.load(ctx, tenant, id, segs, dir)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("load block %s: %w", id, err), os.RemoveAll(dir))
	}
	q, err := tsdb.NewBlockQuerier(b, mint, maxt)
	if err != nil {
		b.drop()
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	return &droppingQuerier{Querier: q, b: b}, nil
}

// droppingQuerier drops its block when closed.
type droppingQuerier struct {
	storage.Querier
	b *block
}

func (q *droppingQuerier) Close() error {
	err := q.Querier.Close()
	q.b.drop()
	return errors.Join(err, os.RemoveAll(q.b.dir))
}
