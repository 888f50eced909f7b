package encryption

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// The object format: a fixed-size header, then the plaintext in the DARE
// 2.0 format (github.com/minio/sio): AES-256-GCM packages of 64 KiB of
// plaintext plus 32 bytes of package header and tag.
//
//	offset size field
//	0      4    magic "FLXE"
//	4      1    format version (1)
//	5      1    flags (bit 0: the plaintext is empty and no DARE stream follows)
//	6      2    reserved, zero
//	8      16   data key ID (8 bytes big-endian creation time in Unix nanoseconds, 8 random bytes)
//	24     32   salt, random per object
//	56     32   HMAC-SHA256 over bytes 0-55 under the object's MAC key
//
// The object's encryption and MAC keys are derived with HKDF-SHA256 from
// the tenant's data key, with the salt and the object's full name (tenant
// included) as context, so an object copied to another name or tenant
// fails its header MAC and, were the header forged, every DARE package.
const (
	HeaderSize    = 88
	packageSize   = 64 << 10
	encPackSize   = packageSize + 32
	formatVersion = 1
	flagEmpty     = 1
	saltSize      = 32
	macOffset     = 56
)

var magic = [4]byte{'F', 'L', 'X', 'E'}

// DataKeyID names one data key of a tenant. IDs sort by creation time, so
// the greatest is the newest.
type DataKeyID [16]byte

// String returns the ID as 32 lowercase hex digits, its form in object
// names.
func (id DataKeyID) String() string { return hex.EncodeToString(id[:]) }

// Created returns the creation time encoded in the ID.
func (id DataKeyID) Created() time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(id[:8]))).UTC()
}

// ParseDataKeyID parses the String form of a DataKeyID.
func ParseDataKeyID(s string) (DataKeyID, error) {
	var id DataKeyID
	if len(s) != 2*len(id) {
		return id, fmt.Errorf("data key ID %q: want %d hex digits", s, 2*len(id))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("data key ID %q: %w", s, err)
	}
	if s != id.String() {
		return id, fmt.Errorf("data key ID %q: want lowercase hex", s)
	}
	return id, nil
}

// newDataKeyID returns a random ID created at t.
func newDataKeyID(t time.Time) DataKeyID {
	var id DataKeyID
	binary.BigEndian.PutUint64(id[:8], uint64(t.UnixNano()))
	_, _ = rand.Read(id[8:]) // crypto/rand.Read never fails
	return id
}

// header is the parsed object header.
type header struct {
	empty bool
	keyID DataKeyID
	salt  [saltSize]byte
	mac   [32]byte
}

// parseHeader checks the header's structure. It does not check the MAC,
// which needs the key.
func parseHeader(b []byte) (header, error) {
	var h header
	if len(b) < HeaderSize {
		return h, fmt.Errorf("%w: object is %d bytes long, shorter than the %d-byte header", ErrDecrypt, len(b), HeaderSize)
	}
	if !bytes.Equal(b[:4], magic[:]) {
		return h, fmt.Errorf("%w: not an encrypted FluxPulse object (magic %q)", ErrDecrypt, b[:4])
	}
	if b[4] != formatVersion {
		return h, fmt.Errorf("%w: format version %d, this build reads version %d", ErrDecrypt, b[4], formatVersion)
	}
	if b[5]&^flagEmpty != 0 || b[6] != 0 || b[7] != 0 {
		return h, fmt.Errorf("%w: unknown flags %#x %#x %#x", ErrDecrypt, b[5], b[6], b[7])
	}
	h.empty = b[5]&flagEmpty != 0
	copy(h.keyID[:], b[8:24])
	copy(h.salt[:], b[24:macOffset])
	copy(h.mac[:], b[macOffset:HeaderSize])
	return h, nil
}

// marshal returns the header's bytes, with the MAC field as set.
func (h header) marshal() []byte {
	b := make([]byte, HeaderSize)
	copy(b, magic[:])
	b[4] = formatVersion
	if h.empty {
		b[5] = flagEmpty
	}
	copy(b[8:24], h.keyID[:])
	copy(b[24:macOffset], h.salt[:])
	copy(b[macOffset:], h.mac[:])
	return b
}

// computeMAC returns the MAC of the header's fields under macKey.
func (h header) computeMAC(macKey []byte) [32]byte {
	m := hmac.New(sha256.New, macKey)
	m.Write(h.marshal()[:macOffset])
	var sum [32]byte
	m.Sum(sum[:0])
	return sum
}

