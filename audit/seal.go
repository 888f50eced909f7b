package audit

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// KeyPurpose is the label the audit log's keys are derived under from the
// master keys (encryption.KeyFile.Derive), so that they are independent of
// every other key.
const KeyPurpose = "fluxpulse audit log entries v1"

// Keys are the keys that seal the targets and details of entries (#12):
// 32 bytes each, named by an ID that a sealed entry records, so that it
// stays readable after the current key changes. Implementations must be
// safe for concurrent use; encryption.DerivedKeys is the one FluxPulse uses.
type Keys interface {
	// Current returns the ID of the key that seals new entries and the key.
	Current() (id string, key []byte, err error)
	// Key returns the key with the given ID, for reading entries.
	Key(id string) ([]byte, error)
}

// Sealed is the encrypted form of an entry's target and details.
type Sealed struct {
	// KeyID names the key that sealed it (with encryption.DerivedKeys, the
	// ID of a master key).
	KeyID string
	// Data is a 16-byte random salt followed by the AES-256-GCM ciphertext
	// and tag. The salt and the key give a key and nonce used for this entry
	// only, so no key ever sees enough nonces to risk a collision.
	Data []byte
}

const (
	sealSaltSize = 16
	sealOverhead = sealSaltSize + 16 // salt and GCM tag
)

// sealer seals entries with one key.
type sealer struct {
	id  string
	key []byte
}

// seal encrypts e's target and canonical details into e.Sealed. The
// additional data binds them to everything else the entry says in clear
// but prev, so that a sealed member moved to another entry does not open.
func (s *sealer) seal(e *Entry, details []byte) error {
	var salt [sealSaltSize]byte
	_, _ = rand.Read(salt[:])
	aead, nonce, err := entryAEAD(s.key, salt[:])
	if err != nil {
		return err
	}
	plain := appendSealedPlaintext(nil, e.Target, details)
	data := append(salt[:], aead.Seal(nil, nonce, plain, sealAAD(e, s.id))...)
	e.Sealed = &Sealed{KeyID: s.id, Data: data}
	return nil
}

// entryAEAD derives the key and nonce of one entry from the sealing key and
// the entry's salt.
func entryAEAD(key, salt []byte) (cipher.AEAD, []byte, error) {
	okm, err := hkdf.Expand(sha256.New, key, "fluxpulse audit entry v1\x00"+string(salt), 32+12)
	if err != nil {
		return nil, nil, fmt.Errorf("derive audit entry key: %w", err)
	}
	blk, err := aes.NewCipher(okm[:32])
	if err != nil {
		return nil, nil, err
	}
	aead, err := cipher.NewGCM(blk)
	return aead, okm[32:], err
}

// sealAAD is the additional data of a sealed entry: its time, seq, actor,
// tenant, action, outcome and key ID, each JSON-encoded so that no two
// entries share it.
func sealAAD(e *Entry, keyID string) []byte {
	b := []byte("fluxpulse audit entry v1\x00")
	b = e.Time.UTC().AppendFormat(b, TimeLayout)
	b = append(b, ' ')
	b = strconv.AppendUint(b, e.Seq, 10)
	for _, s := range [...]string{e.Actor, e.Tenant, e.Action, e.Outcome, keyID} {
		b = appendString(b, s)
	}
	return b
}

// appendSealedPlaintext appends what a sealed member holds:
// {"target":"…"} or {"target":"…","details":{…}}.
func appendSealedPlaintext(b []byte, target string, details []byte) []byte {
	b = append(b, `{"target":`...)
	b = appendString(b, target)
	if len(details) > 0 {
		b = append(b, `,"details":`...)
		b = append(b, details...)
	}
	return append(b, '}')
}

// ErrUnseal is wrapped by the errors Unseal returns for an entry that does
// not decrypt: a wrong key, or a changed entry.
var ErrUnseal = errors.New("audit entry does not decrypt")

// Unseal decrypts the target and details of an entry read from the log
// (ReadEntries) into e.Target and e.Details. e.Sealed stays, so the entry
// still encodes as it is stored. An entry without Sealed is left as it is.
func Unseal(e *Entry, keys Keys) error {
	if e.Sealed == nil {
		return nil
	}
	key, err := keys.Key(e.Sealed.KeyID)
	if err != nil {
		return fmt.Errorf("seq %d: key %s: %w", e.Seq, e.Sealed.KeyID, err)
	}
	d := e.Sealed.Data
	if len(d) < sealOverhead {
		return fmt.Errorf("seq %d: %w: %d bytes sealed, fewer than %d", e.Seq, ErrUnseal, len(d), sealOverhead)
	}
	aead, nonce, err := entryAEAD(key, d[:sealSaltSize])
	if err != nil {
		return err
	}
	plain, err := aead.Open(nil, nonce, d[sealSaltSize:], sealAAD(e, e.Sealed.KeyID))
	if err != nil {
		return fmt.Errorf("seq %d: %w with key %s (wrong key file, or the entry was changed)", e.Seq, ErrUnseal, e.Sealed.KeyID)
	}
	var v struct {
		Target  string         `json:"target"`
		Details map[string]any `json:"details"`
	}
	dec := json.NewDecoder(bytes.NewReader(plain))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("seq %d: %w: decode: %w", e.Seq, ErrUnseal, err)
	}
	e.Target, e.Details = v.Target, v.Details
	return nil
}
