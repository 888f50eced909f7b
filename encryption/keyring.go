package encryption

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// ErrDecrypt is wrapped by every error that reports an object that cannot
// be decrypted: corrupt, modified, truncated, copied from another name or
// tenant, or not encrypted at all.
var ErrDecrypt = errors.New("cannot decrypt object")

// ErrKeyNotFound is wrapped (together with ErrDecrypt) when an object names
// a data key its tenant does not have.
var ErrKeyNotFound = errors.New("data key not found")

// ErrTenantKeysDeleted is wrapped by every read of an object whose tenant's
// data keys were deleted (crypto-shredding). Callers treat the tenant's data
// as gone: an empty result, not a failure.
var ErrTenantKeysDeleted = errors.New("the tenant's data keys were deleted")

// keysDir is the directory, below each tenant's prefix, of its wrapped data
// keys; deletedSuffix marks the tombstone of a deleted key.
const (
	keysDir       = "keys"
	deletedSuffix = ".deleted"
)

// KeyringOptions tune a Keyring.
type KeyringOptions struct {
	// CacheTTL is how long a tenant's keys are used before the list is
	// read from the bucket again; it bounds how long a server keeps using
	// keys that another process rotated or deleted. Zero means one minute.
	CacheTTL time.Duration
	// Logger receives rotation and deletion events; nil discards them.
	Logger *slog.Logger
}

// Keyring manages tenants' data keys: it creates them, wraps them with the
// current master key, stores them in the bucket at
// <tenant>/keys/<data key ID> and keeps the unwrapped keys in memory. It is
// safe for concurrent use, also by several processes sharing the bucket and
// key file.
type Keyring struct {
	bkt    bucket.Bucket
	kf     *KeyFile
	ttl    time.Duration
	logger *slog.Logger

	mu      sync.Mutex
	tenants map[string]*tenantKeys
}

// tenantKeys is the cached key state of one tenant; mu guards it and
// serializes its loading.
type tenantKeys struct {
	mu      sync.Mutex
	loaded  time.Time // zero: never loaded
	keys    map[DataKeyID][]byte
	broken  map[DataKeyID]error // key objects that did not unwrap
	deleted map[DataKeyID]bool  // tombstones
}

// newest returns the newest usable data key, if any.
func (tk *tenantKeys) newest() (DataKeyID, []byte, bool) {
	if len(tk.keys) == 0 {
		return DataKeyID{}, nil, false
	}
	id := slices.MaxFunc(slices.Collect(maps.Keys(tk.keys)), func(a, b DataKeyID) int { return strings.Compare(a.String(), b.String()) })
	return id, tk.keys[id], true
}

// NewKeyring returns a keyring over the raw (not encrypting) bucket bkt and
// the master keys in kf.
func NewKeyring(bkt bucket.Bucket, kf *KeyFile, opts KeyringOptions) *Keyring {
	if opts.CacheTTL <= 0 {
		opts.CacheTTL = time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Keyring{bkt: bkt, kf: kf, ttl: opts.CacheTTL, logger: opts.Logger, tenants: map[string]*tenantKeys{}}
}

// tenant returns the tenant's cache entry, locked; the caller unlocks it.
// The entry is (re)loaded if it is older than the TTL or was loaded before
// staleBefore.
func (k *Keyring) tenant(ctx context.Context, tenant string, staleBefore time.Time) (*tenantKeys, error) {
	k.mu.Lock()
	tk, ok := k.tenants[tenant]
	if !ok {
		tk = &tenantKeys{}
		k.tenants[tenant] = tk
	}
	k.mu.Unlock()
	tk.mu.Lock()
	if tk.loaded.IsZero() || time.Since(tk.loaded) >= k.ttl || tk.loaded.Before(staleBefore) {
		if err := k.load(ctx, tenant, tk); err != nil {
			tk.mu.Unlock()
			return nil, err
		}
	}
	return tk, nil
}

// load reads every key object and tombstone of the tenant.
func (k *Keyring) load(ctx context.Context, tenant string, tk *tenantKeys) error {
	keys, broken, deleted := map[DataKeyID][]byte{}, map[DataKeyID]error{}, map[DataKeyID]bool{}
	err := k.bkt.Iter(ctx, path.Join(tenant, keysDir), bucket.IterOptions{}, func(name string) error {
		base := path.Base(name)
		if strings.HasSuffix(name, "/") {
			return nil
		}
		id, err := ParseDataKeyID(strings.TrimSuffix(base, deletedSuffix))
		if err != nil {
			k.logger.Warn("ignoring unexpected object among data keys", "object", name)
			return nil
		}
		if strings.HasSuffix(base, deletedSuffix) {
			deleted[id] = true
			return nil
		}
		key, err := k.readKey(ctx, tenant, id)
		if errors.Is(err, bucket.ErrNotFound) {
			return nil // deleted since the listing
		}
		if err != nil {
			broken[id] = err
			k.logger.Error("data key does not unwrap", "tenant", tenant, "key", id.String(), "err", err)
			return nil
		}
		keys[id] = key
		return nil
	})
	if err != nil {
		return fmt.Errorf("load data keys of tenant %q: %w", tenant, err)
	}
	tk.keys, tk.broken, tk.deleted, tk.loaded = keys, broken, deleted, time.Now()
	return nil
}

func keyName(tenant string, id DataKeyID) string { return tenant + "/" + keysDir + "/" + id.String() }

// readWrapped reads and decodes one stored key object.
func (k *Keyring) readWrapped(ctx context.Context, tenant string, id DataKeyID) (wrappedKey, error) {
	rc, err := k.bkt.Get(ctx, keyName(tenant, id))
	if err != nil {
		return wrappedKey{}, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 64<<10))
	if err != nil {
		return wrappedKey{}, fmt.Errorf("read data key %s of tenant %q: %w", id, tenant, err)
	}
	return parseWrappedKey(b, tenant, id)
}

