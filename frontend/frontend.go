package frontend

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// Scheduler runs the requests the frontend sends to the queriers. Do runs
// fn once, with a context derived from ctx, for tenant: a tenant ID, or
// the sorted IDs of a federated read joined by "|" as the querier sees
// them. It returns fn's error, or its own when it does not run fn (a
// full queue, a cancelled ctx). Do is called concurrently, once for each
// piece of a split query and once for each request passed through.
type Scheduler interface {
	Do(ctx context.Context, tenant string, fn func(context.Context) error) error
}

// SchedulerFunc adapts a function to Scheduler.
type SchedulerFunc func(ctx context.Context, tenant string, fn func(context.Context) error) error

// Do implements Scheduler.
func (f SchedulerFunc) Do(ctx context.Context, tenant string, fn func(context.Context) error) error {
	return f(ctx, tenant, fn)
}

// PassThrough is the default Scheduler: it runs fn at once.
var PassThrough Scheduler = SchedulerFunc(func(ctx context.Context, _ string, fn func(context.Context) error) error {
	return fn(ctx)
})

// Options are the frontend's collaborators besides the queriers.
type Options struct {
	// Scheduler runs every request sent to the queriers; nil is
	// PassThrough.
	Scheduler Scheduler
	// Cache keeps results; nil caches nothing. Key and Generation are
	// then required.
	Cache      Cache
	Key        KeyFunc
	Generation GenerationFunc
	Logger     *slog.Logger
	Reg        prometheus.Registerer
	// Now is the clock that decides what is old enough to cache; nil is
	// time.Now.
	Now func() time.Time
}

// Frontend is the query frontend: an http.Handler in front of next, the
// queriers' Prometheus query API. Requests reach it with their tenants in
// the context (tenantauth).
type Frontend struct {
	cfg        Config
	next       http.Handler
	sched      Scheduler
	cache      Cache
	key        KeyFunc
	generation GenerationFunc
	now        func() time.Time
	parser     parser.Parser
	logger     *slog.Logger
	metrics    *metrics
}

// New returns a Frontend in front of next.
func New(cfg Config, next http.Handler, opts Options) (*Frontend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Scheduler == nil {
		opts.Scheduler = PassThrough
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Cache != nil && (opts.Key == nil || opts.Generation == nil) {
		return nil, errors.New("a results cache needs the tenants' keys and cache generations")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Frontend{cfg: cfg, next: next, sched: opts.Scheduler, cache: opts.Cache, key: opts.Key, generation: opts.Generation,
		now: opts.Now, parser: parser.NewParser(parser.Options{}), logger: opts.Logger, metrics: newMetrics(opts.Reg)}, nil
}

// ServeHTTP splits, aligns and merges range queries and passes everything
// else to the queriers.
func (f *Frontend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ids, err := tenantauth.Tenants(r.Context())
	if err != nil {
		writeError(w, http.StatusUnauthorized, "unauthorized", err.Error())
		return
	}
	tenant := strings.Join(ids, tenantauth.FederationSeparator)
	if !strings.HasSuffix(r.URL.Path, "/api/v1/query_range") {
		f.passThrough(w, r, tenant)
		return
	}
	if err := r.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, "bad_data", "error parsing form values: "+err.Error())
		return
	}
	q, ok := parseRangeQuery(r.Form)
	if !ok {
		f.metrics.queries.WithLabelValues("passed_through").Inc()
		f.passThrough(w, formRequest(r, r.Form), tenant)
		return
	}
	if f.cfg.AlignQueriesWithStep {
		q.align()
	}
	if !splittable(f.parser, q) {
		f.metrics.queries.WithLabelValues("unsplit").Inc()
		f.passThrough(w, formRequest(r, q.pieceForm(piece{q.start, q.end})), tenant)
		return
	}
	f.metrics.queries.WithLabelValues("split").Inc()
	f.serveSplit(w, r, ids, q)
}

// passThrough sends r to the queriers through the scheduler and copies
// their answer.
func (f *Frontend) passThrough(w http.ResponseWriter, r *http.Request, tenant string) {
	ran := false
	err := f.sched.Do(r.Context(), tenant, func(ctx context.Context) error {
		ran = true
		f.next.ServeHTTP(w, r.WithContext(ctx))
		return nil
	})
	if err != nil && !ran {
		writeSchedulerError(w, err)
	}
}

// writeSchedulerError answers a request the scheduler did not run: 503
// when the request's context ended, else 429 with the scheduler's reason
// (a full queue).
func writeSchedulerError(w http.ResponseWriter, err error) {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the query was not run: "+err.Error())
		return
	}
	writeError(w, http.StatusTooManyRequests, "too_many_requests", err.Error())
}

// pieceForm returns the parameters of the query for the timestamps of p.
func (q rangeQuery) pieceForm(p piece) url.Values {
	form := cloneForm(q.form)
	form.Set("start", formatTime(p.start))
	form.Set("end", formatTime(p.end))
	return form
}

// formRequest returns a copy of r for the query API that carries form as a
// form-encoded POST body, which every Prometheus API endpoint accepts and
// which has no URL length limit.
func formRequest(r *http.Request, form url.Values) *http.Request {
	body := form.Encode()
	out := r.Clone(r.Context())
	out.Method = http.MethodPost
	out.URL.RawQuery = ""
	out.Form, out.PostForm = nil, nil
	out.Body = http.NoBody
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil }
	out.Body, _ = out.GetBody()
	out.ContentLength = int64(len(body))
	out.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	out.Header.Del("Content-Encoding")
	return out
}

