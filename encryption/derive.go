package encryption

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
	"time"
)

// DerivedKey returns size bytes derived with HKDF-SHA256 from the tenant's
// newest data key, for purpose, and the ID of the data key it comes from.
// A tenant without a data key (nothing written yet, or its keys deleted)
// gets ErrKeyNotFound: no key is created for a read. Data that is not an
// object of the bucket (the query frontend's cached results, #15) is
// encrypted with it: it is bound to the tenant and the purpose, changes
// when the tenant's data key rotates, and is gone with the tenant's keys
// (crypto-shredding).
func (k *Keyring) DerivedKey(ctx context.Context, tenant, purpose string, size int) (DataKeyID, []byte, error) {
	tk, err := k.tenant(ctx, tenant, time.Time{})
	if err != nil {
		return DataKeyID{}, nil, err
	}
	id, key, ok := tk.newest()
	tk.mu.Unlock()
	if !ok {
		return DataKeyID{}, nil, fmt.Errorf("tenant %q has no data key: %w", tenant, ErrKeyNotFound)
	}
	out, err := hkdf.Key(sha256.New, key, id[:], "fluxpulse "+purpose+" "+tenant, size)
	if err != nil {
		return DataKeyID{}, nil, fmt.Errorf("derive the %s key of tenant %q: %w", purpose, tenant, err)
	}
	return id, out, nil
}
