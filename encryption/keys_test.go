package encryption_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/bucket/buckettest"
	"github.com/fluxpulse/fluxpulse/encryption"
	"github.com/fluxpulse/fluxpulse/testbin"
)

func TestKeyFilePermissions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "master-keys.json")
	kf, err := encryption.LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("new key file has mode %#o, want 0600", fi.Mode().Perm())
	}
	if di, _ := os.Stat(filepath.Dir(path)); di.Mode().Perm() != 0o700 {
		t.Errorf("new key directory has mode %#o, want 0700", di.Mode().Perm())
	}
	again, err := encryption.LoadOrCreate(path)
	if err != nil || currentID(t, again) != currentID(t, kf) {
		t.Fatalf("reloading gave key %v, %v; want the same key %s", currentID(t, again), err, currentID(t, kf))
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := encryption.LoadOrCreate(path)
		if err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("mode %#o: err %v, want a refusal telling to chmod 600", mode, err)
		}
	}
}

func currentID(t *testing.T, kf *encryption.KeyFile) string {
	t.Helper()
	mk, err := kf.Current()
	if err != nil {
		t.Fatal(err)
	}
	return mk.ID
}

func TestKeyFileInvalid(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, content, wantErr string }{
		{"not json", "{", "decode"},
		{"version", `{"version":2,"current":"a","keys":[]}`, "version 2"},
		{"short key", `{"version":1,"current":"a","keys":[{"id":"a","key":"AAAA"}]}`, "want 32"},
		{"no current", `{"version":1,"current":"b","keys":[{"id":"a","key":"` + strings.Repeat("A", 43) + `="}]}`, "current key"},
		{"duplicate", `{"version":1,"current":"a","keys":[{"id":"a","key":"` + strings.Repeat("A", 43) + `="},{"id":"a","key":"` + strings.Repeat("A", 43) + `="}]}`, "twice"},
	} {
		path := filepath.Join(dir, tc.name+".json")
		if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := encryption.LoadKeyFile(path); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: err %v, want one mentioning %q", tc.name, err, tc.wantErr)
		}
	}
	if _, err := encryption.LoadKeyFile(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("loading a missing key file succeeded; only LoadOrCreate creates one")
	}
}

func TestKeyFileCreatedOnceByConcurrentStarts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master-keys.json")
	ids := make([]string, 8)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			kf, err := encryption.LoadOrCreate(path)
			if err != nil {
				t.Error(err)
				return
			}
			mk, err := kf.Current()
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = mk.ID
		})
	}
	wg.Wait()
	if ids[0] == "" || slices.ContainsFunc(ids, func(id string) bool { return id != ids[0] }) {
		t.Fatalf("concurrent starts saw master keys %q; want one key", ids)
	}
}

