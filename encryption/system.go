package encryption

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/fluxpulse/fluxpulse/bucket"
)

// SystemPrefix is the first segment of the names of the objects FluxPulse
// keeps for the whole cluster rather than for a tenant: the runtime
// configuration, every process's usage hours and audit segments (#17). Its
// "@" is not allowed in tenant IDs, so it never meets a tenant's prefix,
// and every listing of tenants skips it.
const SystemPrefix = "@fluxpulse"

// MaxSystemObjectSize bounds what one system object holds in plaintext, and
// so what Get reads into memory.
const MaxSystemObjectSize = 64 << 20

// SystemKeys are the keys that seal system objects: *DerivedKeys, derived
// from the master keys for one purpose. Implementations are safe for
// concurrent use.
type SystemKeys interface {
	// Current returns the ID of the key that seals new objects and the key.
	Current() (id string, key []byte, err error)
	// Key returns the key with the given ID.
	Key(id string) ([]byte, error)
}

// SystemStore keeps whole objects below SystemPrefix/<dir>/, each sealed
// with AES-256-GCM under a key of keys, with the object's full name as
// additional data, so that an object moved to another name, or any changed
// byte, fails to open (ErrDecrypt). Objects are small and read whole. It is
// safe for concurrent use.
type SystemStore struct {
	raw  bucket.Bucket
	dir  string
	keys SystemKeys
}

// NewSystemStore returns the store of the objects below SystemPrefix/dir/
// of the raw (not encrypting) bucket raw.
func NewSystemStore(raw bucket.Bucket, dir string, keys SystemKeys) *SystemStore {
	return &SystemStore{raw: raw, dir: strings.Trim(dir, "/"), keys: keys}
}

// Name returns the bucket name of the object name of the store.
func (s *SystemStore) Name(name string) string { return SystemPrefix + "/" + s.dir + "/" + name }

// systemMagic starts every sealed system object; the version is its last
// byte.
const systemMagic = "FPS\x01"

const gcmNonceSize = 12

// Put seals b and stores it as name, replacing any object of that name.
func (s *SystemStore) Put(ctx context.Context, name string, b []byte) error {
	if len(b) > MaxSystemObjectSize {
		return fmt.Errorf("system object %s: %d bytes, the limit is %d", name, len(b), MaxSystemObjectSize)
	}
	id, key, err := s.keys.Current()
	if err != nil {
		return fmt.Errorf("seal %s: %w", name, err)
	}
	full := s.Name(name)
	sealed, err := sealSystem(key, id, full, b)
	if err != nil {
		return fmt.Errorf("seal %s: %w", name, err)
	}
	return s.raw.Upload(ctx, full, bytes.NewReader(sealed))
}

// Get reads and opens the object name. A missing object is an error
// wrapping bucket.ErrNotFound; one that does not open wraps ErrDecrypt.
func (s *SystemStore) Get(ctx context.Context, name string) ([]byte, error) {
	full := s.Name(name)
	rc, err := s.raw.Get(ctx, full)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, MaxSystemObjectSize+1024))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", full, err)
	}
	return OpenSystem(b, full, s.keys)
}

// List calls f with the name (relative to the store's directory) of every
// object below sub ("" for the whole store), in lexicographic order.
func (s *SystemStore) List(ctx context.Context, sub string, f func(name string) error) error {
	prefix := SystemPrefix + "/" + s.dir + "/"
	dir := prefix + strings.Trim(sub, "/")
	return s.raw.Iter(ctx, dir, bucket.IterOptions{Recursive: true}, func(n string) error {
		return f(strings.TrimPrefix(n, prefix))
	})
}

// Delete removes the object name; a missing one is not an error.
func (s *SystemStore) Delete(ctx context.Context, name string) error {
	return s.raw.Delete(ctx, s.Name(name))
}

// sealSystem encodes a sealed system object: magic, key ID length (1
// byte), key ID, nonce, then the GCM ciphertext and tag of b.
func sealSystem(key []byte, keyID, name string, b []byte) ([]byte, error) {
	if len(keyID) == 0 || len(keyID) > 255 {
		return nil, fmt.Errorf("key ID of %d bytes", len(keyID))
	}
	aead, err := systemAEAD(key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(systemMagic)+1+len(keyID)+gcmNonceSize+len(b)+aead.Overhead())
	out = append(out, systemMagic...)
	out = append(out, byte(len(keyID)))
	out = append(out, keyID...)
	nonce := make([]byte, gcmNonceSize)
	_, _ = rand.Read(nonce)
	out = append(out, nonce...)
	return aead.Seal(out, nonce, b, systemAAD(keyID, name)), nil
}

// OpenSystem opens a sealed system object stored under the bucket name
// name. Every failure wraps ErrDecrypt, but for a key that keys cannot
// give.
func OpenSystem(sealed []byte, name string, keys SystemKeys) ([]byte, error) {
	keyID, nonce, ct, err := parseSystem(sealed)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	key, err := keys.Key(keyID)
	if err != nil {
		return nil, fmt.Errorf("%s: key %s: %w", name, keyID, err)
	}
	aead, err := systemAEAD(key)
	if err != nil {
		return nil, err
	}
	b, err := aead.Open(nil, nonce, ct, systemAAD(keyID, name))
	if err != nil {
		return nil, fmt.Errorf("%s: %w: changed, moved from another name, or sealed with another key file", name, ErrDecrypt)
	}
	return b, nil
}

// parseSystem splits a sealed system object into its parts.
func parseSystem(b []byte) (keyID string, nonce, ct []byte, err error) {
	if len(b) < len(systemMagic)+1 || string(b[:len(systemMagic)]) != systemMagic {
		return "", nil, nil, fmt.Errorf("%w: not a sealed system object", ErrDecrypt)
	}
	b = b[len(systemMagic):]
	n := int(b[0])
	b = b[1:]
	if n == 0 || len(b) < n+gcmNonceSize+16 {
		return "", nil, nil, fmt.Errorf("%w: sealed system object cut short", ErrDecrypt)
	}
	return string(b[:n]), b[n : n+gcmNonceSize], b[n+gcmNonceSize:], nil
}

func systemAAD(keyID, name string) []byte {
	return []byte("fluxpulse system object v1\x00" + keyID + "\x00" + name)
}

func systemAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != 32 {
		return nil, errors.New("BUG: system object key is not 32 bytes")
	}
	blk, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(blk)
}
