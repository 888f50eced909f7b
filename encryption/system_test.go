package encryption

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

	"github.com/fluxpulse/fluxpulse/bucket"
)

// fixedSystemKeys are one fixed key, for tests and fuzzing.
type fixedSystemKeys struct{}

func (fixedSystemKeys) Current() (string, []byte, error) {
	return "k1", bytes.Repeat([]byte{5}, 32), nil
}
func (fixedSystemKeys) Key(id string) ([]byte, error) {
	if id != "k1" {
		return nil, ErrKeyNotFound
	}
	return bytes.Repeat([]byte{5}, 32), nil
}

func TestSystemStore(t *testing.T) {
	raw, err := bucket.NewFilesystem(filepath.Join(t.TempDir(), "b"))
	if err != nil {
		t.Fatal(err)
	}
	kf, err := LoadOrCreate(filepath.Join(t.TempDir(), "keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	s := NewSystemStore(raw, "runtime", kf.Derive("test purpose"))
	ctx := t.Context()
	if err := s.Put(ctx, "changes/1", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if b, err := s.Get(ctx, "changes/1"); err != nil || string(b) != "hello" {
		t.Fatalf("get: %q, %v", b, err)
	}
	var names []string
	if err := s.List(ctx, "changes", func(n string) error { names = append(names, n); return nil }); err != nil || len(names) != 1 || names[0] != "changes/1" {
		t.Fatalf("list: %v, %v", names, err)
	}
	stored, _ := bucket.NewFilesystem(filepath.Join(t.TempDir(), "b2"))
	for _, tc := range []struct {
		name   string
		change func([]byte) []byte
	}{
		{"byte changed", func(b []byte) []byte { b[len(b)-1] ^= 1; return b }},
		{"cut", func(b []byte) []byte { return b[:10] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc, _ := raw.Get(ctx, s.Name("changes/1"))
			var buf bytes.Buffer
			_, _ = buf.ReadFrom(rc)
			rc.Close()
			if _, err := OpenSystem(tc.change(buf.Bytes()), s.Name("changes/1"), kf.Derive("test purpose")); !errors.Is(err, ErrDecrypt) {
				t.Fatalf("error %v, want ErrDecrypt", err)
			}
		})
	}
	// Moved to another name, or opened for another purpose: refused.
	rc, _ := raw.Get(ctx, s.Name("changes/1"))
	_ = stored.Upload(ctx, s.Name("changes/2"), rc)
	rc.Close()
	if _, err := NewSystemStore(stored, "runtime", kf.Derive("test purpose")).Get(ctx, "changes/2"); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("moved object: %v, want ErrDecrypt", err)
	}
	if _, err := NewSystemStore(raw, "runtime", kf.Derive("other")).Get(ctx, "changes/1"); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("other purpose: %v, want ErrDecrypt", err)
	}
}

// FuzzOpenSystem checks that opening never panics and that only what was
// sealed under the name opens.
func FuzzOpenSystem(f *testing.F) {
	sealed, err := sealSystem(bytes.Repeat([]byte{5}, 32), "k1", "@fluxpulse/x/y", []byte("plain"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed)
	f.Add([]byte(systemMagic))
	f.Add([]byte("FPS\x01\x02k1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := OpenSystem(b, "@fluxpulse/x/y", fixedSystemKeys{})
		if err == nil && !bytes.Equal(p, []byte("plain")) {
			t.Fatalf("opened to %q", p)
		}
	})
}
