// Package blockstoretest helps tests put real blocks into a real
// (filesystem, encrypted) bucket and read them back.
package blockstoretest

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/fluxpulse/fluxpulse/blockstore"
	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/encryption"
	"github.com/fluxpulse/fluxpulse/ingester"
	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/remotewrite"
)

// Buckets are the raw and the encrypting view of one filesystem bucket.
type Buckets struct {
	Raw  bucket.Bucket
	Enc  bucket.Bucket
	Keys *encryption.Keyring
}

// NewBuckets returns a fresh encrypted filesystem bucket.
func NewBuckets(t testing.TB) Buckets {
	t.Helper()
	dir := t.TempDir()
	raw, err := bucket.NewFilesystem(filepath.Join(dir, "bucket"))
	if err != nil {
		t.Fatal(err)
	}
	enc, keys, err := encryption.New(encryption.Config{KeyFile: filepath.Join(dir, "keys.json"), KeyCacheTTL: time.Minute}, raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	return Buckets{Raw: raw, Enc: enc, Keys: keys}
}

// Data is what Ship pushed: values by series (label s).
type Data map[string][]float64

// Spec is what Ship and Ingest push for one tenant: Series series of metric
// m, one sample every 10s over Minutes minutes ending at End, truncated to
// the minute (the zero End: now). Values depend on the series and the time,
// so two pushes of the same Spec write identical samples.
type Spec struct {
	Tenant          string
	Series, Minutes int
	End             time.Time
}

// Ship pushes series of metric m, one sample every 10s over the given
// minutes ending now, into a new ingester with one-minute blocks, and ships
// every block to bkt. Two calls with the same arguments write identical
// samples only within the same minute: use ShipSpec with an End for copies.
func Ship(t testing.TB, bkt bucket.Bucket, tenant string, series, minutes int) Data {
	t.Helper()
	return ShipSpec(t, bkt, Spec{Tenant: tenant, Series: series, Minutes: minutes})
}

// ShipSpec is Ship for a Spec.
func ShipSpec(t testing.TB, bkt bucket.Bucket, sp Spec) Data {
	t.Helper()
	ing, want := ingest(t, bkt, time.Minute, sp)
	defer ing.Close()
	if err := ing.Flush(sp.Tenant); err != nil {
		t.Fatal(err)
	}
	return want
}

// Ingest pushes the data Ship pushes into a new ingester with the given
// block range that ships to bkt (nil: keeps everything local), and returns
// the open ingester.
func Ingest(t testing.TB, bkt bucket.Bucket, blockRange time.Duration, tenant string, series, minutes int) (*ingester.Ingester, Data) {
	t.Helper()
	return ingest(t, bkt, blockRange, Spec{Tenant: tenant, Series: series, Minutes: minutes})
}

func ingest(t testing.TB, bkt bucket.Bucket, blockRange time.Duration, sp Spec) (*ingester.Ingester, Data) {
	t.Helper()
	var icfg ingester.Config
	var lim limits.Limits
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	icfg.RegisterFlags(fs)
	lim.RegisterFlags(fs)
	icfg.Dir = t.TempDir()
	icfg.BlockRange = blockRange
	icfg.Retention = blockRange
	lim.IngestionRate = 0
	ing, err := ingester.New(icfg, limits.NewOverrides(lim), bkt, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	end := sp.End
	if end.IsZero() {
		end = time.Now()
	}
	start := end.Add(-time.Duration(sp.Minutes) * time.Minute).Truncate(time.Minute).UnixMilli()
	want := Data{}
	req := &remotewrite.Request{}
	for s := range sp.Series {
		name := fmt.Sprintf("s%03d", s)
		ser := remotewrite.Series{Labels: []labels.Label{{Name: "__name__", Value: "m"}, {Name: "s", Value: name}}}
		for i := range sp.Minutes * 6 {
			ts := start + int64(i)*10_000
			v := float64(s*1_000_000) + float64(ts/10_000%100_000)
			ser.Samples = append(ser.Samples, remotewrite.Sample{Timestamp: ts, Value: v})
			want[name] = append(want[name], v)
		}
		req.Series = append(req.Series, ser)
	}
	if res, err := ing.Push(context.Background(), sp.Tenant, req); err != nil || res.Rejected() {
		t.Fatalf("push: %v %s", err, res.Message(sp.Series))
	}
	return ing, want
}

// Read returns every sample of metric m that q returns, by series, and
// closes q.
func Read(t testing.TB, q storage.Querier) Data {
	t.Helper()
	defer q.Close()
	ss := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "m"))
	got := Data{}
	for ss.Next() {
		it := ss.At().Iterator(nil)
		name := ss.At().Labels().Get("s")
		for it.Next() != 0 {
			_, v := it.At()
			got[name] = append(got[name], v)
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := ss.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

// ScanBlocks reads every complete block of the tenant in bkt (the
// encrypting bucket), marked for deletion or not, through the block
// store's own reader, and calls f with every sample of every series its
// chunks hold. It returns how many blocks it read.
func ScanBlocks(t testing.TB, bkt bucket.Bucket, tenant string, f func(block ulid.ULID, ls labels.Labels, ts int64, v float64)) int {
	t.Helper()
	ctx := context.Background()
	s, err := blockstore.New(blockstore.Config{Dir: t.TempDir(), SyncInterval: time.Hour, ChunkCacheSize: 32 << 20}, bkt, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	metas, _, err := blockstore.ListBlocks(ctx, bkt, tenant)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range metas {
		q, err := s.BlockQuerier(ctx, tenant, m.ULID, math.MinInt64, math.MaxInt64)
		if err != nil {
			t.Fatal(err)
		}
		ss := q.Select(ctx, false, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
		for ss.Next() {
			it := ss.At().Iterator(nil)
			for it.Next() != chunkenc.ValNone {
				ts, v := it.At()
				f(m.ULID, ss.At().Labels(), ts, v)
			}
			if err := it.Err(); err != nil {
				t.Fatal(err)
			}
		}
		if err := errors.Join(ss.Err(), q.Close()); err != nil {
			t.Fatal(err)
		}
	}
	return len(metas)
}

// Equal reports the first difference between two data sets, or "".
func Equal(got, want Data) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d series, want %d", len(got), len(want))
	}
	for name, vs := range want {
		if fmt.Sprint(got[name]) != fmt.Sprint(vs) {
			return fmt.Sprintf("series %s: %d samples %v…, want %d %v…", name, len(got[name]), head(got[name]), len(vs), head(vs))
		}
	}
	return ""
}

func head(v []float64) []float64 { return v[:min(5, len(v))] }
