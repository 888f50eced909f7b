package encryption

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// MasterKey is a key-encryption key: it wraps tenants' data keys and never
// touches object data.
type MasterKey struct {
	ID      string
	Created time.Time
	key     []byte
}

// keyFileJSON is the key file's format.
type keyFileJSON struct {
	Version int             `json:"version"`
	Current string          `json:"current"`
	Keys    []masterKeyJSON `json:"keys"`
}

type masterKeyJSON struct {
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	Key     []byte    `json:"key"` // 32 bytes, base64 in JSON
}

// currentReload is how old the loaded key file may be when the current
// key is asked for.
const currentReload = time.Minute

// KeyFile holds the master keys of a key file: one current key, which wraps
// new and re-wrapped data keys, and older keys that still unwrap data keys
// not yet re-wrapped. It is safe for concurrent use. A lookup of a key ID it
// does not know rereads the file, so a server picks up a rotation done by
// another process.
type KeyFile struct {
	path string

	mu         sync.Mutex
	keys       []MasterKey // in file order
	current    string
	lastReload time.Time
}

// LoadOrCreate loads the key file at path, creating it with one new master
// key (mode 0600, in a directory created with mode 0700) if it does not
// exist. Two processes starting at once end up with the same file.
func LoadOrCreate(path string) (*KeyFile, error) {
	kf, err := LoadKeyFile(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return kf, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create directory of key file: %w", err)
	}
	mk, err := newMasterKey()
	if err != nil {
		return nil, err
	}
	doc := keyFileJSON{Version: 1, Current: mk.ID, Keys: []masterKeyJSON{{ID: mk.ID, Created: mk.Created, Key: mk.key}}}
	// A hard link fails if the file appeared meanwhile: the first
	// process to create it wins and the others load its keys.
	if err := writeKeyFile(path, doc, os.Link); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	return LoadKeyFile(path)
}

// LoadKeyFile loads an existing key file. It refuses a file that group or
// others may read or write.
func LoadKeyFile(path string) (*KeyFile, error) {
	kf := &KeyFile{path: path}
	if err := kf.reload(); err != nil {
		return nil, err
	}
	return kf, nil
}

func newMasterKey() (MasterKey, error) {
	now := time.Now().UTC().Truncate(time.Second)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	return MasterKey{ID: now.Format("20060102") + "-" + hex.EncodeToString(suffix), Created: now, key: key}, nil
}

