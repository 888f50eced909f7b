package blockstore

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/index"

	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/encryption"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// Config configures the block store.
type Config struct {
	// Dir keeps the downloaded indexes, one directory per tenant and block.
	Dir            string
	SyncInterval   time.Duration
	ChunkCacheSize int
}

// RegisterFlags registers the store's flags. Dir is set by the caller.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.SyncInterval, "blocks-storage.sync-interval", time.Minute, "How often a tenant's block list is refreshed from the bucket, at the latest.")
	fs.IntVar(&c.ChunkCacheSize, "blocks-storage.chunk-cache-size", 256<<20, "Bytes of decrypted chunk data the store keeps in memory.")
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.Dir == "" {
		return errors.New("block store directory is not set")
	}
	if c.SyncInterval <= 0 {
		return fmt.Errorf("-blocks-storage.sync-interval must be positive, got %s", c.SyncInterval)
	}
	return nil
}

// Names of the objects of a block and its marks, below <tenant>/blocks/<ULID>/.
const (
	MetaFile         = "meta.json"
	IndexFile        = "index"
	ChunksDir        = "chunks"
	DeletionMarkFile = "deletion-mark.json"
)

// BlockDir returns the object directory of a block.
func BlockDir(tenant string, id ulid.ULID) string {
	return path.Join(tenant, "blocks", id.String())
}

// Store serves queries over the blocks in the bucket.
type Store struct {
	cfg    Config
	bkt    bucket.Bucket
	pages  *pageCache
	pool   chunkenc.Pool
	logger *slog.Logger

	// owns, when set, is the store-gateway's share of the blocks: the
	// store loads only those and serves them only by ID (see Shard).
	owns func(tenant string, id ulid.ULID) bool

	mu      sync.Mutex
	tenants map[string]*tenantBlocks

	syncs        *prometheus.CounterVec
	loadedBlocks prometheus.Gauge
}

// New returns a Store over bkt, which must be the per-tenant encrypting
// bucket.
func New(cfg Config, bkt bucket.Bucket, logger *slog.Logger, reg prometheus.Registerer) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("create block store directory: %w", err)
	}
	f := promauto.With(reg)
	return &Store{cfg: cfg, bkt: bkt, pages: newPageCache(cfg.ChunkCacheSize, reg), pool: chunkenc.NewPool(), logger: logger,
		tenants: map[string]*tenantBlocks{},
		syncs: f.NewCounterVec(prometheus.CounterOpts{Name: "fluxpulse_store_block_syncs_total",
			Help: "Syncs of tenants' block lists from the bucket, by outcome."}, []string{"outcome"}),
		loadedBlocks: f.NewGauge(prometheus.GaugeOpts{Name: "fluxpulse_store_blocks_loaded",
			Help: "Blocks whose index the store holds, over all tenants."}),
	}, nil
}

// Shard makes the store a store-gateway's: it loads only the blocks owns
// accepts (asked again at every sync, so blocks follow the ring) and
// serves them only by ID (BlocksQuerier, BlocksChunkQuerier), since the
// querier decides which blocks a query reads. A block marked for deletion
// stays loaded while it is in the bucket: a querier whose block list
// predates the mark may still ask for it, and the compactor deletes it
// only after -compactor.deletion-delay. Call it before use.
func (s *Store) Shard(owns func(tenant string, id ulid.ULID) bool) { s.owns = owns }

// tenantBlocks is the store's view of one tenant.
type tenantBlocks struct {
	id       string
	lock     tenantLock // held during a sync; guards the fields below
	blocks   map[ulid.ULID]*block
	synced   time.Time
	shredded bool // the tenant's keys are deleted: it has no readable data
}

func (s *Store) tenant(id string) *tenantBlocks {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tenants[id]
	if !ok {
		t = &tenantBlocks{id: id, lock: newTenantLock(), blocks: map[ulid.ULID]*block{}}
		s.tenants[id] = t
	}
	return t
}

// tenantLock is a tenant's lock. It is a channel so that a query waiting
// behind a slow sync gives up when its context ends (#12).
type tenantLock chan struct{}

func newTenantLock() tenantLock { return make(tenantLock, 1) }

// acquire takes the lock, or returns ctx's error if ctx ends first.
func (l tenantLock) acquire(ctx context.Context, tenant string) error {
	select {
	case l <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for the block list of tenant %s: %w", tenant, ctx.Err())
	}
}

func (l tenantLock) release() { <-l }

func (t *tenantBlocks) acquire(ctx context.Context) error { return t.lock.acquire(ctx, t.id) }

func (t *tenantBlocks) release() { t.lock.release() }

