package integration

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/fluxpulse/fluxpulse/testbin"
)

// cli runs a fluxpulse subcommand against the server's data directory.
func (f *fluxPulse) cli(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(f.bin, append(args, "-data.dir", f.dir)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("fluxpulse %v: %v\n%s", args, err, out)
	}
	return string(out)
}

var tokenRE = regexp.MustCompile(`fp_[0-9a-f]{12}_[A-Za-z0-9_-]{43}`)

// newToken creates a token with the CLI and returns it and its ID.
func (f *fluxPulse) newToken(t *testing.T, args ...string) (token, id string) {
	t.Helper()
	out := f.cli(t, append([]string{"token", "create"}, args...)...)
	token = tokenRE.FindString(out)
	if token == "" {
		t.Fatalf("no token in %q", out)
	}
	return token, token[3:15]
}

// request is one HTTP call with credentials.
type request struct {
	method, path string
	body         []byte
	contentType  string
}

func (f *fluxPulse) do(t *testing.T, r request, auth func(*http.Request), orgID string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(r.method, f.url()+r.path, bytes.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
		req.Header.Set("Content-Encoding", "snappy")
	}
	if auth != nil {
		auth(req)
	}
	if orgID != "" {
		req.Header.Set("X-Scope-OrgID", orgID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func pushBody(t *testing.T, metric string) []byte {
	t.Helper()
	b, err := proto.Marshal(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: metric}},
		Samples: []prompb.Sample{{Value: 1, Timestamp: time.Now().UnixMilli()}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return snappy.Encode(nil, b)
}

func remoteReadBody(t *testing.T) []byte {
	t.Helper()
	b, err := proto.Marshal(&prompb.ReadRequest{Queries: []*prompb.Query{{
		StartTimestampMs: 0, EndTimestampMs: time.Now().Add(time.Hour).UnixMilli(),
		Matchers: []*prompb.LabelMatcher{{Type: prompb.LabelMatcher_RE, Name: "__name__", Value: ".+"}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return snappy.Encode(nil, b)
}

// TestAuthenticationMatrix runs every credential case against every kind of
// endpoint of a real server in token mode, and checks both the status and
// that nothing leaked or was written.
func TestAuthenticationMatrix(t *testing.T) {
	fp := startFluxPulse(t, "-runtime-config.reload-period=100ms")
	if !fp.proc.Contains("First start: created tenant") {
		t.Fatal("first start did not announce its tenant and token")
	}
	fp.cli(t, "tenant", "create", "-tenant", "a")
	fp.cli(t, "tenant", "create", "-tenant", "b")
	rw, _ := fp.newToken(t, "-tenant", "a", "-scopes", "write,read")
	ro, _ := fp.newToken(t, "-tenant", "a", "-scopes", "read")
	expired, _ := fp.newToken(t, "-tenant", "a", "-scopes", "write,read", "-expires", "1ns")
	fed, _ := fp.newToken(t, "-tenant", "a", "-scopes", "read", "-tenants", "b")
	other, _ := fp.newToken(t, "-tenant", "b", "-scopes", "write,read")
	revoked, revokedID := fp.newToken(t, "-tenant", "a", "-scopes", "write,read")
	// Each tenant has a secret series; reading the other's must never show it.
	bearer := func(tok string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
	}
	basic := func(user, tok string) func(*http.Request) { return func(r *http.Request) { r.SetBasicAuth(user, tok) } }
	testbin.Eventually(t, 10*time.Second, func() error { // the server reloads the runtime file
		if s, b := fp.do(t, request{"POST", "/api/v1/push", pushBody(t, "secret_of_a"), "application/x-protobuf"}, bearer(rw), ""); s != 204 {
			return fmt.Errorf("push as a: %d %s", s, b)
		}
		if s, b := fp.do(t, request{"POST", "/api/v1/push", pushBody(t, "secret_of_b"), "application/x-protobuf"}, bearer(other), ""); s != 204 {
			return fmt.Errorf("push as b: %d %s", s, b)
		}
		return nil
	})
	fp.cli(t, "token", "revoke", "-id", revokedID)
	testbin.Eventually(t, 10*time.Second, func() error {
		if s, _ := fp.do(t, request{"GET", "/prometheus/api/v1/labels", nil, ""}, bearer(revoked), ""); s != 401 {
			return fmt.Errorf("revoked token still accepted: %d", s)
		}
		return nil
	})

	read := func(path string) request { return request{"GET", "/prometheus" + path, nil, ""} }
	endpoints := map[string]request{
		"query":          read("/api/v1/query?query=" + url.QueryEscape(`{__name__=~"secret.*"}`)),
		"series":         read("/api/v1/series?match[]=" + url.QueryEscape(`{__name__=~"secret.*"}`)),
		"labels":         read("/api/v1/label/__name__/values"),
		"metadata":       read("/api/v1/metadata"),
		"exemplars":      read("/api/v1/query_exemplars?query=" + url.QueryEscape(`{__name__=~"secret.*"}`)),
		"remote read":    {"POST", "/prometheus/api/v1/read", remoteReadBody(t), "application/x-protobuf"},
		"push":           {"POST", "/api/v1/push", nil, "application/x-protobuf"},
		"write (prom)":   {"POST", "/api/v1/write", nil, "application/x-protobuf"},
		"query (api/v1)": {"GET", "/api/v1/query?query=" + url.QueryEscape(`{__name__=~"secret.*"}`), nil, ""},
	}
	type cred struct {
		name   string
		auth   func(*http.Request)
		orgID  string
		read   int // status for read endpoints
		write  int // status for push endpoints
		sees   string
		writes string // tenant a successful push lands in
	}
	creds := []cred{
		{"no credentials", nil, "", 401, 401, "", ""},
		{"only X-Scope-OrgID", nil, "a", 401, 401, "", ""},
		{"wrong token", bearer("fp_0123456789ab_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), "", 401, 401, "", ""},
		{"expired token", bearer(expired), "", 401, 401, "", ""},
		{"revoked token", bearer(revoked), "", 401, 401, "", ""},
		{"token of another tenant", bearer(other), "a", 403, 403, "", ""},
		{"basic auth, other tenant as user", basic("b", rw), "", 403, 403, "", ""},
		{"read-only token", bearer(ro), "", 200, 403, "secret_of_a", ""},
		{"read-write bearer", bearer(rw), "", 200, 204, "secret_of_a", "a"},
		{"read-write basic", basic("a", rw), "", 200, 204, "secret_of_a", "a"},
		{"federation allowed", bearer(fed), "a|b", 200, 403, "secret_of_b", ""},
		{"federation denied", bearer(rw), "a|b", 403, 403, "", ""},
	}
	for _, c := range creds {
		for name, ep := range endpoints {
			t.Run(c.name+"/"+name, func(t *testing.T) {
				want := c.read
				isPush := ep.path == "/api/v1/push" || ep.path == "/api/v1/write"
				metric := "m_" + strings.NewReplacer(" ", "_", ",", "", "-", "_", "(", "", ")", "").Replace(c.name+"_"+name)
				if isPush {
					want = c.write
					ep.body = pushBody(t, metric)
				}
				status, body := fp.do(t, ep, c.auth, c.orgID)
				if status != want {
					t.Fatalf("status %d, want %d: %s", status, want, body)
				}
				if status >= 400 {
					for _, secret := range []string{"secret_of_a", "secret_of_b"} {
						if strings.Contains(body, secret) {
							t.Fatalf("refused request leaked %s: %s", secret, body)
						}
					}
				}
				if !isPush && status == 200 && c.sees != "" && name != "metadata" && name != "exemplars" && name != "remote read" && !strings.Contains(body, c.sees) {
					t.Fatalf("allowed read does not show %s: %s", c.sees, body)
				}
				if !isPush && c.sees == "secret_of_a" && strings.Contains(body, "secret_of_b") {
					t.Fatalf("tenant a's read shows tenant b's data: %s", body)
				}
				if isPush {
					// Whatever the answer, the sample exists only where it was allowed.
					for _, tn := range []struct{ tenant, tok string }{{"a", rw}, {"b", other}} {
						_, got := fp.do(t, read("/api/v1/series?match[]="+metric), bearer(tn.tok), "")
						if stored := strings.Contains(got, metric); stored != (c.writes == tn.tenant) {
							t.Fatalf("push stored in tenant %s: %v, want %v", tn.tenant, stored, c.writes == tn.tenant)
						}
					}
				}
			})
		}
	}
}

// TestRulesAPIAuthentication checks the scopes of the ruler's endpoints:
// the configuration API needs the rules scope, the Prometheus rules and
// alerts endpoints the read scope, and a tenant's rules stay its own.
func TestRulesAPIAuthentication(t *testing.T) {
	fp := startFluxPulse(t, "-runtime-config.reload-period=100ms")
	fp.cli(t, "tenant", "create", "-tenant", "a")
	fp.cli(t, "tenant", "create", "-tenant", "b")
	rules, _ := fp.newToken(t, "-tenant", "a", "-scopes", "rules,read")
	reader, _ := fp.newToken(t, "-tenant", "a", "-scopes", "read")
	other, _ := fp.newToken(t, "-tenant", "b", "-scopes", "rules,read")
	bearer := func(tok string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
	}
	group := []byte("name: g1\nrules:\n  - record: job:up:sum\n    expr: sum(up)\n")
	testbin.Eventually(t, 10*time.Second, func() error {
		if s, b := fp.do(t, request{"POST", "/prometheus/config/v1/rules/ns", group, ""}, bearer(rules), ""); s != http.StatusAccepted {
			return errorf("create rule group: %d %s", s, b)
		}
		return nil
	})
	for _, tc := range []struct {
		name   string
		req    request
		auth   func(*http.Request)
		status int
		sees   bool // the body shows tenant a's group
	}{
		{"config API with rules scope", request{"GET", "/prometheus/config/v1/rules", nil, ""}, bearer(rules), 200, true},
		{"config API without rules scope", request{"GET", "/prometheus/config/v1/rules", nil, ""}, bearer(reader), 403, false},
		{"config API without credentials", request{"GET", "/prometheus/config/v1/rules", nil, ""}, nil, 401, false},
		{"config API of another tenant", request{"GET", "/prometheus/config/v1/rules", nil, ""}, bearer(other), 200, false},
		{"delete without rules scope", request{"DELETE", "/prometheus/config/v1/rules/ns", nil, ""}, bearer(reader), 403, false},
		{"rules with read scope", request{"GET", "/prometheus/api/v1/rules", nil, ""}, bearer(reader), 200, true},
		{"rules of another tenant", request{"GET", "/prometheus/api/v1/rules", nil, ""}, bearer(other), 200, false},
		{"alerts without credentials", request{"GET", "/prometheus/api/v1/alerts", nil, ""}, nil, 401, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testbin.Eventually(t, 10*time.Second, func() error {
				status, body := fp.do(t, tc.req, tc.auth, "")
				if status != tc.status || strings.Contains(body, "g1") != tc.sees {
					return errorf("%d %s, want %d, showing tenant a's group: %v", status, body, tc.status, tc.sees)
				}
				return nil
			})
		})
	}
	// The group is still there: the refused delete changed nothing.
	if _, body := fp.do(t, request{"GET", "/prometheus/config/v1/rules/ns", nil, ""}, bearer(rules), ""); !strings.Contains(body, "g1") {
		t.Fatalf("group gone after a refused delete: %s", body)
	}
}
