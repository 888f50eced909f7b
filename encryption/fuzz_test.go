package encryption

import (
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/fluxpulse/fluxpulse/bucket"
)

// fuzzMaster and fuzzDataKey are fixed so that checked-in seeds stay valid.
var (
	fuzzMaster  = MasterKey{ID: "fuzz-master", key: bytes.Repeat([]byte{7}, 32)}
	fuzzDataKey = bytes.Repeat([]byte{9}, 32)
	fuzzKeyID   = DataKeyID{0x18, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
)

// FuzzParseHeader checks that the header parser never panics and accepts
// only what marshals back to the same bytes.
func FuzzParseHeader(f *testing.F) {
	h := header{keyID: fuzzKeyID}
	f.Add(h.marshal())
	h.empty = true
	f.Add(append(h.marshal(), 1, 2, 3))
	f.Add([]byte("FLXE"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseHeader(b)
		if err != nil {
			if !errors.Is(err, ErrDecrypt) {
				t.Fatalf("error %v does not wrap ErrDecrypt", err)
			}
			return
		}
		if got := h.marshal(); !bytes.Equal(got, b[:HeaderSize]) {
			t.Fatalf("parsed %x, marshals to %x", b[:HeaderSize], got)
		}
	})
}

// FuzzParseWrappedKey checks that a stored data key either fails to parse
// or unwrap, or unwraps to the one key it was made from.
func FuzzParseWrappedKey(f *testing.F) {
	good, err := wrapDataKey(fuzzMaster, "tenant-1", fuzzKeyID, fuzzDataKey)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"version":1,"tenant":"tenant-1","data_key_id":"18000000000000010203040506070809","master_key_id":"fuzz-master","nonce":"","ciphertext":""}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := parseWrappedKey(b, "tenant-1", fuzzKeyID)
		if err != nil {
			return
		}
		key, err := w.unwrap(fuzzMaster)
		if err == nil && !bytes.Equal(key, fuzzDataKey) {
			t.Fatalf("unwrapped a key %x that was never wrapped", key)
		}
	})
}

// fuzzEnv is an encrypting bucket whose tenant-1 has the fixed data key.
func fuzzEnv(f *testing.F) (raw bucket.Bucket, enc *Bucket) {
	raw, err := bucket.NewFilesystem(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	kf, err := LoadOrCreate(filepath.Join(f.TempDir(), "keys.json"))
	if err != nil {
		f.Fatal(err)
	}
	kr := NewKeyring(raw, kf, KeyringOptions{CacheTTL: time.Hour})
	mk, err := kf.Current()
	if err != nil {
		f.Fatal(err)
	}
	b, err := wrapDataKey(mk, "tenant-1", fuzzKeyID, fuzzDataKey)
	if err != nil {
		f.Fatal(err)
	}
	if err := raw.Upload(f.Context(), keyName("tenant-1", fuzzKeyID), bytes.NewReader(b)); err != nil {
		f.Fatal(err)
	}
	return raw, NewBucket(raw, kr)
}

// FuzzTamper changes a stored object (flips bits at one position, cuts it
// short, or both) and reads a range: the read must fail with ErrDecrypt or
// return exactly the original plaintext of that range, never other bytes.
func FuzzTamper(f *testing.F) {
	raw, enc := fuzzEnv(f)
	plain := bytes.Repeat([]byte("fluxpulse-plaintext-"), 10_000) // 200,000 bytes, 4 packages
	if err := enc.Upload(f.Context(), "tenant-1/obj", bytes.NewReader(plain)); err != nil {
		f.Fatal(err)
	}
	stored, err := readAllOf(raw.Get(f.Context(), "tenant-1/obj"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(uint32(0), byte(0), uint32(len(stored)), uint32(0), int32(-1))
	f.Add(uint32(100), byte(1), uint32(len(stored)), uint32(65530), int32(20))
	f.Fuzz(func(t *testing.T, pos uint32, xor byte, cut uint32, off uint32, length int32) {
		mod := bytes.Clone(stored)
		if int(pos) < len(mod) {
			mod[pos] ^= xor
		}
		mod = mod[:min(int(cut), len(mod))]
		name := "tenant-1/obj"
		if err := raw.Upload(t.Context(), name, bytes.NewReader(mod)); err != nil {
			t.Fatal(err)
		}
		got, err := readAllOf(enc.GetRange(t.Context(), name, int64(off), int64(length)))
		if err != nil {
			if !errors.Is(err, ErrDecrypt) {
				t.Fatalf("error %v does not wrap ErrDecrypt", err)
			}
			return
		}
		want := plain[min(int(off), len(plain)):]
		if length >= 0 {
			want = want[:min(int(length), len(want))]
		}
		if !bytes.HasPrefix(want, got) || (bytes.Equal(mod, stored) && !bytes.Equal(got, want)) {
			t.Fatalf("read %d bytes that are not the plaintext range [%d, +%d)", len(got), off, length)
		}
	})
}

func readAllOf(rc io.ReadCloser, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}
