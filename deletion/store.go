package deletion

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/encryption"
	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// Config configures deletion requests.
type Config struct {
	// CancelPeriod is how long a new request can be cancelled before it
	// is carried out; 0 carries it out at once.
	CancelPeriod time.Duration
	// ReloadPeriod is how long a reader serves a tenant's requests from
	// memory before reading them again from the bucket.
	ReloadPeriod time.Duration
}

// Flag names, for messages.
const (
	FlagCancelPeriod = "purger.delete-request-cancel-period"
	FlagReloadPeriod = "purger.reload-period"
)

// RegisterFlags registers the flags of deletion requests.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.CancelPeriod, FlagCancelPeriod, 24*time.Hour, "How long a series deletion request can be cancelled before it is carried out (its samples are hidden from reads at once either way); 0 carries it out at once.")
	fs.DurationVar(&c.ReloadPeriod, FlagReloadPeriod, 10*time.Second, "How long a querier serves a tenant's deletion requests from memory before reading them again from the bucket; requests made through the same process apply at once.")
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.CancelPeriod < 0 {
		return fmt.Errorf("-%s must not be negative, got %s", FlagCancelPeriod, c.CancelPeriod)
	}
	if c.ReloadPeriod <= 0 {
		return fmt.Errorf("-%s must be positive, got %s", FlagReloadPeriod, c.ReloadPeriod)
	}
	return nil
}

// ErrNotFound is wrapped by the error for a request that does not exist.
var ErrNotFound = errors.New("deletion request not found")

// ErrLimit is wrapped by the refusal of a request over the tenant's
// max_delete_requests.
var ErrLimit = errors.New("too many pending deletion requests")

// dirName is the directory of a tenant's requests: one object per request,
// <tenant>/deletion-requests/<ID>.json.
const dirName = "deletion-requests"

// maxObjectBytes bounds what is read back for one request.
const maxObjectBytes = 4 << 20

// Dir returns the bucket directory of a tenant's requests.
func Dir(tenant string) string { return tenant + "/" + dirName }

func objectName(tenant, id string) string { return Dir(tenant) + "/" + id + ".json" }

// ValidateID checks a request ID before it is used in an object name.
func ValidateID(id string) error {
	if _, err := ulid.ParseStrict(id); err != nil {
		return fmt.Errorf("%w: request ID %q is not one FluxPulse made (26 characters of Crockford base32)", ErrInvalid, id)
	}
	return nil
}

// Store keeps requests in the bucket, which must be the encrypting one: a
// request is stored under its tenant's key. Read-modify-write changes are
// serialised within the process; across processes they do not collide
// (the API cancels only before CancellableUntil, the compactor acts only
// after it).
type Store struct {
	bkt bucket.Bucket
	mu  sync.Mutex
}

// NewStore returns a Store over bkt.
func NewStore(bkt bucket.Bucket) *Store { return &Store{bkt: bkt} }

// Add stores a new request, unless the tenant has maxPending pending ones
// already (0: no limit); that refusal wraps ErrLimit.
func (s *Store) Add(ctx context.Context, r Request, maxPending int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if maxPending > 0 {
		all, err := s.List(ctx, r.Tenant)
		if err != nil {
			return err
		}
		n := 0
		for _, o := range all {
			if o.State == StatePending {
				n++
			}
		}
		if n >= maxPending {
			return fmt.Errorf("%w: tenant %s has %d pending deletion requests, the limit is %d (%s); wait until they are processed, or cancel some",
				ErrLimit, r.Tenant, n, maxPending, limits.Source(limits.FlagMaxDeleteRequests))
		}
	}
	return s.put(ctx, r)
}

func (s *Store) put(ctx context.Context, r Request) error {
	if err := tenantauth.ValidateID(r.Tenant); err != nil {
		return err
	}
	if err := ValidateID(r.ID); err != nil {
		return err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode deletion request %s: %w", r.ID, err)
	}
	if err := s.bkt.Upload(ctx, objectName(r.Tenant, r.ID), bytes.NewReader(b)); err != nil {
		return fmt.Errorf("store deletion request %s: %w", r.ID, err)
	}
	return nil
}

// List returns the tenant's requests, oldest first. A tenant whose keys
// were deleted has none.
func (s *Store) List(ctx context.Context, tenant string) ([]Request, error) {
	if err := tenantauth.ValidateID(tenant); err != nil {
		return nil, err
	}
	var out []Request
	err := s.bkt.Iter(ctx, Dir(tenant), bucket.IterOptions{}, func(name string) error {
		id, ok := strings.CutSuffix(strings.TrimPrefix(name, Dir(tenant)+"/"), ".json")
		if !ok || ValidateID(id) != nil {
			return nil // not a request
		}
		r, err := s.Get(ctx, tenant, id)
		if errors.Is(err, ErrNotFound) {
			return nil // deleted since it was listed
		}
		if err != nil {
			return err
		}
		out = append(out, r)
		return nil
	})
	if errors.Is(err, encryption.ErrTenantKeysDeleted) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list deletion requests of tenant %s: %w", tenant, err)
	}
	slices.SortFunc(out, func(a, b Request) int { return strings.Compare(a.ID, b.ID) }) // ULIDs sort by time
	return out, nil
}

// Get returns one request; a missing one is an error wrapping ErrNotFound.
func (s *Store) Get(ctx context.Context, tenant, id string) (Request, error) {
	var r Request
	if err := ValidateID(id); err != nil {
		return r, err
	}
	rc, err := s.bkt.Get(ctx, objectName(tenant, id))
	if bucket.IsNotFound(err) {
		return r, fmt.Errorf("%w: tenant %s has no deletion request %s", ErrNotFound, tenant, id)
	}
	if err != nil {
		return r, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxObjectBytes+1))
	if err != nil {
		return r, fmt.Errorf("read deletion request %s: %w", id, err)
	}
	if len(b) > maxObjectBytes {
		return r, fmt.Errorf("deletion request %s of tenant %s is larger than %d bytes", id, tenant, maxObjectBytes)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("decode deletion request %s of tenant %s: %w", id, tenant, err)
	}
	if r.ID != id || r.Tenant != tenant {
		return r, fmt.Errorf("deletion request object %s holds request %s of tenant %q", objectName(tenant, id), r.ID, r.Tenant)
	}
	return r, r.Parse()
}

// Update reads the request, lets fn change it and writes it back; fn's
// error leaves it unchanged and is returned as it is.
func (s *Store) Update(ctx context.Context, tenant, id string, fn func(*Request) error) (Request, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.Get(ctx, tenant, id)
	if err != nil {
		return r, err
	}
	if err := fn(&r); err != nil {
		return r, err
	}
	return r, s.put(ctx, r)
}
