package alertmanager

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/encryption"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// Objects of a tenant's Alertmanager in the bucket, below
// <tenant>/alertmanager/. The bucket encrypts them with the tenant's key.
const (
	storeDir       = "alertmanager"
	configObject   = "config.yaml" // the UserConfig as stored: templates and configuration, secrets in clear
	silencesObject = "silences"    // Alertmanager's silence snapshot
	nflogObject    = "nflog"       // Alertmanager's notification-log snapshot
)

// maxStoredBytes bounds what is read back for one object.
const maxStoredBytes = 64 << 20

// errNoConfig is wrapped by the error for a tenant without a stored
// configuration.
var errNoConfig = errors.New("alertmanager storage object not found")

// store keeps tenants' configurations and state in the bucket.
type store struct {
	bkt bucket.Bucket
}

func objectName(tenant, object string) string {
	return tenant + "/" + storeDir + "/" + object
}

// tenants returns the tenants that have a stored configuration.
func (s *store) tenants(ctx context.Context) ([]string, error) {
	dirs, err := tenantauth.InBucket(ctx, s.bkt)
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	var out []string
	for _, id := range dirs {
		ok, err := s.bkt.Exists(ctx, objectName(id, configObject))
		if err != nil {
			return nil, fmt.Errorf("look for the Alertmanager configuration of tenant %s: %w", id, err)
		}
		if ok {
			out = append(out, id)
		}
	}
	return out, nil
}

// get reads an object; a missing one, or one whose tenant's keys were
// deleted, is an error wrapping bucket.ErrNotFound.
func (s *store) get(ctx context.Context, tenant, object string) ([]byte, error) {
	rc, err := s.bkt.Get(ctx, objectName(tenant, object))
	if errors.Is(err, encryption.ErrTenantKeysDeleted) {
		return nil, fmt.Errorf("%s of tenant %s: %w (the tenant's keys were deleted)", object, tenant, bucket.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read the Alertmanager %s of tenant %s: %w", object, tenant, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxStoredBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read the Alertmanager %s of tenant %s: %w", object, tenant, err)
	}
	if len(b) > maxStoredBytes {
		return nil, fmt.Errorf("the Alertmanager %s of tenant %s is larger than %d bytes", object, tenant, maxStoredBytes)
	}
	return b, nil
}

// getConfig reads a tenant's configuration; none is an error wrapping
// errNoConfig.
func (s *store) getConfig(ctx context.Context, tenant string) (*UserConfig, error) {
	b, err := s.get(ctx, tenant, configObject)
	if bucket.IsNotFound(err) {
		return nil, fmt.Errorf("tenant %s: %w", tenant, errNoConfig)
	}
	if err != nil {
		return nil, err
	}
	uc, err := decodeStored(b)
	if err != nil {
		return nil, fmt.Errorf("decode the stored Alertmanager configuration of tenant %s: %w", tenant, err)
	}
	return uc, nil
}

func (s *store) put(ctx context.Context, tenant, object string, b []byte) error {
	if err := s.bkt.Upload(ctx, objectName(tenant, object), bytes.NewReader(b)); err != nil {
		return fmt.Errorf("store the Alertmanager %s of tenant %s: %w", object, tenant, err)
	}
	return nil
}

// deleteAll removes the tenant's configuration and state.
func (s *store) deleteAll(ctx context.Context, tenant string) error {
	for _, o := range []string{configObject, silencesObject, nflogObject} {
		if err := s.bkt.Delete(ctx, objectName(tenant, o)); err != nil {
			return fmt.Errorf("delete the Alertmanager %s of tenant %s: %w", o, tenant, err)
		}
	}
	return nil
}
