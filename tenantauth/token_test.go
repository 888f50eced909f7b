package tenantauth

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

type issued struct {
	token string
	entry Token
}

func issue(t *testing.T, scopes []Scope, expires time.Time, tenants ...string) issued {
	t.Helper()
	tok, id, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	return issued{tok, Token{ID: id, Hash: HashToken(tok), Scopes: scopes, Expires: expires, Tenants: tenants}}
}

func TestTokenShape(t *testing.T) {
	tok, id, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	if tokenID(tok) != id || !strings.HasPrefix(tok, "fp_") || len(tok) < 50 {
		t.Fatalf("token %q, id %q", tok, id)
	}
	for _, bad := range []string{"", "fp_", "fp_short_x", "xx_0123456789ab_secret", "fp_0123456789ab"} {
		if tokenID(bad) != "" {
			t.Errorf("tokenID(%q) = %q", bad, tokenID(bad))
		}
	}
	if !strings.HasPrefix(HashToken(tok), "sha256:") || strings.Contains(HashToken(tok), tok) {
		t.Fatal("hash reveals the token or lacks its algorithm")
	}
}

// TestTokenMatrix is the authentication matrix at the unit level; the
// integration tests run it again over every HTTP endpoint of a real server.
func TestTokenMatrix(t *testing.T) {
	now := time.Now()
	rw := issue(t, []Scope{ScopeWrite, ScopeRead}, time.Time{})
	ro := issue(t, []Scope{ScopeRead}, time.Time{})
	expired := issue(t, []Scope{ScopeWrite, ScopeRead}, now.Add(-time.Minute))
	fed := issue(t, []Scope{ScopeRead}, time.Time{}, "b")
	other := issue(t, []Scope{ScopeWrite, ScopeRead}, time.Time{})
	revoked := issue(t, []Scope{ScopeWrite, ScopeRead}, time.Time{})
	admin := issue(t, []Scope{ScopeAdmin}, time.Time{})
	alerts := issue(t, []Scope{ScopeAlerts}, time.Time{})
	deleter := issue(t, []Scope{ScopeDelete}, time.Time{})
	tenantAdmin := issue(t, []Scope{ScopeAdmin}, time.Time{})

	a, err := New(Config{Mode: "token"})
	if err != nil {
		t.Fatal(err)
	}
	var failures []Failure
	a.OnFailure(func(_ *http.Request, f Failure) { failures = append(failures, f) })
	creds := Credentials{Tenants: map[string][]Token{
		"a": {rw.entry, ro.entry, deleter.entry, tenantAdmin.entry, expired.entry, fed.entry, revoked.entry},
		"b": {other.entry, alerts.entry},
	}, Admins: []Token{admin.entry}}
	if err := a.SetCredentials(creds); err != nil {
		t.Fatal(err)
	}
	creds.Tenants["a"] = creds.Tenants["a"][:6] // revoke the last one
	if err := a.SetCredentials(creds); err != nil {
		t.Fatal(err)
	}

	bearer := func(tok string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
	}
	basic := func(user, tok string) func(*http.Request) {
		return func(r *http.Request) { r.SetBasicAuth(user, tok) }
	}
	authz := func(v string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("Authorization", v) }
	}
	for _, tc := range []struct {
		name    string
		auth    func(*http.Request)
		orgID   string
		scope   Scope
		status  int
		tenants string
		msg     string
	}{
		{"no credentials", nil, "", ScopeRead, 401, "", "no credentials"},
		{"org id alone is not enough", nil, "a", ScopeRead, 401, "", "no credentials"},
		{"wrong token", bearer("fp_0123456789ab_nope"), "", ScopeRead, 401, "", "unknown or revoked"},
		{"garbage token", bearer("hello"), "", ScopeRead, 401, "", "unknown or revoked"},
		{"secret of another token", bearer("fp_" + rw.entry.ID + "_" + strings.SplitN(ro.token, "_", 3)[2]), "", ScopeRead, 401, "", "unknown or revoked"},
		{"expired", bearer(expired.token), "", ScopeRead, 401, "", "expired"},
		{"revoked", bearer(revoked.token), "", ScopeRead, 401, "", "unknown or revoked"},
		{"bearer write", bearer(rw.token), "", ScopeWrite, 200, "a", ""},
		{"basic write", basic("a", rw.token), "", ScopeWrite, 200, "a", ""},
		// RFC 7235 section 2.1: the scheme is case-insensitive and one or more spaces follow it (#12).
		{"lowercase bearer", authz("bearer " + rw.token), "", ScopeWrite, 200, "a", ""},
		{"uppercase bearer", authz("BEARER " + rw.token), "", ScopeWrite, 200, "a", ""},
		{"bearer, two spaces", authz("Bearer  " + rw.token), "", ScopeWrite, 200, "a", ""},
		{"lowercase basic", authz("basic " + base64.StdEncoding.EncodeToString([]byte("a:"+rw.token))), "", ScopeWrite, 200, "a", ""},
		{"bearer without token", authz("bearer "), "", ScopeRead, 401, "", "no credentials"},
		{"bearer glued to token", authz("Bearer" + rw.token), "", ScopeRead, 401, "", "no credentials"},
		{"other scheme", authz("Token " + rw.token), "", ScopeRead, 401, "", "no credentials"},
		{"basic user of another tenant", basic("b", rw.token), "", ScopeWrite, 403, "", `may not access tenant "b"`},
		{"org id of another tenant", bearer(rw.token), "b", ScopeRead, 403, "", `may not access tenant "b"`},
		{"read-only pushing", bearer(ro.token), "", ScopeWrite, 403, "", "does not have the write scope"},
		{"rules scope missing", bearer(rw.token), "", ScopeRules, 403, "", "rules scope"},
		{"federation allowed", bearer(fed.token), "a|b", ScopeRead, 200, "a,b", ""},
		{"federation denied", bearer(rw.token), "a|b", ScopeRead, 403, "", `may not access tenant "b"`},
		{"federated write", bearer(fed.token), "a|b", ScopeWrite, 403, "", "write scope"},
		{"malformed org id", bearer(rw.token), "../x", ScopeRead, 400, "", "invalid X-Scope-OrgID"},
		{"operator token names no tenant for admin calls", bearer(admin.token), "", ScopeAdmin, 200, "", ""},
		{"operator token must name a tenant to read", bearer(admin.token), "", ScopeRead, 400, "", "operator token must name"},
		{"admin any tenant", bearer(admin.token), "b", ScopeAdmin, 200, "b", ""},
		{"admin reads too", bearer(admin.token), "a|b", ScopeRead, 200, "a,b", ""},
		// The tenant's Alertmanager takes the alerts scope or admin (#16).
		{"alerts scope", bearer(alerts.token), "", ScopeAlerts, 200, "b", ""},
		{"alerts scope is not rules", bearer(alerts.token), "", ScopeRules, 403, "", "rules scope"},
		{"alerts scope missing", bearer(rw.token), "", ScopeAlerts, 403, "", "does not have the alerts scope"},
		{"tenant admin has alerts", bearer(tenantAdmin.token), "", ScopeAlerts, 200, "a", ""},
		{"alerts of another tenant", bearer(alerts.token), "a", ScopeAlerts, 403, "", `may not access tenant "a"`},
		// #14: series deletion needs the delete scope, or admin.
		{"delete scope deletes", bearer(deleter.token), "", ScopeDelete, 200, "a", ""},
		{"delete scope does not read", bearer(deleter.token), "", ScopeRead, 403, "", "read scope"},
		{"delete scope is not admin", bearer(deleter.token), "", ScopeAdmin, 403, "", "admin scope"},
		{"a tenant's admin token deletes", bearer(tenantAdmin.token), "", ScopeDelete, 200, "a", ""},
		{"read-write token does not delete", bearer(rw.token), "", ScopeDelete, 403, "", "delete scope"},
		{"operator token deletes for a tenant", bearer(admin.token), "b", ScopeDelete, 200, "b", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			failures = nil
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			if tc.auth != nil {
				tc.auth(r)
			}
			if tc.orgID != "" {
				r.Header.Set(OrgIDHeader, tc.orgID)
			}
			var got []string
			w := httptest.NewRecorder()
			a.Middleware(tc.scope, PlainError, http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
				got, _ = Tenants(r.Context())
				if act := Actor(r.Context()); len(act) != 12 {
					t.Errorf("actor %q is not a token ID", act)
				}
			})).ServeHTTP(w, r)
			if w.Code != tc.status || strings.Join(got, ",") != tc.tenants || !strings.Contains(w.Body.String(), tc.msg) {
				t.Fatalf("%d %v %q, want %d %q mentioning %q", w.Code, got, w.Body, tc.status, tc.tenants, tc.msg)
			}
			if tc.status != 200 && (len(failures) != 1 || failures[0].Status != tc.status) {
				t.Fatalf("failure hook saw %v", failures)
			}
			if w.Code == 401 && w.Header().Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			for _, f := range failures {
				for _, tok := range []string{rw.token, ro.token, expired.token, fed.token, revoked.token, admin.token} {
					if strings.Contains(f.Reason+f.Actor, strings.SplitN(tok, "_", 3)[2]) {
						t.Fatal("a failure record holds a secret")
					}
				}
			}
		})
	}
}

func TestCredentialsValidate(t *testing.T) {
	good := issue(t, []Scope{ScopeRead}, time.Time{})
	for _, tc := range []struct {
		name string
		c    Credentials
	}{
		{"bad tenant", Credentials{Tenants: map[string][]Token{"../x": {good.entry}}}},
		{"duplicate id", Credentials{Tenants: map[string][]Token{"a": {good.entry}, "b": {good.entry}}}},
		{"bad hash", Credentials{Tenants: map[string][]Token{"a": {{ID: good.entry.ID, Hash: "md5:00", Scopes: []Scope{ScopeRead}}}}}},
		{"no scopes", Credentials{Tenants: map[string][]Token{"a": {{ID: good.entry.ID, Hash: good.entry.Hash}}}}},
		{"unknown scope", Credentials{Tenants: map[string][]Token{"a": {{ID: good.entry.ID, Hash: good.entry.Hash, Scopes: []Scope{"root"}}}}}},
	} {
		if err := tc.c.Validate(); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}