// minResync is how soon after a sync a query asking for a block the store
// lacks syncs again: a block the querier listed may be newer than the
// store's last sync.
const minResync = time.Second

// blocks returns the tenant's blocks overlapping [mint, maxt], acquired;
// the caller releases each. With ids set, only those blocks are
// returned, and held lists every one of ids the store holds (overlapping
// or not): what it can answer for. The block list is synced first if it
// is older than the sync interval, or, when a block of ids is missing,
// than minResync.
func (s *Store) blocks(ctx context.Context, tenantID string, mint, maxt int64, ids []ulid.ULID) (out []*block, held []ulid.ULID, err error) {
	if err := tenantauth.ValidateID(tenantID); err != nil {
		return nil, nil, err
	}
	t := s.tenant(tenantID)
	if err := t.acquire(ctx); err != nil {
		return nil, nil, err
	}
	defer t.release()
	stale := time.Since(t.synced) > s.cfg.SyncInterval
	if !stale && ids != nil && !t.shredded && time.Since(t.synced) > minResync {
		stale = slices.ContainsFunc(ids, func(id ulid.ULID) bool { return t.blocks[id] == nil })
	}
	if stale {
		if err := s.syncLocked(ctx, t); err != nil {
			return nil, nil, err
		}
	}
	pick := func(b *block) {
		if b.meta.MinTime <= maxt && b.meta.MaxTime > mint && b.acquire() == nil {
			out = append(out, b)
		}
	}
	switch {
	case t.shredded:
		held = ids // nothing of it is readable: every block is answered, empty
	case ids != nil:
		for _, id := range ids {
			if b := t.blocks[id]; b != nil {
				held = append(held, id)
				pick(b)
			}
		}
	default:
		for _, b := range t.blocks {
			pick(b)
		}
	}
	slices.SortFunc(out, func(a, b *block) int { return int(a.meta.MinTime - b.meta.MinTime) })
	return out, held, nil
}

// syncLocked syncs a tenant whose lock the caller holds, counting the
// outcome.
func (s *Store) syncLocked(ctx context.Context, t *tenantBlocks) error {
	if err := s.sync(ctx, t); err != nil {
		s.syncs.WithLabelValues("failure").Inc()
		return fmt.Errorf("sync blocks of tenant %s: %w", t.id, err)
	}
	s.syncs.WithLabelValues("success").Inc()
	t.synced = time.Now()
	return nil
}

// Sync syncs a tenant's block list with the bucket now: a store-gateway
// loads the indexes of its blocks before queries ask for them.
func (s *Store) Sync(ctx context.Context, tenant string) error {
	if err := tenantauth.ValidateID(tenant); err != nil {
		return err
	}
	t := s.tenant(tenant)
	if err := t.acquire(ctx); err != nil {
		return err
	}
	defer t.release()
	return s.syncLocked(ctx, t)
}

// wanted reports whether the store keeps a listed block loaded: complete,
// ours (sharded) and, unless sharded, not marked for deletion.
func (s *Store) wanted(tenant string, id ulid.ULID, lb *listedBlock) bool {
	if s.owns == nil {
		return lb.complete && !lb.marked
	}
	return lb.complete && s.owns(tenant, id)
}

// sync brings the tenant's blocks in line with the bucket: new blocks (those
// whose meta.json exists: it is uploaded last) are loaded, blocks with a
// deletion mark (unless sharded), gone from the bucket or, sharded, no
// longer ours are dropped.
func (s *Store) sync(ctx context.Context, t *tenantBlocks) error {
	listed, err := listBlocks(ctx, s.bkt, t.id)
	if err != nil {
		return err
	}
	for id, lb := range listed {
		if _, ok := t.blocks[id]; ok || !s.wanted(t.id, id, lb) {
			continue
		}
		b, err := s.load(ctx, t.id, id, lb.segments, filepath.Join(s.cfg.Dir, t.id, id.String()))
		if errors.Is(err, encryption.ErrTenantKeysDeleted) {
			s.dropAll(t)
			t.shredded = true
			return nil
		}
		if err != nil {
			return fmt.Errorf("load block %s: %w", id, err)
		}
		t.blocks[id] = b
		s.loadedBlocks.Inc()
	}
	for id, b := range t.blocks {
		if lb, ok := listed[id]; !ok || !s.wanted(t.id, id, lb) {
			delete(t.blocks, id)
			b.drop()
			s.loadedBlocks.Dec()
			_ = os.RemoveAll(b.dir)
		}
	}
	return nil
}

