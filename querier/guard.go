package querier

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"

	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/queryguard"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// guard applies queryguard to a request of the query API before any
// handler parses PromQL (#12): the query parameter (query, query_range,
// query_exemplars, format_query, parse_query), every match[] (series,
// labels, label values, export), export's after (a series), and the
// matchers of a remote-read body. Parameters are read from the URL and
// from a form-encoded body alike (it parses the form; handlers behind it
// see the parsed form). Every tenant of the request applies its limits. It
// writes the refusal and returns false, or returns true.
func (q *Querier) guard(w http.ResponseWriter, r *http.Request, ids []string) bool {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if strings.HasPrefix(ct, "multipart/") {
		// Handlers would parse a multipart body themselves, after the
		// guard: refuse it instead. No Prometheus client sends one.
		WriteError(w, r, http.StatusUnsupportedMediaType, "multipart bodies are not accepted: send the parameters in the URL or as application/x-www-form-urlencoded")
		return false
	}
	strictest := q.strictestSize(ids)
	// Bound a form-encoded body by the size limit (3 bytes a byte
	// percent-encoded, plus room for the other parameters) instead of the
	// 10 MB ParseForm allows.
	formMax := int64(3*strictest.MaxQueryExpressionSizeBytes + 64<<10)
	if ct == "application/x-www-form-urlencoded" && strictest.MaxQueryExpressionSizeBytes > 0 && r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, formMax)
	}
	if err := r.ParseForm(); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			WriteError(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("the form-encoded body is larger than the %d bytes the limit of %d bytes of PromQL allows (%s)",
				formMax, strictest.MaxQueryExpressionSizeBytes, limits.Source(limits.FlagMaxQueryExprSize)))
			return false
		}
		WriteError(w, r, http.StatusBadRequest, "error parsing form values: "+err.Error())
		return false
	}
	if strings.HasSuffix(r.URL.Path, "/api/v1/read") {
		return q.guardRead(w, r, ids, strictest)
	}
	for _, param := range []string{"query", "match[]", "after"} {
		if vs := r.Form[param]; len(vs) > 0 {
			if err := queryguard.CheckEach(ids, q.limits.Limits, param, vs...); err != nil {
				WriteError(w, r, http.StatusBadRequest, err.Error())
				return false
			}
		}
	}
	return true
}

// strictestSize returns the limits of the tenant with the smallest
// expression size limit (0 is unlimited).
func (q *Querier) strictestSize(ids []string) limits.Limits {
	var s limits.Limits
	for k, id := range ids {
		l := q.limits.Limits(id)
		if k == 0 || l.MaxQueryExpressionSizeBytes > 0 && (s.MaxQueryExpressionSizeBytes <= 0 || l.MaxQueryExpressionSizeBytes < s.MaxQueryExpressionSizeBytes) {
			s = l
		}
	}
	return s
}

// guardRead reads a remote-read body (bounded), checks its matchers with
// every tenant's limits, and gives the body back to the handler.
func (q *Querier) guardRead(w http.ResponseWriter, r *http.Request, ids []string, strictest limits.Limits) bool {
	max := queryguard.MaxReadBody(strictest)
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		WriteError(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("the remote-read body is larger than %d bytes, the most that can decompress to what the limit of %d bytes allows (%s)",
			max, strictest.MaxQueryExpressionSizeBytes, limits.Source(limits.FlagMaxQueryExprSize)))
		return false
	}
	if err != nil {
		WriteError(w, r, http.StatusBadRequest, "read the remote-read body: "+err.Error())
		return false
	}
	for _, id := range ids {
		if err := queryguard.CheckRead(id, q.limits.Limits(id), body); err != nil {
			WriteError(w, r, http.StatusBadRequest, err.Error())
			return false
		}
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return true
}

// guardedEngine is the engine as the API and the ruler see it: it refuses a
// query whose subqueries would evaluate more steps than every tenant of
// the context allows, before the engine allocates for them (#12).
type guardedEngine struct {
	*promql.Engine
	limits      *limits.Overrides
	parser      parser.Parser
	defaultStep time.Duration // of a subquery without one
}

var _ promql.QueryEngine = (*guardedEngine)(nil)

// NewInstantQuery implements promql.QueryEngine.
func (g *guardedEngine) NewInstantQuery(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string, ts time.Time) (promql.Query, error) {
	if err := g.check(ctx, qs, ts, ts, 0); err != nil {
		return nil, err
	}
	return g.Engine.NewInstantQuery(ctx, q, opts, qs, ts)
}

// NewRangeQuery implements promql.QueryEngine.
func (g *guardedEngine) NewRangeQuery(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string, start, end time.Time, step time.Duration) (promql.Query, error) {
	if err := g.check(ctx, qs, start, end, step); err != nil {
		return nil, err
	}
	return g.Engine.NewRangeQuery(ctx, q, opts, qs, start, end, step)
}

// check parses qs (the guard has bounded it; the engine parses it again)
// and checks its subqueries. Text that does not parse, or a context
// without tenants, is left to the engine and the queryable to refuse.
func (g *guardedEngine) check(ctx context.Context, qs string, start, end time.Time, step time.Duration) error {
	ids, err := tenantauth.Tenants(ctx)
	if err != nil {
		return nil
	}
	expr, err := g.parser.ParseExpr(qs)
	if err != nil {
		return nil
	}
	if expr, err = promql.PreprocessExpr(expr, start, end, step); err != nil {
		return nil
	}
	for _, id := range ids {
		if err := queryguard.CheckSubqueries(id, g.limits.Limits(id), expr, end.Sub(start), g.defaultStep); err != nil {
			return err
		}
	}
	return nil
}
