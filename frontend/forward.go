package frontend

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// Forwarder is the queriers' query API over HTTP, for a frontend that runs
// apart from them (-target=query-frontend). It sends each request to the
// next querier in turn, with the client's own credentials (Authorization,
// X-Scope-OrgID), so that the querier authenticates and limits it as it
// would a client's; a querier that cannot be reached is skipped for
// requests whose body can be sent again.
type Forwarder struct {
	targets []*url.URL
	client  *http.Client
	next    atomic.Uint64
}

// NewForwarder returns a Forwarder to the queriers at the base URLs
// (http[s]://host:port, optionally with a path prefix).
func NewForwarder(urls []string, timeout time.Duration) (*Forwarder, error) {
	if len(urls) == 0 {
		return nil, errors.New("-query-frontend.downstream-url names no querier")
	}
	f := &Forwarder{client: &http.Client{Timeout: timeout}}
	for _, s := range urls {
		u, err := url.Parse(strings.TrimSpace(s))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("-query-frontend.downstream-url: %q is not an http[s]://host:port URL", s)
		}
		u.Path = strings.TrimSuffix(u.Path, "/")
		f.targets = append(f.targets, u)
	}
	return f, nil
}

// hopHeaders are not forwarded (RFC 9110, section 7.6.1).
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length"}

// ServeHTTP forwards r and copies the querier's answer.
func (f *Forwarder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	first := f.next.Add(1)
	var lastErr error
	for k := range f.targets {
		if k > 0 && r.GetBody == nil && r.Body != nil && r.Body != http.NoBody {
			break // the body is gone with the failed attempt
		}
		resp, err := f.send(r, f.targets[(first+uint64(k))%uint64(len(f.targets))], k > 0)
		if err != nil {
			if r.Context().Err() != nil {
				writeError(w, http.StatusServiceUnavailable, "unavailable", "the query was cancelled: "+r.Context().Err().Error())
				return
			}
			lastErr = err
			continue
		}
		defer resp.Body.Close()
		for name, vs := range resp.Header {
			w.Header()[name] = vs
		}
		for _, h := range hopHeaders {
			w.Header().Del(h)
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
		return
	}
	writeError(w, http.StatusBadGateway, "unavailable", fmt.Sprintf("no querier answered: %v", lastErr))
}

func (f *Forwarder) send(r *http.Request, target *url.URL, again bool) (*http.Response, error) {
	u := *target
	u.Path += r.URL.Path
	u.RawQuery = r.URL.RawQuery
	body := r.Body
	if again && r.GetBody != nil {
		b, err := r.GetBody()
		if err != nil {
			return nil, err
		}
		body = b
	}
	if body == http.NoBody {
		body = nil
	}
	out, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), body)
	if err != nil {
		return nil, err
	}
	out.Header = r.Header.Clone()
	for _, h := range hopHeaders {
		out.Header.Del(h)
	}
	out.ContentLength = r.ContentLength
	return f.client.Do(out)
}
