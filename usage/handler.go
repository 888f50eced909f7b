package usage

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// MaxReportRange is the longest period one report request may cover: a
// month of the longest kind, so that billing can ask month by month while
// an answer stays bounded (hours × tenants rows).
const MaxReportRange = 31 * 24 * time.Hour

// DefaultReportRange is the period a report covers when the request names
// no start: the last 24 hours.
const DefaultReportRange = 24 * time.Hour

// AllowedFunc tells which tenants the caller of a request may see: all, or
// the listed ones. The server decides it from the caller's credentials.
type AllowedFunc func(*http.Request) (tenants []string, all bool)

// Handler serves usage reports: GET with the query parameters from and to
// (RFC 3339 or unix seconds; defaults: the last 24 hours), format (json,
// the default, or csv) and tenant (repeated or comma-separated; default:
// every tenant the caller may see). allowed limits what a caller sees: a
// tenant it may not see is refused with 403; nil allows nothing. Bad
// parameters get 400 with a message naming the parameter.
func (r *Recorder) Handler(allowed AllowedFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "usage report: method must be GET", http.StatusMethodNotAllowed)
			return
		}
		q, code, err := r.parseQuery(req, allowed)
		if err != nil {
			http.Error(w, "usage report: "+err.Error(), code)
			return
		}
		rows, err := r.ClusterReport(req.Context(), q.from, q.to, q.tenants)
		if err != nil {
			http.Error(w, "usage report: "+err.Error(), http.StatusInternalServerError)
			return
		}
		write, ctype := WriteJSON, "application/json"
		if q.format == "csv" {
			write, ctype = WriteCSV, "text/csv; charset=utf-8"
		}
		w.Header().Set("Content-Type", ctype)
		// Rows cannot fail to encode; an error here is the client going away.
		_ = write(w, rows)
	})
}

// reportQuery is a parsed report request.
type reportQuery struct {
	from, to time.Time
	format   string
	tenants  []string // nil: every tenant
}

// parseQuery reads and checks a report request's parameters and applies
// allowed. It returns the status to answer with when they are refused.
func (r *Recorder) parseQuery(req *http.Request, allowed AllowedFunc) (reportQuery, int, error) {
	v := req.URL.Query()
	q := reportQuery{format: v.Get("format")}
	now := time.Now
	if r != nil {
		now = r.now
	}
	q.to = now()
	if s := v.Get("to"); s != "" {
		t, err := ParseTime(s)
		if err != nil {
			return q, http.StatusBadRequest, fmt.Errorf("parameter to: %w", err)
		}
		q.to = t
	}
	q.from = q.to.Add(-DefaultReportRange)
	if s := v.Get("from"); s != "" {
		t, err := ParseTime(s)
		if err != nil {
			return q, http.StatusBadRequest, fmt.Errorf("parameter from: %w", err)
		}
		q.from = t
	}
	switch {
	case !q.from.Before(q.to):
		return q, http.StatusBadRequest, fmt.Errorf("parameter from (%s) must be before to (%s)", q.from.Format(time.RFC3339), q.to.Format(time.RFC3339))
	case q.to.Sub(q.from) > MaxReportRange:
		return q, http.StatusBadRequest, fmt.Errorf("from %s to %s is longer than the maximum of %d days; ask for one month at a time",
			q.from.Format(time.RFC3339), q.to.Format(time.RFC3339), MaxReportRange/(24*time.Hour))
	}
	switch q.format {
	case "":
		q.format = "json"
	case "json", "csv":
	default:
		return q, http.StatusBadRequest, fmt.Errorf("parameter format must be json or csv, got %q", q.format)
	}
	for _, s := range v["tenant"] {
		for _, t := range strings.Split(s, ",") {
			if t = strings.TrimSpace(t); t != "" {
				q.tenants = append(q.tenants, t)
			}
		}
	}
	if err := restrict(&q, req, allowed); err != nil {
		return q, http.StatusForbidden, err
	}
	return q, http.StatusOK, nil
}

// restrict limits q.tenants to what allowed lets the caller see.
func restrict(q *reportQuery, req *http.Request, allowed AllowedFunc) error {
	var may []string
	all := false
	if allowed != nil {
		may, all = allowed(req)
	}
	switch {
	case all:
		return nil
	case len(may) == 0:
		return errors.New("you may not see the usage of any tenant")
	case q.tenants == nil:
		q.tenants = slices.Clone(may)
		return nil
	}
	for _, t := range q.tenants {
		if !slices.Contains(may, t) {
			return fmt.Errorf("you may not see the usage of tenant %q", t)
		}
	}
	return nil
}