// reload rereads the file. The caller holds kf.mu or owns kf alone.
func (kf *KeyFile) reload() error {
	kf.lastReload = time.Now()
	f, err := os.Open(kf.path)
	if err != nil {
		return fmt.Errorf("open key file (-encryption.key-file): %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat key file: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("key file %s has mode %#o, so other users may read the master keys; it must be readable by its owner only: chmod 600 %s", kf.path, perm, kf.path)
	}
	var doc keyFileJSON
	if err := json.NewDecoder(f).Decode(&doc); err != nil {
		return fmt.Errorf("decode key file %s: %w", kf.path, err)
	}
	keys, err := doc.validate()
	if err != nil {
		return fmt.Errorf("key file %s: %w", kf.path, err)
	}
	kf.keys, kf.current = keys, doc.Current
	return nil
}

func (doc keyFileJSON) validate() ([]MasterKey, error) {
	if doc.Version != 1 {
		return nil, fmt.Errorf("version %d, this build reads version 1", doc.Version)
	}
	keys := make([]MasterKey, 0, len(doc.Keys))
	for _, k := range doc.Keys {
		switch {
		case k.ID == "":
			return nil, errors.New("a key has no ID")
		case len(k.Key) != 32:
			return nil, fmt.Errorf("key %s is %d bytes, want 32", k.ID, len(k.Key))
		case slices.ContainsFunc(keys, func(m MasterKey) bool { return m.ID == k.ID }):
			return nil, fmt.Errorf("key ID %s appears twice", k.ID)
		}
		keys = append(keys, MasterKey{ID: k.ID, Created: k.Created, key: k.Key})
	}
	if !slices.ContainsFunc(keys, func(m MasterKey) bool { return m.ID == doc.Current }) {
		return nil, fmt.Errorf("current key %q is not in the file", doc.Current)
	}
	return keys, nil
}

// Path returns the file's path.
func (kf *KeyFile) Path() string { return kf.path }

// Current returns the master key that wraps data keys. It rereads the file
// if it was last read more than a minute ago, so that a server wraps new
// data keys with the key that a rotation by another process made current.
func (kf *KeyFile) Current() (MasterKey, error) {
	kf.mu.Lock()
	defer kf.mu.Unlock()
	if time.Since(kf.lastReload) >= currentReload {
		if err := kf.reload(); err != nil {
			return MasterKey{}, err
		}
	}
	k, _ := kf.lookup(kf.current)
	return k, nil
}

// IDs returns the IDs of all master keys, oldest first as in the file.
func (kf *KeyFile) IDs() []string {
	kf.mu.Lock()
	defer kf.mu.Unlock()
	ids := make([]string, len(kf.keys))
	for i, k := range kf.keys {
		ids[i] = k.ID
	}
	return ids
}

func (kf *KeyFile) lookup(id string) (MasterKey, bool) {
	i := slices.IndexFunc(kf.keys, func(m MasterKey) bool { return m.ID == id })
	if i < 0 {
		return MasterKey{}, false
	}
	return kf.keys[i], true
}

// Key returns the master key with the given ID, rereading the file first
// if the ID is unknown (once for callers missing at the same time).
func (kf *KeyFile) Key(id string) (MasterKey, error) {
	start := time.Now()
	kf.mu.Lock()
	defer kf.mu.Unlock()
	if k, ok := kf.lookup(id); ok {
		return k, nil
	}
	if kf.lastReload.Before(start) {
		if err := kf.reload(); err != nil {
			return MasterKey{}, err
		}
		if k, ok := kf.lookup(id); ok {
			return k, nil
		}
	}
	return MasterKey{}, fmt.Errorf("master key %s is not in key file %s (-encryption.key-file); was the file replaced by one without it?", id, kf.path)
}

// Rotate adds a new master key to the file and makes it current. It rereads
// the file first so that keys added by another process are kept. Data keys
// wrapped by older master keys stay readable: see Keyring.RewrapAll.
func (kf *KeyFile) Rotate() (MasterKey, error) {
	kf.mu.Lock()
	defer kf.mu.Unlock()
	if err := kf.reload(); err != nil {
		return MasterKey{}, err
	}
	mk, err := newMasterKey()
	if err != nil {
		return MasterKey{}, err
	}
	doc := keyFileJSON{Version: 1, Current: mk.ID}
	for _, k := range append(slices.Clone(kf.keys), mk) {
		doc.Keys = append(doc.Keys, masterKeyJSON{ID: k.ID, Created: k.Created, Key: k.key})
	}
	if err := writeKeyFile(kf.path, doc, os.Rename); err != nil {
		return MasterKey{}, err
	}
	kf.keys = append(kf.keys, mk)
	kf.current = mk.ID
	return mk, nil
}

// writeKeyFile writes doc to a temporary file of mode 0600 next to path,
// syncs it and puts it in place with install (os.Rename to replace,
// os.Link to create only if absent), then syncs the directory.
func writeKeyFile(path string, doc keyFileJSON, install func(oldpath, newpath string) error) (err error) {
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".master-keys-*.tmp") // mode 0600
	if err != nil {
		return fmt.Errorf("write key file: %w", err)
	}
	defer func() {
		if rerr := os.Remove(f.Name()); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
	}()
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write key file: %w", err)
	}
	if err := install(f.Name(), path); err != nil {
		return fmt.Errorf("install key file %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// DerivedKeys are keys for one purpose other than wrapping data keys (the
// audit log's entries), each derived with HKDF-SHA256 from one master key of
// a key file and the purpose label, so they are independent of the master
// key itself and of every other purpose. A derived key is named by the ID of
// its master key: what it protected stays readable after a rotation as long
// as that master key stays in the file. Unlike data keys, derived keys do
// not depend on any tenant, so deleting a tenant's keys does not touch them.
// DerivedKeys is safe for concurrent use.
type DerivedKeys struct {
	kf      *KeyFile
	purpose string
}

// Derive returns the keys derived for purpose (a fixed label, for example
// "fluxpulse audit log entries v1") from the file's master keys.
func (kf *KeyFile) Derive(purpose string) *DerivedKeys {
	return &DerivedKeys{kf: kf, purpose: purpose}
}

// Current returns the key derived from the current master key, and that
// master key's ID.
func (d *DerivedKeys) Current() (string, []byte, error) {
	mk, err := d.kf.Current()
	if err != nil {
		return "", nil, err
	}
	key, err := hkdf.Key(sha256.New, mk.key, nil, d.purpose, 32)
	return mk.ID, key, err
}

// Key returns the key derived from the master key with the given ID.
func (d *DerivedKeys) Key(id string) ([]byte, error) {
	mk, err := d.kf.Key(id)
	if err != nil {
		return nil, err
	}
	return hkdf.Key(sha256.New, mk.key, nil, d.purpose, 32)
}
