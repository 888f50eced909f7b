package blockstore

import (
	"context"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/fluxpulse/fluxpulse/bucket"
)

// BlockInfo describes one block of a tenant for operators.
type BlockInfo struct {
	ULID           ulid.ULID `json:"ulid"`
	MinTime        time.Time `json:"min_time"`
	MaxTime        time.Time `json:"max_time"`
	Level          int       `json:"level"`
	Series         uint64    `json:"series"`
	Samples        uint64    `json:"samples"`
	Chunks         uint64    `json:"chunks"`
	Objects        int       `json:"objects"`
	StoredBytes    int64     `json:"stored_bytes"` // as stored: encrypted
	BytesPerSample float64   `json:"bytes_per_sample"`
	MarkedDeleted  bool      `json:"marked_for_deletion"`
}

// Report lists a tenant's blocks with their time ranges, sizes in the bucket
// (read from raw, as stored) and bytes per sample (metas from enc).
func Report(ctx context.Context, raw, enc bucket.Reader, tenant string) ([]BlockInfo, error) {
	metas, marked, err := ListBlocks(ctx, enc, tenant)
	if err != nil {
		return nil, err
	}
	out := make([]BlockInfo, 0, len(metas))
	for _, m := range metas {
		bi := BlockInfo{ULID: m.ULID, MinTime: time.UnixMilli(m.MinTime).UTC(), MaxTime: time.UnixMilli(m.MaxTime).UTC(),
			Level: m.Compaction.Level, Series: m.Stats.NumSeries, Samples: m.Stats.NumSamples, Chunks: m.Stats.NumChunks,
			MarkedDeleted: marked[m.ULID]}
		err := raw.Iter(ctx, BlockDir(tenant, m.ULID), bucket.IterOptions{Recursive: true}, func(name string) error {
			a, err := raw.Attributes(ctx, name)
			if bucket.IsNotFound(err) {
				return nil // deleted by the compactor while we listed
			}
			if err != nil {
				return err
			}
			bi.Objects++
			bi.StoredBytes += a.Size
			return nil
		})
		if err != nil {
			return nil, err
		}
		if bi.Samples > 0 {
			bi.BytesPerSample = float64(bi.StoredBytes) / float64(bi.Samples)
		}
		out = append(out, bi)
	}
	return out, nil
}