// objectKeys are the keys of one object, derived from its tenant's data
// key, its salt and its full name.
type objectKeys struct {
	enc []byte // DARE key
	mac []byte // header MAC key
}

func deriveObjectKeys(dataKey []byte, salt [saltSize]byte, name string) (objectKeys, error) {
	prk, err := hkdf.Extract(sha256.New, dataKey, salt[:])
	if err != nil {
		return objectKeys{}, err
	}
	enc, err := hkdf.Expand(sha256.New, prk, "fluxpulse object encryption v1\x00"+name, 32)
	if err != nil {
		return objectKeys{}, err
	}
	mac, err := hkdf.Expand(sha256.New, prk, "fluxpulse object header mac v1\x00"+name, 32)
	if err != nil {
		return objectKeys{}, err
	}
	return objectKeys{enc: enc, mac: mac}, nil
}

// wrappedKey is the stored form of a data key, wrapped (AES-256-GCM) by a
// master key. It is JSON at <tenant>/keys/<data key ID> in the bucket.
type wrappedKey struct {
	Version     int       `json:"version"`
	Tenant      string    `json:"tenant"`
	DataKeyID   string    `json:"data_key_id"`
	MasterKeyID string    `json:"master_key_id"`
	Created     time.Time `json:"created"`
	Nonce       []byte    `json:"nonce"`
	Ciphertext  []byte    `json:"ciphertext"`
}

// wrapAAD binds a wrapped key to its tenant, its ID and its master key, so
// that a key object copied to another tenant or name does not unwrap.
func wrapAAD(tenant string, id DataKeyID, masterID string) []byte {
	return []byte("fluxpulse data key v1\x00" + tenant + "\x00" + id.String() + "\x00" + masterID)
}

func masterAEAD(master []byte) (cipher.AEAD, error) {
	blk, err := aes.NewCipher(master)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(blk)
}

// wrapDataKey wraps key with the master key and returns the JSON to store.
func wrapDataKey(master MasterKey, tenant string, id DataKeyID, key []byte) ([]byte, error) {
	aead, err := masterAEAD(master.key)
	if err != nil {
		return nil, fmt.Errorf("wrap data key: %w", err)
	}
	nonce := make([]byte, aead.NonceSize())
	_, _ = rand.Read(nonce)
	return json.Marshal(wrappedKey{
		Version:     1,
		Tenant:      tenant,
		DataKeyID:   id.String(),
		MasterKeyID: master.ID,
		Created:     id.Created(),
		Nonce:       nonce,
		Ciphertext:  aead.Seal(nil, nonce, key, wrapAAD(tenant, id, master.ID)),
	})
}

// parseWrappedKey decodes a stored key object and checks that it belongs
// where it was found.
func parseWrappedKey(b []byte, tenant string, id DataKeyID) (wrappedKey, error) {
	var w wrappedKey
	if err := json.Unmarshal(b, &w); err != nil {
		return w, fmt.Errorf("decode data key %s of tenant %q: %w", id, tenant, err)
	}
	if w.Version != 1 {
		return w, fmt.Errorf("data key %s of tenant %q: version %d, this build reads version 1", id, tenant, w.Version)
	}
	if w.Tenant != tenant || w.DataKeyID != id.String() {
		return w, fmt.Errorf("data key object %s of tenant %q names tenant %q and key %s: it was copied from elsewhere", id, tenant, w.Tenant, w.DataKeyID)
	}
	return w, nil
}

// unwrap decrypts the data key with the master key it names.
func (w wrappedKey) unwrap(master MasterKey) ([]byte, error) {
	id, err := ParseDataKeyID(w.DataKeyID)
	if err != nil {
		return nil, err
	}
	aead, err := masterAEAD(master.key)
	if err != nil {
		return nil, err
	}
	if len(w.Nonce) != aead.NonceSize() {
		return nil, fmt.Errorf("data key %s of tenant %q: nonce of %d bytes, want %d", w.DataKeyID, w.Tenant, len(w.Nonce), aead.NonceSize())
	}
	key, err := aead.Open(nil, w.Nonce, w.Ciphertext, wrapAAD(w.Tenant, id, w.MasterKeyID))
	if err != nil {
		return nil, fmt.Errorf("data key %s of tenant %q does not unwrap with master key %s: it was modified or copied", w.DataKeyID, w.Tenant, w.MasterKeyID)
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("data key %s of tenant %q is %d bytes, want 32", w.DataKeyID, w.Tenant, len(key))
	}
	return key, nil
}
