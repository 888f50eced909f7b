// Package encryption encrypts everything FluxPulse stores in object
// storage, with envelope encryption and per-tenant keys, while keeping
// objects readable by range.
//
// Keys:
//   - Master keys (key-encryption keys) live in a JSON key file (KeyFile),
//     mode 0600, created with one key on first start. One is current; Rotate
//     adds a new current key and keeps the old ones.
//   - Each tenant has one or more 32-byte data keys, wrapped by a master key
//     (AES-256-GCM, with the tenant, the data key ID and the master key ID as
//     additional data) and stored in the bucket at
//     <tenant>/keys/<data key ID>. New objects use the newest; older ones
//     stay readable. The Keyring caches unwrapped keys for a TTL and rereads
//     a tenant's keys (or the key file) on the first miss of an unknown ID,
//     so it notices rotations and deletions by other processes.
//   - Rotating the master key re-wraps every data key (RewrapAll); no object
//     data is rewritten. Rotating a tenant's key adds a data key.
//   - DeleteTenantKeys crypto-shreds a tenant: tombstones
//     <tenant>/keys/<ID>.deleted replace the keys, and every read of the
//     tenant's objects then fails with ErrTenantKeysDeleted.
//
// Objects: Bucket wraps a bucket.Bucket. An object <tenant>/<path> is
// stored as a fixed 88-byte header (magic, version, data key ID, random
// salt, header MAC; see format.go) followed by the plaintext in the DARE
// 2.0 format of github.com/minio/sio (AES-256-GCM, 64 KiB packages). The
// object's keys are derived with HKDF-SHA256 from the data key, the salt
// and the full object name, so an object copied to another name or tenant
// fails to decrypt (ErrDecrypt), as does any modified byte.
//
// Invariants:
//   - Nothing but ErrDecrypt, ErrTenantKeysDeleted or an I/O error comes
//     out of a read that cannot be authenticated: never wrong plaintext.
//     Reads stream; a failure may come after some authenticated bytes.
//   - A ranged read fetches the header and only the packages covering the
//     range, so its cost does not grow with the object's size.
//   - Attributes reports the plaintext size, computed from the stored size.
//   - Plaintext and unwrapped keys are never logged.
//
// Limits: truncating an object at a package boundary is detected by reads
// that reach the cut, but a read starting past the cut sees an empty
// range, as for any range past the end.
package encryption
