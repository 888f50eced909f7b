package frontend

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestForwarderSkipsDeadQuerier: requests go to each querier in turn with
// the client's credentials, a querier that does not answer is skipped, and
// a form body is sent again to the next.
func TestForwarderSkipsDeadQuerier(t *testing.T) {
	var got []string
	live := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		got = append(got, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization")+" "+r.Form.Get("query"))
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"success"}`)
	}))
	t.Cleanup(live.Close)
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close() // its address now refuses connections
	fwd, err := NewForwarder([]string{dead.URL, live.URL + "/"}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		r := httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/prometheus/api/v1/query_range", nil)
		r.Header.Set("Authorization", "Bearer t0k")
		r = formRequest(r, url.Values{"query": {"up"}})
		w := httptest.NewRecorder()
		fwd.ServeHTTP(w, r)
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "success") {
			t.Fatalf("%d %s", w.Code, w.Body.String())
		}
	}
	if len(got) != 3 || got[0] != "POST /prometheus/api/v1/query_range Bearer t0k up" {
		t.Fatalf("the querier got %q", got)
	}
	if _, err := NewForwarder([]string{"ftp://x"}, time.Second); err == nil {
		t.Error("a non-HTTP URL was accepted")
	}
}