func (s *Store) dropAll(t *tenantBlocks) {
	for id, b := range t.blocks {
		delete(t.blocks, id)
		b.drop()
		s.loadedBlocks.Dec()
	}
	_ = os.RemoveAll(filepath.Join(s.cfg.Dir, t.id))
}

// listedBlock is what a listing of the bucket says of one block.
type listedBlock struct {
	complete bool     // meta.json exists
	marked   bool     // a deletion mark exists
	segments []string // chunk file names, sorted
}

// listBlocks lists a tenant's blocks with one recursive listing.
func listBlocks(ctx context.Context, bkt bucket.Reader, tenant string) (map[ulid.ULID]*listedBlock, error) {
	out := map[ulid.ULID]*listedBlock{}
	prefix := tenant + "/blocks/"
	err := bkt.Iter(ctx, prefix, bucket.IterOptions{Recursive: true}, func(name string) error {
		rest := strings.TrimPrefix(name, prefix)
		idStr, file, ok := strings.Cut(rest, "/")
		if !ok {
			return nil
		}
		id, err := ulid.ParseStrict(idStr)
		if err != nil {
			return nil // not a block directory
		}
		lb := out[id]
		if lb == nil {
			lb = &listedBlock{}
			out[id] = lb
		}
		switch {
		case file == MetaFile:
			lb.complete = true
		case file == DeletionMarkFile:
			lb.marked = true
		case strings.HasPrefix(file, ChunksDir+"/"):
			lb.segments = append(lb.segments, name)
		}
		return nil
	})
	for _, lb := range out {
		slices.Sort(lb.segments)
	}
	return out, err
}

// ListBlocks returns the metas of a tenant's complete blocks and whether
// each has a deletion mark. The compactor and the operator report use it.
func ListBlocks(ctx context.Context, bkt bucket.Reader, tenant string) ([]tsdb.BlockMeta, map[ulid.ULID]bool, error) {
	listed, err := listBlocks(ctx, bkt, tenant)
	if err != nil {
		return nil, nil, err
	}
	var metas []tsdb.BlockMeta
	marked := map[ulid.ULID]bool{}
	for id, lb := range listed {
		if !lb.complete {
			continue
		}
		m, err := ReadMeta(ctx, bkt, tenant, id)
		if bucket.IsNotFound(err) {
			continue // deleted since the listing
		}
		if err != nil {
			return nil, nil, err
		}
		metas = append(metas, m)
		marked[id] = lb.marked
	}
	slices.SortFunc(metas, func(a, b tsdb.BlockMeta) int { return int(a.MinTime - b.MinTime) })
	return metas, marked, nil
}

// ReadMeta reads a block's meta.json from the bucket.
func ReadMeta(ctx context.Context, bkt bucket.Reader, tenant string, id ulid.ULID) (tsdb.BlockMeta, error) {
	var m tsdb.BlockMeta
	r, err := bkt.Get(ctx, path.Join(BlockDir(tenant, id), MetaFile))
	if err != nil {
		return m, err
	}
	defer r.Close()
	if err := json.NewDecoder(r).Decode(&m); err != nil {
		return m, fmt.Errorf("decode meta.json of block %s: %w", id, err)
	}
	return m, nil
}

// load downloads a block's index into dir and opens it.
func (s *Store) load(ctx context.Context, tenant string, id ulid.ULID, segNames []string, dir string) (*block, error) {
	meta, err := ReadMeta(ctx, s.bkt, tenant, id)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	idxPath := filepath.Join(dir, IndexFile)
	if err := download(ctx, s.bkt, path.Join(BlockDir(tenant, id), IndexFile), idxPath); err != nil {
		return nil, err
	}
	ir, err := index.NewFileReader(idxPath, index.DecodePostingsRaw)
	if err != nil {
		return nil, fmt.Errorf("open index: %w", err)
	}
	b := &block{meta: meta, dir: dir, ir: ir, bkt: s.bkt, pages: s.pages, pool: s.pool}
	for _, name := range segNames {
		a, err := s.bkt.Attributes(ctx, name)
		if err != nil {
			_ = ir.Close()
			return nil, err
		}
		b.segments = append(b.segments, segment{name: name, size: a.Size})
	}
	return b, nil
}

func download(ctx context.Context, bkt bucket.Reader, name, dst string) error {
	r, err := bkt.Get(ctx, name)
	if err != nil {
		return err
	}
	defer r.Close()
	f, err := os.CreateTemp(filepath.Dir(dst), ".download-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return fmt.Errorf("download %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), dst)
}

