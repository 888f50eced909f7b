package usage

import (
	"cmp"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestHandler(t *testing.T) {
	c := &clock{t: h10.Add(26*time.Hour + 30*time.Minute)} // 12:30 the next day
	r := newTestRecorder(t, t.TempDir(), c, nil)
	r.Add("a", Queries, 1)
	r.Add("b", Queries, 2)
	// Callers authenticate with a header in this test: "admin" sees every
	// tenant, "a" only tenant a, anyone else nothing.
	allowed := func(req *http.Request) ([]string, bool) {
		switch who := req.Header.Get("Who"); who {
		case "admin":
			return nil, true
		case "":
			return nil, false
		default:
			return []string{who}, false
		}
	}
	srv := httptest.NewServer(r.Handler(allowed))
	t.Cleanup(srv.Close)

	for _, tc := range []struct {
		name, who, query string
		method           string
		code             int
		body             string // substring of the answer
		ctype            string
		rows             int
	}{
		{name: "defaults: last 24 hours, json", who: "admin", code: 200, ctype: "application/json", rows: 2},
		{name: "csv", who: "admin", query: "format=csv", code: 200, ctype: "text/csv; charset=utf-8", body: "hour,tenant,partial,"},
		{name: "unix seconds", who: "admin", query: "from=1741082400&to=1741086000", code: 200, rows: 0},
		{name: "rfc 3339 range covering now", who: "admin", query: "from=2025-03-05T11:30:00Z&to=2025-03-05T13:00:00Z&tenant=b", code: 200, rows: 1, body: `"tenant":"b"`},
		{name: "tenants comma-separated and repeated", who: "admin", query: "tenant=a,b&tenant=c", code: 200, rows: 2},
		{name: "restricted caller sees its tenant", who: "a", code: 200, rows: 1, body: `"tenant":"a"`},
		{name: "restricted caller asks for its tenant", who: "a", query: "tenant=a", code: 200, rows: 1},
		{name: "restricted caller asks for another tenant", who: "a", query: "tenant=a,b", code: 403, body: `tenant "b"`},
		{name: "caller without tenants", code: 403, body: "any tenant"},
		{name: "bad from", who: "admin", query: "from=yesterday", code: 400, body: "parameter from"},
		{name: "bad to", who: "admin", query: "to=2025-13-01T00:00:00Z", code: 400, body: "parameter to"},
		{name: "from after to", who: "admin", query: "from=2025-03-05T00:00:00Z&to=2025-03-04T00:00:00Z", code: 400, body: "must be before"},
		{name: "range too long", who: "admin", query: "from=2025-01-01T00:00:00Z&to=2025-02-01T00:00:01Z", code: 400, body: "longer than the maximum"},
		{name: "bad format", who: "admin", query: "format=xml", code: 400, body: "json or csv"},
		{name: "POST", who: "admin", method: http.MethodPost, code: 405},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), cmp.Or(tc.method, http.MethodGet), srv.URL+"?"+tc.query, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Who", tc.who)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			body := string(b)
			if resp.StatusCode != tc.code || !strings.Contains(body, tc.body) {
				t.Fatalf("status %d, body %q; want %d with %q", resp.StatusCode, body, tc.code, tc.body)
			}
			if tc.ctype != "" && resp.Header.Get("Content-Type") != tc.ctype {
				t.Errorf("Content-Type %q, want %q", resp.Header.Get("Content-Type"), tc.ctype)
			}
			if tc.code == 200 && tc.ctype != "text/csv; charset=utf-8" {
				var rows []Row
				if err := json.Unmarshal(b, &rows); err != nil {
					t.Fatalf("answer is not a JSON array of rows: %v", err)
				}
				if len(rows) != tc.rows {
					t.Fatalf("%d rows, want %d: %s", len(rows), tc.rows, body)
				}
			}
		})
	}
}