// readKey reads and unwraps one data key.
func (k *Keyring) readKey(ctx context.Context, tenant string, id DataKeyID) ([]byte, error) {
	w, err := k.readWrapped(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	mk, err := k.kf.Key(w.MasterKeyID)
	if err != nil {
		return nil, err
	}
	return w.unwrap(mk)
}

// currentKey returns the tenant's newest data key, creating the first one
// if the tenant has none.
func (k *Keyring) currentKey(ctx context.Context, tenant string) (DataKeyID, []byte, error) {
	tk, err := k.tenant(ctx, tenant, time.Time{})
	if err != nil {
		return DataKeyID{}, nil, err
	}
	defer tk.mu.Unlock()
	if id, key, ok := tk.newest(); ok {
		return id, key, nil
	}
	return k.create(ctx, tenant, tk)
}

// dataKey returns the tenant's data key id. An unknown ID makes it reread
// the tenant's keys, in case another process has just created it; callers
// missing at the same time share one reload.
func (k *Keyring) dataKey(ctx context.Context, tenant string, id DataKeyID) ([]byte, error) {
	start := time.Now()
	for _, staleBefore := range []time.Time{{}, start} {
		tk, err := k.tenant(ctx, tenant, staleBefore)
		if err != nil {
			return nil, err
		}
		key, ok := tk.keys[id]
		berr, broken := tk.broken[id]
		deleted := tk.deleted[id]
		tk.mu.Unlock()
		switch {
		case ok:
			return key, nil
		case broken:
			return nil, fmt.Errorf("%w: %w", ErrDecrypt, berr)
		case deleted:
			return nil, fmt.Errorf("data key %s of tenant %q: %w", id, tenant, ErrTenantKeysDeleted)
		}
	}
	return nil, fmt.Errorf("%w: %w: tenant %q has no data key %s (the object was copied from another tenant, or its header was modified)", ErrDecrypt, ErrKeyNotFound, tenant, id)
}

// create makes a new data key for the tenant, newer than any it has, and
// stores it wrapped by the current master key. The caller holds tk.mu.
func (k *Keyring) create(ctx context.Context, tenant string, tk *tenantKeys) (DataKeyID, []byte, error) {
	now := time.Now()
	if id, _, ok := tk.newest(); ok && !id.Created().Before(now) {
		now = id.Created().Add(time.Nanosecond) // a clock behind the last rotation's
	}
	id := newDataKeyID(now)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	mk, err := k.kf.Current()
	if err != nil {
		return DataKeyID{}, nil, err
	}
	b, err := wrapDataKey(mk, tenant, id, key)
	if err != nil {
		return DataKeyID{}, nil, err
	}
	if err := k.bkt.Upload(ctx, keyName(tenant, id), strings.NewReader(string(b))); err != nil {
		return DataKeyID{}, nil, fmt.Errorf("store new data key of tenant %q: %w", tenant, err)
	}
	tk.keys[id] = key
	k.logger.Info("created data key", "tenant", tenant, "key", id.String(), "master_key", mk.ID)
	return id, key, nil
}

// RotateTenant creates a new data key for the tenant; objects written from
// then on use it, and older objects stay readable with their keys. Other
// processes start using it within the cache TTL.
func (k *Keyring) RotateTenant(ctx context.Context, tenant string) (DataKeyID, error) {
	if err := tenantauth.ValidateID(tenant); err != nil {
		return DataKeyID{}, err
	}
	tk, err := k.tenant(ctx, tenant, time.Now())
	if err != nil {
		return DataKeyID{}, err
	}
	defer tk.mu.Unlock()
	id, _, err := k.create(ctx, tenant, tk)
	return id, err
}

// DeleteTenantKeys crypto-shreds the tenant: it leaves a tombstone for each
// of its data keys, deletes the keys and forgets them, so every later read
// of the tenant's objects fails with ErrTenantKeysDeleted (in other
// processes once their cache TTL has passed). The objects themselves are
// left for the caller to delete. A later upload for the tenant creates a
// fresh key; the old objects stay unreadable.
func (k *Keyring) DeleteTenantKeys(ctx context.Context, tenant string) error {
	if err := tenantauth.ValidateID(tenant); err != nil {
		return err
	}
	tk, err := k.tenant(ctx, tenant, time.Now())
	if err != nil {
		return err
	}
	defer tk.mu.Unlock()
	ids := slices.Collect(maps.Keys(tk.keys))
	ids = append(ids, slices.Collect(maps.Keys(tk.broken))...)
	for _, id := range ids {
		tomb := keyName(tenant, id) + deletedSuffix
		if err := k.bkt.Upload(ctx, tomb, strings.NewReader(time.Now().UTC().Format(time.RFC3339)+"\n")); err != nil {
			return fmt.Errorf("delete data keys of tenant %q: %w", tenant, err)
		}
		if err := k.bkt.Delete(ctx, keyName(tenant, id)); err != nil {
			return fmt.Errorf("delete data keys of tenant %q: %w", tenant, err)
		}
		delete(tk.keys, id)
		delete(tk.broken, id)
		tk.deleted[id] = true
	}
	k.logger.Info("deleted data keys", "tenant", tenant, "keys", len(ids))
	return nil
}

// RewrapStats counts what RewrapAll did.
type RewrapStats struct {
	Tenants   int // tenants with at least one data key
	Rewrapped int // data keys re-wrapped with the current master key
	Current   int // data keys already wrapped with it
}

// RewrapAll re-wraps every data key of every tenant that is not wrapped by
// the current master key. No object data is rewritten. It can be run again
// after a failure: keys already re-wrapped are skipped.
func (k *Keyring) RewrapAll(ctx context.Context) (RewrapStats, error) {
	var st RewrapStats
	cur, err := k.kf.Current()
	if err != nil {
		return st, err
	}
	err = k.bkt.Iter(ctx, "", bucket.IterOptions{}, func(dir string) error {
		tenant := strings.TrimSuffix(dir, "/")
		if !strings.HasSuffix(dir, "/") || tenantauth.ValidateID(tenant) != nil {
			return nil
		}
		n, err := k.rewrapTenant(ctx, tenant, cur, &st)
		if n > 0 {
			st.Tenants++
		}
		return err
	})
	return st, err
}

func (k *Keyring) rewrapTenant(ctx context.Context, tenant string, cur MasterKey, st *RewrapStats) (int, error) {
	var n int
	err := k.bkt.Iter(ctx, path.Join(tenant, keysDir), bucket.IterOptions{}, func(name string) error {
		id, err := ParseDataKeyID(path.Base(name))
		if err != nil {
			return nil // a tombstone or a stranger
		}
		n++
		w, err := k.readWrapped(ctx, tenant, id)
		if err != nil {
			return err
		}
		if w.MasterKeyID == cur.ID {
			st.Current++
			return nil
		}
		mk, err := k.kf.Key(w.MasterKeyID)
		if err != nil {
			return err
		}
		key, err := w.unwrap(mk)
		if err != nil {
			return err
		}
		b, err := wrapDataKey(cur, tenant, id, key)
		if err != nil {
			return err
		}
		if err := k.bkt.Upload(ctx, name, strings.NewReader(string(b))); err != nil {
			return fmt.Errorf("store re-wrapped data key %s of tenant %q: %w", id, tenant, err)
		}
		st.Rewrapped++
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("re-wrap data keys of tenant %q: %w", tenant, err)
	}
	return n, nil
}

// RotateMaster adds a new master key to the key file, makes it current and
// re-wraps every data key with it (see RewrapAll). The old master keys stay
// in the file; remove them by hand once no data key needs them.
func (k *Keyring) RotateMaster(ctx context.Context) (MasterKey, RewrapStats, error) {
	mk, err := k.kf.Rotate()
	if err != nil {
		return MasterKey{}, RewrapStats{}, err
	}
	k.logger.Info("rotated master key", "master_key", mk.ID)
	st, err := k.RewrapAll(ctx)
	return mk, st, err
}

// DataKeyInfo describes one data key of a tenant.
type DataKeyInfo struct {
	ID          DataKeyID
	MasterKeyID string // empty for a deleted key
	Deleted     bool
}

// Keys lists the tenant's data keys and tombstones, oldest first, read from
// the bucket (not the cache).
func (k *Keyring) Keys(ctx context.Context, tenant string) ([]DataKeyInfo, error) {
	if err := tenantauth.ValidateID(tenant); err != nil {
		return nil, err
	}
	var infos []DataKeyInfo
	err := k.bkt.Iter(ctx, path.Join(tenant, keysDir), bucket.IterOptions{}, func(name string) error {
		base := path.Base(name)
		id, err := ParseDataKeyID(strings.TrimSuffix(base, deletedSuffix))
		if err != nil {
			return nil
		}
		if strings.HasSuffix(base, deletedSuffix) {
			infos = append(infos, DataKeyInfo{ID: id, Deleted: true})
			return nil
		}
		w, err := k.readWrapped(ctx, tenant, id)
		if err != nil {
			return err
		}
		infos = append(infos, DataKeyInfo{ID: id, MasterKeyID: w.MasterKeyID})
		return nil
	})
	return infos, err
}