// Querier returns a querier over the tenant's blocks in [mint, maxt]. A
// tenant without blocks, or whose keys were deleted, gets an empty querier.
// The tenant's block list is synced with the bucket first when it is older
// than the sync interval; ctx bounds that sync and the wait for another
// query's sync of the same tenant.
func (s *Store) Querier(ctx context.Context, tenant string, mint, maxt int64) (storage.Querier, error) {
	bs, _, err := s.blocks(ctx, tenant, mint, maxt, nil)
	return s.querier(bs, mint, maxt, err)
}

// BlocksQuerier is Querier over the blocks of ids only; it also returns
// the IDs of those the store holds (what it answers for: a querier asks
// another store-gateway for the rest).
func (s *Store) BlocksQuerier(ctx context.Context, tenant string, ids []ulid.ULID, mint, maxt int64) (storage.Querier, []ulid.ULID, error) {
	bs, held, err := s.blocks(ctx, tenant, mint, maxt, nonNil(ids))
	q, err := s.querier(bs, mint, maxt, err)
	return q, held, err
}

// BlocksChunkQuerier is BlocksQuerier for encoded chunks.
func (s *Store) BlocksChunkQuerier(ctx context.Context, tenant string, ids []ulid.ULID, mint, maxt int64) (storage.ChunkQuerier, []ulid.ULID, error) {
	bs, held, err := s.blocks(ctx, tenant, mint, maxt, nonNil(ids))
	q, err := s.chunkQuerier(bs, mint, maxt, err)
	return q, held, err
}

func nonNil(ids []ulid.ULID) []ulid.ULID {
	if ids == nil {
		return []ulid.ULID{}
	}
	return ids
}

// querier merges the block queriers of bs, which it releases.
func (s *Store) querier(bs []*block, mint, maxt int64, err error) (storage.Querier, error) {
	if err != nil || len(bs) == 0 {
		return storage.NoopQuerier(), err
	}
	qs := make([]storage.Querier, 0, len(bs))
	for _, b := range bs {
		q, err := tsdb.NewBlockQuerier(b, mint, maxt)
		b.release() // the querier holds its own references now
		if err != nil {
			releaseAll(bs[len(qs)+1:])
			return nil, errors.Join(err, closeQueriers(qs))
		}
		qs = append(qs, q)
	}
	return storage.NewMergeQuerier(qs, nil, storage.ChainedSeriesMerge), nil
}

// ChunkQuerier is Querier for encoded chunks (remote read).
func (s *Store) ChunkQuerier(ctx context.Context, tenant string, mint, maxt int64) (storage.ChunkQuerier, error) {
	bs, _, err := s.blocks(ctx, tenant, mint, maxt, nil)
	return s.chunkQuerier(bs, mint, maxt, err)
}

// chunkQuerier merges the block chunk queriers of bs, which it releases.
func (s *Store) chunkQuerier(bs []*block, mint, maxt int64, err error) (storage.ChunkQuerier, error) {
	if err != nil || len(bs) == 0 {
		return storage.NoopChunkedQuerier(), err
	}
	qs := make([]storage.ChunkQuerier, 0, len(bs))
	for _, b := range bs {
		q, err := tsdb.NewBlockChunkQuerier(b, mint, maxt)
		b.release()
		if err != nil {
			releaseAll(bs[len(qs)+1:])
			for _, q := range qs {
				_ = q.Close()
			}
			return nil, err
		}
		qs = append(qs, q)
	}
	return storage.NewMergeChunkQuerier(qs, nil, storage.NewCompactingChunkSeriesMerger(storage.ChainedSeriesMerge)), nil
}

func releaseAll(bs []*block) {
	for _, b := range bs {
		b.release()
	}
}

func closeQueriers(qs []storage.Querier) error {
	var errs []error
	for _, q := range qs {
		errs = append(errs, q.Close())
	}
	return errors.Join(errs...)
}

// Forget drops everything the store holds of a tenant (after deletion).
func (s *Store) Forget(tenant string) {
	t := s.tenant(tenant)
	_ = t.acquire(context.Background())
	defer t.release()
	s.dropAll(t)
	t.synced = time.Time{}
}

// ResetCache empties the cache of decrypted chunk data.
func (s *Store) ResetCache() { s.pages.c.Reset() }

// Close drops every block.
func (s *Store) Close() error {
	s.mu.Lock()
	ts := make([]*tenantBlocks, 0, len(s.tenants))
	for _, t := range s.tenants {
		ts = append(ts, t)
	}
	s.mu.Unlock()
	for _, t := range ts {
		_ = t.acquire(context.Background())
		for id, b := range t.blocks {
			delete(t.blocks, id)
			b.drop()
		}
		t.release()
	}
	return nil
}
