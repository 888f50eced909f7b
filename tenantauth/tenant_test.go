package tenantauth

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fluxpulse/fluxpulse/bucket"
)

func TestValidateID(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"team-a", true}, {"A_b.c*d'e(f)!", true}, {strings.Repeat("x", 150), true},
		{"", false}, {".", false}, {"..", false}, {strings.Repeat("x", 151), false},
		{"a/b", false}, {"a b", false}, {"a|b", false}, {"ü", false}, {"a\x00", false}, {"../x", false},
	} {
		if err := ValidateID(tc.id); (err == nil) != tc.ok {
			t.Errorf("ValidateID(%q) = %v, want ok=%v", tc.id, err, tc.ok)
		}
	}
}

// TestValidateIDRefusesReserved walks the names the storage layer reserves:
// a tenant named like one passed validation, pushed, and then failed every
// listing of its objects (#12).
func TestValidateIDRefusesReserved(t *testing.T) {
	prefixes := bucket.ReservedPrefixes()
	if len(prefixes) == 0 {
		t.Fatal("bucket reserves no prefix; this test walks nothing")
	}
	for _, p := range prefixes {
		for _, id := range []string{p, p + "x", p + "tenant-1"} {
			if bucket.ValidateName(id+"/blocks") == nil {
				t.Errorf("bucket accepts %q: %q is not what it reserves", id+"/blocks", p)
			}
			if err := ValidateID(id); err == nil || !strings.Contains(err.Error(), "reserved") {
				t.Errorf("ValidateID(%q) = %v, want an error saying the name is reserved", id, err)
			}
		}
	}
}

// FuzzValidateID checks that every tenant ID ValidateID accepts is a valid
// object name segment, so that no future reserved name of the bucket can
// slip through (#12).
func FuzzValidateID(f *testing.F) {
	for _, s := range []string{"team-a", ".fluxpulse-tmp-x", "..", "a.b", strings.Repeat("x", 150)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if ValidateID(id) != nil {
			return
		}
		if err := bucket.ValidateName(id + "/blocks/x"); err != nil {
			t.Fatalf("ValidateID accepts %q, the bucket refuses it: %v", id, err)
		}
	})
}

func TestParseIDs(t *testing.T) {
	ids, err := ParseIDs("b|a|b")
	if err != nil || strings.Join(ids, ",") != "a,b" {
		t.Fatalf("ParseIDs = %v, %v; want sorted unique [a b]", ids, err)
	}
	if _, err := ParseIDs("a||b"); err == nil {
		t.Fatal("empty tenant between separators accepted")
	}
	if _, err := ParseIDs(strings.Repeat("a|", MaxFederatedTenants) + "a"); err == nil {
		t.Fatal("too many tenants accepted")
	}
}

func TestHeaderMiddleware(t *testing.T) {
	a, err := New(Config{Mode: "header"})
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	h := func(scope Scope) http.Handler {
		return a.Middleware(scope, PlainError, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen, _ = Tenants(r.Context())
			if Actor(r.Context()) != "header" {
				t.Errorf("actor %q", Actor(r.Context()))
			}
		}))
	}
	for _, tc := range []struct {
		header string
		scope  Scope
		status int
		want   string
	}{
		{"", ScopeRead, 401, ""},
		{"a", ScopeWrite, 200, "a"},
		{"a|b", ScopeRead, 200, "a,b"},
		{"a|b", ScopeWrite, 400, ""},
		{"../etc", ScopeRead, 400, ""},
	} {
		seen = nil
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if tc.header != "" {
			r.Header.Set(OrgIDHeader, tc.header)
		}
		w := httptest.NewRecorder()
		h(tc.scope).ServeHTTP(w, r)
		if w.Code != tc.status || strings.Join(seen, ",") != tc.want {
			t.Errorf("%q %s: %d %v, want %d %q (%s)", tc.header, tc.scope, w.Code, seen, tc.status, tc.want, w.Body)
		}
	}
	if _, err := New(Config{Mode: "nonsense"}); err == nil {
		t.Error("unknown mode accepted")
	}
}

// TestInBucket lists the tenants of a filesystem bucket: its top-level
// directories with valid IDs, not its top-level files, the storage layer's
// own directories or directories no tenant could be called.
func TestInBucket(t *testing.T) {
	dir := t.TempDir()
	bkt, err := bucket.NewFilesystem(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"team-a/blocks/x", "team-b/rules/y", "top-level-file"} {
		if err := bkt.Upload(t.Context(), name, strings.NewReader("z")); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{bucket.ReservedPrefixes()[0] + "upload", "not a tenant"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	got, err := InBucket(t.Context(), bkt)
	if err != nil || strings.Join(got, ",") != "team-a,team-b" {
		t.Fatalf("InBucket = %q (%v), want team-a and team-b", got, err)
	}
}
