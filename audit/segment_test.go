package audit

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/encryption"
)

// shipSegments ships a log of 12 entries in three segments of instance q-0
// and returns the store and the raw bucket under it.
func shipSegments(t *testing.T) (*encryption.SystemStore, bucket.Bucket) {
	t.Helper()
	dir := t.TempDir()
	kf, err := encryption.LoadOrCreate(filepath.Join(dir, "keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := bucket.NewFilesystem(filepath.Join(dir, "bucket"))
	if err != nil {
		t.Fatal(err)
	}
	store := encryption.NewSystemStore(raw, "audit", kf.Derive("test audit"))
	path := filepath.Join(dir, "audit.log")
	l, err := OpenWithOptions(path, Options{Now: fixedClock(testStart)}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	sh := NewShipper(path, store, "q-0", nil)
	for range 3 {
		for range 4 {
			l.Log(Entry{Actor: "tok", Tenant: "team-a", Action: ActionQuery, Target: "up", Outcome: OutcomeSuccess})
		}
		if err := sh.Ship(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if err := sh.Ship(t.Context()); err != nil { // nothing new: no segment
		t.Fatal(err)
	}
	_ = l.Close()
	return store, raw
}

// TestSegmentsVerifyAndNameDamage ships a log in three segments and checks
// that VerifySegments passes, then names the segment that has a changed
// byte, that is missing from the middle, or from the end (#17).
func TestSegmentsVerifyAndNameDamage(t *testing.T) {
	store, raw := shipSegments(t)
	if insts, err := Instances(t.Context(), store); err != nil || len(insts) != 1 || insts[0] != "q-0" {
		t.Fatalf("instances %v, %v", insts, err)
	}
	rep, err := VerifySegments(t.Context(), store, "q-0")
	if err != nil || !rep.OK() || rep.Segments != 3 || rep.Entries != 12 || rep.LastSeq != 12 {
		t.Fatalf("intact chain: %+v, %v", rep, err)
	}
	seg := func(first, last uint64) string { return SegmentName("q-0", first, last) }
	copyObj := func(from, to string) {
		var buf bytes.Buffer
		rc, err := raw.Get(t.Context(), from)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = buf.ReadFrom(rc)
		rc.Close()
		if err := raw.Upload(t.Context(), to, &buf); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name, damaged, want string
		damage              func(obj string) func()
	}{
		{"byte changed", seg(5, 8), "does not open", func(obj string) func() {
			copyObj(obj, obj+".bak")
			var buf bytes.Buffer
			rc, _ := raw.Get(t.Context(), obj)
			_, _ = buf.ReadFrom(rc)
			rc.Close()
			b := buf.Bytes()
			b[len(b)/2] ^= 1
			_ = raw.Upload(t.Context(), obj, bytes.NewReader(b))
			return func() { copyObj(obj+".bak", obj); _ = raw.Delete(t.Context(), obj+".bak") }
		}},
		{"middle deleted", seg(5, 8), "missing", nil},
		{"first deleted", seg(1, 4), "missing", nil},
		{"last deleted", seg(9, 12), "head records seq 12", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj := store.Name(tc.damaged)
			damage := tc.damage
			if damage == nil {
				damage = func(obj string) func() {
					copyObj(obj, obj+".bak")
					_ = raw.Delete(t.Context(), obj)
					return func() { copyObj(obj+".bak", obj); _ = raw.Delete(t.Context(), obj+".bak") }
				}
			}
			restore := damage(obj)
			rep, err := VerifySegments(t.Context(), store, "q-0")
			restore()
			if err != nil || rep.OK() || rep.Segment != tc.damaged || !strings.Contains(rep.Problem, tc.want) {
				t.Fatalf("report %+v, %v; want segment %s named with %q", rep, err, tc.damaged, tc.want)
			}
		})
	}
}
