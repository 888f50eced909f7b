package deletion

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/encryption"
	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// newBucket returns a real encrypted filesystem bucket and its raw view.
func newBucket(t testing.TB) (enc, raw bucket.Bucket, keys *encryption.Keyring) {
	t.Helper()
	dir := t.TempDir()
	raw, err := bucket.NewFilesystem(filepath.Join(dir, "bucket"))
	if err != nil {
		t.Fatal(err)
	}
	e, k, err := encryption.New(encryption.Config{KeyFile: filepath.Join(dir, "keys.json"), KeyCacheTTL: time.Minute}, raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	return e, raw, k
}

type apiEnv struct {
	srv   *httptest.Server
	api   *API
	store *Store
	cache *Cache
	audit []string
	now   time.Time
}

func newAPIEnv(t *testing.T, cancel time.Duration, maxPending int) *apiEnv {
	t.Helper()
	enc, _, _ := newBucket(t)
	lim := testLimits(t)
	lim.MaxDeleteRequests = maxPending
	e := &apiEnv{store: NewStore(enc), now: time.Now()}
	e.cache = NewCache(e.store, time.Hour)
	api, err := NewAPI(Config{CancelPeriod: cancel, ReloadPeriod: time.Hour}, e.store, e.cache, limits.NewOverrides(lim), APIOptions{
		Audit: func(_ *http.Request, action, tenant, outcome string, _ map[string]any) {
			e.audit = append(e.audit, action+" "+tenant+" "+outcome)
		}})
	if err != nil {
		t.Fatal(err)
	}
	api.now = func() time.Time { return e.now }
	e.api = api
	auth, err := tenantauth.New(tenantauth.Config{Mode: "header"})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	api.Register(mux, func(h http.Handler) http.Handler {
		return auth.Middleware(tenantauth.ScopeDelete, tenantauth.PlainError, h)
	})
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

func (e *apiEnv) call(t *testing.T, method, path, tenant string, params url.Values) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path+"?"+params.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(tenantauth.OrgIDHeader, tenant)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (e *apiEnv) list(t *testing.T, tenant string) []Request {
	t.Helper()
	resp, body := e.call(t, http.MethodGet, "/prometheus/api/v1/admin/tsdb/delete_series", tenant, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("list: %d %s", resp.StatusCode, body)
	}
	var out []Request
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestAPI is the deletion API of #14: a request is stored (and survives a
// new Store on the same bucket, as after a restart), listed, cancelled
// within its cancel period and not after, and every refusal has its
// status.
func TestAPI(t *testing.T) {
	e := newAPIEnv(t, time.Hour, 2)
	resp, body := e.call(t, http.MethodPost, "/api/v1/admin/tsdb/delete_series", "t",
		url.Values{"match[]": {`{host="leaky"}`}, "start": {"100"}, "end": {"200"}})
	id := resp.Header.Get(RequestIDHeader)
	if resp.StatusCode != http.StatusNoContent || ValidateID(id) != nil {
		t.Fatalf("create: %d %q %s", resp.StatusCode, id, body)
	}
	got := e.list(t, "t")
	if len(got) != 1 || got[0].ID != id || got[0].State != StatePending || got[0].Start != 100_000 || got[0].End != 200_000 || got[0].CreatedBy != "header" {
		t.Fatalf("list: %+v", got)
	}
	if others := e.list(t, "other"); len(others) != 0 {
		t.Fatalf("another tenant sees %+v", others)
	}
	if hidden, err := e.cache.Hiding(t.Context(), "t"); err != nil || len(hidden) != 1 {
		t.Fatalf("cache: %v %v", hidden, err)
	}
	again, err := NewStore(e.store.bkt).List(t.Context(), "t")
	if err != nil || len(again) != 1 || again[0].ID != id || len(again[0].Matchers()) != 1 {
		t.Fatalf("after a restart: %+v %v", again, err)
	}

	for _, tc := range []struct {
		name, method, path, tenant string
		params                     url.Values
		status                     int
		want                       string
	}{
		{"no matcher", "POST", "/api/v1/admin/tsdb/delete_series", "t", nil, 400, "no match[]"},
		{"everything", "PUT", "/api/v1/admin/tsdb/delete_series", "t", url.Values{"match[]": {`{__name__=~".+"}`}}, 400, "matches every series"},
		{"no request_id", "POST", "/api/v1/admin/tsdb/cancel_delete_request", "t", nil, 400, "no request_id"},
		{"malformed request_id", "POST", "/api/v1/admin/tsdb/cancel_delete_request", "t", url.Values{"request_id": {"../../x"}}, 400, "not one FluxPulse made"},
		{"unknown request_id", "POST", "/api/v1/admin/tsdb/cancel_delete_request", "t", url.Values{"request_id": {"01HZZZZZZZZZZZZZZZZZZZZZZZ"}}, 404, "no deletion request"},
		{"another tenant's request", "POST", "/api/v1/admin/tsdb/cancel_delete_request", "other", url.Values{"request_id": {id}}, 404, "no deletion request"},
		{"federated", "POST", "/api/v1/admin/tsdb/delete_series", "t|other", url.Values{"match[]": {"up"}}, 400, "only reads may name several"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := e.call(t, tc.method, tc.path, tc.tenant, tc.params)
			if resp.StatusCode != tc.status || !strings.Contains(body, tc.want) {
				t.Fatalf("%d %s, want %d with %q", resp.StatusCode, body, tc.status, tc.want)
			}
		})
	}

	// The limit counts pending requests.
	if resp, body := e.call(t, "POST", "/api/v1/admin/tsdb/delete_series", "t", url.Values{"match[]": {"up"}}); resp.StatusCode != 204 {
		t.Fatalf("second: %d %s", resp.StatusCode, body)
	}
	resp, body = e.call(t, "POST", "/api/v1/admin/tsdb/delete_series", "t", url.Values{"match[]": {"down"}})
	if resp.StatusCode != 429 || !strings.Contains(body, "purger.max-delete-requests") {
		t.Fatalf("third: %d %s", resp.StatusCode, body)
	}

	// Cancel: once, within the cancel period.
	if resp, body := e.call(t, "POST", "/api/v1/admin/tsdb/cancel_delete_request", "t", url.Values{"request_id": {id}}); resp.StatusCode != 204 {
		t.Fatalf("cancel: %d %s", resp.StatusCode, body)
	}
	if got := e.list(t, "t"); got[0].State != StateCancelled || got[0].CancelledBy != "header" {
		t.Fatalf("after cancel: %+v", got[0])
	}
	if hidden, _ := e.cache.Hiding(t.Context(), "t"); len(hidden) != 1 || hidden[0].ID == id {
		t.Fatalf("the cache still hides the cancelled request: %+v", hidden)
	}
	if resp, body := e.call(t, "POST", "/api/v1/admin/tsdb/cancel_delete_request", "t", url.Values{"request_id": {id}}); resp.StatusCode != 400 || !strings.Contains(body, "is cancelled") {
		t.Fatalf("cancel twice: %d %s", resp.StatusCode, body)
	}
	second := e.list(t, "t")[1].ID
	e.now = e.now.Add(2 * time.Hour)
	if resp, body := e.call(t, "POST", "/api/v1/admin/tsdb/cancel_delete_request", "t", url.Values{"request_id": {second}}); resp.StatusCode != 400 || !strings.Contains(body, FlagCancelPeriod) {
		t.Fatalf("cancel after the cancel period: %d %s", resp.StatusCode, body)
	}
	want := []string{"deletion.request t success", "deletion.list t success", "deletion.list other success"}
	if strings.Join(e.audit[:3], ";") != strings.Join(want, ";") || !strings.Contains(strings.Join(e.audit, ";"), "deletion.cancel t success") {
		t.Fatalf("audit entries: %q", e.audit)
	}
}