func TestRotateMaster(t *testing.T) {
	e := newEnv(t, newFilesystem(t))
	server := e.process(t, time.Hour) // caches keys, and the old key file
	for _, tenant := range []string{"tenant-a", "tenant-b"} {
		buckettest.Upload(t, e.enc, tenant+"/obj", []byte("data of "+tenant))
	}
	if _, err := e.kr.RotateTenant(t.Context(), "tenant-b"); err != nil {
		t.Fatal(err)
	}
	buckettest.Upload(t, e.enc, "tenant-b/obj2", []byte("newer data of tenant-b"))
	mk, st, err := e.kr.RotateMaster(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st != (encryption.RewrapStats{Tenants: 2, Rewrapped: 3}) {
		t.Errorf("stats %+v, want 2 tenants and 3 re-wrapped keys", st)
	}
	for _, tenant := range []string{"tenant-a", "tenant-b"} {
		infos, err := e.kr.Keys(t.Context(), tenant)
		if err != nil {
			t.Fatal(err)
		}
		for _, info := range infos {
			if info.MasterKeyID != mk.ID {
				t.Errorf("tenant %s key %s is wrapped by %s, want the new master key %s", tenant, info.ID, info.MasterKeyID, mk.ID)
			}
		}
	}
	if _, st, err = e.kr.RotateMaster(t.Context()); err != nil || st.Rewrapped != 3 {
		t.Fatalf("second rotation: %+v, %v", st, err)
	}
	if st, err := e.kr.RewrapAll(t.Context()); err != nil || st.Rewrapped != 0 || st.Current != 3 {
		t.Fatalf("re-wrapping again: %+v, %v; want nothing to do", st, err)
	}
	// Only the current master key is needed now: drop the others.
	dropOldMasterKeys(t, e.keyFile)
	fresh := e.process(t, time.Hour)
	for _, b := range []bucket.Bucket{e.enc, server, fresh} {
		for name, want := range map[string]string{"tenant-a/obj": "data of tenant-a", "tenant-b/obj": "data of tenant-b", "tenant-b/obj2": "newer data of tenant-b"} {
			if got := string(buckettest.Get(t, b, name)); got != want {
				t.Errorf("%s: got %q, want %q", name, got, want)
			}
		}
	}
}

// dropOldMasterKeys rewrites the key file keeping only its current key.
func dropOldMasterKeys(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	keys := doc["keys"].([]any)
	doc["keys"] = slices.DeleteFunc(keys, func(k any) bool { return k.(map[string]any)["id"] != doc["current"] })
	if b, err = json.Marshal(doc); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// headerKeyID reads the data key ID from a stored object's header.
func headerKeyID(t *testing.T, raw bucket.Bucket, name string) string {
	t.Helper()
	hdr := buckettest.GetRange(t, raw, name, 8, 16)
	id := encryption.DataKeyID(hdr)
	return id.String()
}

func TestRotateTenant(t *testing.T) {
	e := newEnv(t, newFilesystem(t))
	server := e.process(t, 200*time.Millisecond)
	buckettest.Upload(t, server, "tenant-a/old", []byte("old data"))
	buckettest.Upload(t, server, "tenant-c/other", []byte("other tenant"))
	oldKey := headerKeyID(t, e.raw, "tenant-a/old")
	newID, err := e.kr.RotateTenant(t.Context(), "tenant-a") // as the CLI would
	if err != nil {
		t.Fatal(err)
	}
	if newID.String() <= oldKey {
		t.Fatalf("new key %s does not sort after the old key %s", newID, oldKey)
	}
	buckettest.Upload(t, e.enc, "tenant-a/new", []byte("new data"))
	if got := headerKeyID(t, e.raw, "tenant-a/new"); got != newID.String() {
		t.Errorf("new object uses key %s, want the new key %s", got, newID)
	}
	// The server reads the object under the key it has not seen yet at once,
	// and starts writing with it within its cache TTL.
	if got := string(buckettest.Get(t, server, "tenant-a/new")); got != "new data" {
		t.Errorf("server read %q", got)
	}
	testbin.Eventually(t, 10*time.Second, func() error {
		buckettest.Upload(t, server, "tenant-a/from-server", []byte("x"))
		if got := headerKeyID(t, e.raw, "tenant-a/from-server"); got != newID.String() {
			return errors.New("server still writes with key " + got)
		}
		return nil
	})
	for _, b := range []bucket.Bucket{e.enc, server} {
		if got := string(buckettest.Get(t, b, "tenant-a/old")); got != "old data" {
			t.Errorf("old object after rotation: %q", got)
		}
	}
	if got := headerKeyID(t, e.raw, "tenant-c/other"); got == newID.String() || got == oldKey {
		t.Errorf("tenant-c shares a key with tenant-a")
	}
	if _, err := e.kr.RotateTenant(t.Context(), "../x"); err == nil {
		t.Error("rotating an invalid tenant succeeded")
	}
}

func TestDeleteTenantKeys(t *testing.T) {
	e := newEnv(t, newFilesystem(t))
	server := e.process(t, 200*time.Millisecond)
	content := buckettest.Random(5, 300_000)
	buckettest.Upload(t, e.enc, "tenant-a/blocks/01/chunks/000001", content)
	if _, err := e.kr.RotateTenant(t.Context(), "tenant-a"); err != nil {
		t.Fatal(err)
	}
	buckettest.Upload(t, e.enc, "tenant-a/blocks/02/index", []byte("index"))
	buckettest.Upload(t, e.enc, "tenant-b/blocks/01/index", []byte("tenant b"))
	for _, name := range []string{"tenant-a/blocks/01/chunks/000001", "tenant-a/blocks/02/index"} {
		_ = buckettest.Get(t, server, name) // cache the keys in the server
	}
	if err := e.kr.DeleteTenantKeys(t.Context(), "tenant-a"); err != nil {
		t.Fatal(err)
	}
	deleted := func(b bucket.Bucket) error {
		for _, r := range [][3]any{{"tenant-a/blocks/01/chunks/000001", int64(0), int64(-1)}, {"tenant-a/blocks/01/chunks/000001", int64(200_000), int64(10)}, {"tenant-a/blocks/02/index", int64(0), int64(-1)}} {
			_, err := readErr(t, b, r[0].(string), r[1].(int64), r[2].(int64))
			if !errors.Is(err, encryption.ErrTenantKeysDeleted) {
				return errors.New("read of " + r[0].(string) + " did not fail with ErrTenantKeysDeleted: " + errString(err))
			}
		}
		return nil
	}
	if err := deleted(e.enc); err != nil {
		t.Fatal(err) // at once in the deleting process
	}
	testbin.Eventually(t, 10*time.Second, func() error { return deleted(server) }) // within the TTL elsewhere
	if err := deleted(e.process(t, time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := string(buckettest.Get(t, server, "tenant-b/blocks/01/index")); got != "tenant b" {
		t.Errorf("other tenant: %q", got)
	}
	raw := buckettest.List(t, e.raw, "tenant-a/keys", true)
	if len(raw) != 2 || !strings.HasSuffix(raw[0], ".deleted") || !strings.HasSuffix(raw[1], ".deleted") {
		t.Errorf("key directory after deletion holds %q, want two tombstones", raw)
	}
	// Objects are still listed (for the background deletion), keys are not.
	if got := buckettest.List(t, e.enc, "tenant-a", true); len(got) != 2 {
		t.Errorf("objects listed after deletion: %q", got)
	}
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg     encryption.Config
		wantErr string
	}{
		{encryption.Config{KeyFile: "k.json", KeyCacheTTL: time.Minute}, ""},
		{encryption.Config{KeyCacheTTL: time.Minute}, "-encryption.key-file"},
		{encryption.Config{KeyFile: "k.json"}, "-encryption.key-cache-ttl"},
		{encryption.Config{KeyFile: "k.json", KeyCacheTTL: 2 * time.Hour}, "-encryption.key-cache-ttl"},
	} {
		err := tc.cfg.Validate()
		if (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%+v: err %v, want %q", tc.cfg, err, tc.wantErr)
		}
	}
}

// TestDerivedKeys: keys for the audit log (#12) come from the master keys,
// one per master key and purpose, and stay available after a rotation.
func TestDerivedKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master-keys.json")
	kf, err := encryption.LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	audit, other := kf.Derive("audit v1"), kf.Derive("other v1")
	id, key, err := audit.Current()
	if err != nil || id != currentID(t, kf) || len(key) != 32 {
		t.Fatalf("Current() = %q, %d bytes, %v; want the current master key's ID and 32 bytes", id, len(key), err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ Keys []struct{ Key []byte } }
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if string(doc.Keys[0].Key) == string(key) {
		t.Fatal("the derived key is the master key itself")
	}
	if _, k2, _ := other.Current(); string(k2) == string(key) {
		t.Fatal("two purposes derive the same key")
	}
	if _, err := kf.Rotate(); err != nil {
		t.Fatal(err)
	}
	newID, newKey, err := audit.Current()
	if err != nil || newID == id || string(newKey) == string(key) {
		t.Fatalf("after rotation Current() = %q, %v; want a new ID and key", newID, err)
	}
	reloaded, err := encryption.LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if old, err := reloaded.Derive("audit v1").Key(id); err != nil || string(old) != string(key) {
		t.Fatalf("the old key after rotation: %v, equal=%v", err, string(old) == string(key))
	}
	if _, err := audit.Key("20990101-00000000"); err == nil {
		t.Fatal("an unknown master key ID gave a key")
	}
}