// pieceResult is the answer to one piece.
type pieceResult struct {
	status    int
	body      []byte
	header    http.Header
	data      matrixData
	resp      apiResponse
	queueTime time.Duration // waited for the scheduler
	cached    bool          // answered at least in part from the cache
}

// serveSplit runs the pieces of q, at most MaxQueryParallelism at once,
// and writes the merged answer.
func (f *Frontend) serveSplit(w http.ResponseWriter, r *http.Request, ids []string, q rangeQuery) {
	began := time.Now()
	tenant := strings.Join(ids, tenantauth.FederationSeparator)
	pieces := split(q.start, q.end, q.step, f.cfg.SplitQueriesByInterval.Milliseconds())
	sl := f.sealerFor(r, ids)
	wantStats := q.form.Get("stats") != ""
	// Pieces always report their stats, for the slow-query log and a
	// client's stats parameter.
	q.form = cloneForm(q.form)
	q.form.Set("stats", "all")
	f.metrics.pieces.Add(float64(len(pieces)))
	results := make([]pieceResult, len(pieces))
	errs := make([]error, len(pieces))
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	sem := make(chan struct{}, f.cfg.MaxQueryParallelism)
	var wg sync.WaitGroup
	var failed sync.Once
	first := -1 // the piece that failed first; the others may fail only because it cancelled them
	for k, p := range pieces {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			results[k], errs[k] = f.cachedPiece(ctx, r, tenant, q, p, sl)
			if errs[k] != nil || results[k].status != http.StatusOK {
				failed.Do(func() { first = k; cancel() })
			}
		})
	}
	wg.Wait()
	status := http.StatusOK
	defer func() { f.logSlow(tenant, q, time.Since(began), mergeStats(results), status) }()
	if first >= 0 {
		status = results[first].status
	}
	switch {
	case first >= 0 && errs[first] != nil:
		writeSchedulerError(w, errs[first])
	case first >= 0 && results[first].status == http.StatusUnprocessableEntity:
		// An execution error names what the engine met at the first step
		// that failed, which for a piece may be other series than for the
		// whole range: the whole range answers, exactly as Prometheus.
		f.passThrough(w, formRequest(r, q.pieceForm(piece{q.start, q.end})), tenant)
	case first >= 0:
		copyAnswer(w, results[first])
	case r.Context().Err() != nil:
		writeSchedulerError(w, r.Context().Err())
	default:
		f.writeMerged(w, results, wantStats)
	}
}

// runPiece runs one piece through the scheduler. The error is the
// scheduler's; the querier's errors are in the result.
func (f *Frontend) runPiece(ctx context.Context, r *http.Request, tenant string, form url.Values) (pieceResult, error) {
	var res pieceResult
	enqueued := time.Now()
	var started time.Time
	err := f.sched.Do(ctx, tenant, func(ctx context.Context) error {
		started = time.Now()
		rec := newRecorder()
		req := formRequest(r, form).WithContext(ctx)
		req.Header.Del("Accept-Encoding") // the answer is decoded here
		f.next.ServeHTTP(rec, req)
		res = pieceResult{status: rec.status, body: rec.body.Bytes(), header: rec.header}
		return nil
	})
	if err != nil && res.status == 0 {
		return res, err
	}
	res.queueTime = started.Sub(enqueued)
	if res.status != http.StatusOK {
		return res, nil
	}
	resp, data, perr := parseMatrix(res.body)
	if perr != nil {
		f.logger.Warn("the querier's answer to a piece of a split query does not decode", "err", perr)
		return pieceResult{status: http.StatusBadGateway, body: errorBody("internal", perr.Error()), queueTime: res.queueTime}, nil
	}
	res.resp, res.data = resp, data
	return res, nil
}

func cloneForm(form url.Values) url.Values {
	out := make(url.Values, len(form))
	for k, v := range form {
		out[k] = v
	}
	return out
}

// writeMerged writes the merged answer of the pieces.
func (f *Frontend) writeMerged(w http.ResponseWriter, results []pieceResult, withStats bool) {
	parts := make([][]series, len(results))
	var warns, infos [][]string
	for k, res := range results {
		parts[k] = res.data.Result
		warns = append(warns, res.resp.Warnings)
		infos = append(infos, res.resp.Infos)
	}
	var stats json.RawMessage
	if withStats {
		stats, _ = json.Marshal(mergeStats(results)) // plain numbers always encode
	}
	body := encodeMatrix(mergeSeries(parts), stats, mergeAnnotations(warns, "warning"), mergeAnnotations(infos, "info"))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// copyAnswer writes a piece's answer as the querier gave it.
func copyAnswer(w http.ResponseWriter, res pieceResult) {
	for k, vs := range res.header {
		if k == "Content-Length" {
			continue
		}
		w.Header()[k] = vs
	}
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(res.status)
	_, _ = w.Write(res.body)
}

// recorder is an http.ResponseWriter that keeps the answer in memory.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func newRecorder() *recorder { return &recorder{header: http.Header{}} }

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}

// errorBody is an error answer in the Prometheus API's shape.
func errorBody(typ, msg string) []byte {
	b, _ := json.Marshal(apiResponse{Status: "error", ErrorType: typ, Error: msg})
	return b
}

func writeError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(errorBody(typ, msg))
}
