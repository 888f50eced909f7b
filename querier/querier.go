package querier

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/grafana/regexp"
	"log/slog"
	"net/http"
	"runtime"
	"strconv"
	"time"

	remoteapi "github.com/prometheus/client_golang/exp/api/remote"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/route"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/util/notifications"
	v1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// Config configures the PromQL engine and the query API.
type Config struct {
	Timeout             time.Duration
	MaxSamples          int
	LookbackDelta       time.Duration
	RemoteReadMaxSample int
}

// RegisterFlags registers the querier's flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.Timeout, "querier.timeout", 2*time.Minute, "Maximum time one query may run.")
	fs.IntVar(&c.MaxSamples, "querier.max-samples", 50_000_000, "Maximum number of samples one query may hold in memory at once.")
	fs.DurationVar(&c.LookbackDelta, "querier.lookback-delta", 5*time.Minute, "How far back PromQL looks for the latest sample of a series.")
	fs.IntVar(&c.RemoteReadMaxSample, "querier.remote-read-sample-limit", 50_000_000, "Maximum number of samples one remote-read request may return.")
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.Timeout <= 0 || c.MaxSamples <= 0 || c.LookbackDelta <= 0 {
		return errors.New("-querier.timeout, -querier.max-samples and -querier.lookback-delta must be positive")
	}
	return nil
}

// BuildInfo describes the running binary.
type BuildInfo struct {
	Version, Revision, Branch, BuildDate string
	// Features are advertised in status/buildinfo as Mimir does, so that
	// Grafana offers what exists (ruler_config_api: "true" and so on).
	Features map[string]string
}

// MetadataSource holds tenants' metric metadata.
type MetadataSource interface {
	Metadata(ctx context.Context, tenant, metric string, limit, limitPerMetric int, into map[string][]metadata.Metadata) error
}

// Querier serves the Prometheus HTTP query API for the tenants in each
// request's context.
type Querier struct {
	cfg       Config
	engine    *guardedEngine
	queryable *Queryable
	limits    *limits.Overrides
	meta      MetadataSource
	build     BuildInfo
	logger    *slog.Logger
	api       http.Handler
	running   concurrency
	observer  Observer
	front     func(http.Handler) http.Handler // nil: none
}

// New returns a Querier over the queryable.
func New(cfg Config, q *Queryable, meta MetadataSource, build BuildInfo, logger *slog.Logger, reg prometheus.Registerer) (*Querier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	eng := promql.NewEngine(promql.EngineOpts{
		Logger:                   logger,
		Reg:                      reg,
		MaxSamples:               cfg.MaxSamples,
		Timeout:                  cfg.Timeout,
		LookbackDelta:            cfg.LookbackDelta,
		EnableAtModifier:         true,
		EnableNegativeOffset:     true,
		NoStepSubqueryIntervalFn: func(int64) int64 { return subqueryStep.Milliseconds() },
	})
	guarded := &guardedEngine{Engine: eng, limits: q.limits, parser: parser.NewParser(parser.Options{}), defaultStep: subqueryStep}
	qr := &Querier{cfg: cfg, engine: guarded, queryable: q, limits: q.limits, meta: meta, build: build, logger: logger}
	api, err := qr.newAPI(reg)
	if err != nil {
		return nil, err
	}
	qr.api = api
	return qr, nil
}

// subqueryStep is the step of a subquery that names none.
const subqueryStep = time.Minute

// Engine returns the PromQL engine, shared with the ruler: it refuses
// subqueries over the tenant's max_subquery_steps.
func (q *Querier) Engine() promql.QueryEngine { return q.engine }

func (q *Querier) newAPI(reg prometheus.Registerer) (http.Handler, error) {
	noCORS, err := regexp.Compile("^$")
	if err != nil {
		return nil, err
	}
	cfg := config.DefaultConfig
	api := v1.NewAPI(
		q.engine, q.queryable, nil, q.queryable,
		func(context.Context) v1.ScrapePoolsRetriever { return nil },
		func(context.Context) v1.TargetRetriever { return nil },
		func(context.Context) v1.AlertmanagerRetriever { return nil },
		func() config.Config { return cfg },
		map[string]string{},
		v1.GlobalURLOptions{},
		func(f http.HandlerFunc) http.HandlerFunc { return f },
		nil, "", false, false, 0,
		q.logger,
		func(context.Context) v1.RulesRetriever { return nil },
		q.cfg.RemoteReadMaxSample, 10, 1<<20,
		false, noCORS,
		func() (v1.RuntimeInfo, error) { return v1.RuntimeInfo{}, errors.New("not available") },
		&v1.PrometheusVersion{Version: q.build.Version, Revision: q.build.Revision, Branch: q.build.Branch, BuildDate: q.build.BuildDate, GoVersion: runtime.Version()},
		func() []notifications.Notification { return nil },
		func() (<-chan notifications.Notification, func(), bool) { return nil, func() {}, false },
		prometheus.NewRegistry(), reg, nil,
		false, remoteapi.MessageTypes{},
		false, false, false,
		q.cfg.LookbackDelta,
		false, false,
		nil, nil, v1.OpenAPIOptions{}, nil, false, q.cfg.Timeout,
	)
	r := route.New()
	api.Register(r.WithPrefix("/api/v1"))
	return r, nil
}

// apiPaths are the Prometheus API endpoints FluxPulse serves, below
// /api/v1/ and /prometheus/api/v1/. Everything else of the Prometheus API
// (admin, targets, status/config, …) is not exposed.
var apiPaths = []string{"query", "query_range", "query_exemplars", "format_query", "parse_query", "labels", "series", "read"}

// Observe sets the function told about every finished read request. Set it
// before serving.
func (q *Querier) Observe(o Observer) { q.observer = o }

// Front sets what stands between the per-tenant limits and the Prometheus
// API (the query frontend, #15): it gets the API and returns the handler
// the limits call, so that a request is guarded, counted and audited once
// however the frontend splits it. Set it before Register.
func (q *Querier) Front(wrap func(http.Handler) http.Handler) { q.front = wrap }

// ReadPaths are the paths of the query API that Register serves with auth,
// below "" and "/prometheus"; status/buildinfo needs none.
var ReadPaths = append(slicesOf("/api/v1/", apiPaths), "/api/v1/label/{name}/values", "/api/v1/metadata", "/api/v1/export")

func slicesOf(prefix string, names []string) []string {
	out := make([]string, len(names))
	for k, n := range names {
		out[k] = prefix + n
	}
	return out
}

// Register adds the query API to mux, each route wrapped by auth (which puts
// the tenants in the context) and by the per-tenant query limits.
func (q *Querier) Register(mux *http.ServeMux, auth func(http.Handler) http.Handler) {
	inner := q.api
	if q.front != nil {
		inner = q.front(q.api)
	}
	for _, prefix := range []string{"", "/prometheus"} {
		api := q.limit(inner)
		if prefix != "" {
			api = http.StripPrefix(prefix, api)
		}
		for _, p := range apiPaths {
			mux.Handle(prefix+"/api/v1/"+p, auth(api))
		}
		mux.Handle(prefix+"/api/v1/label/{name}/values", auth(api))
		mux.Handle(prefix+"/api/v1/metadata", auth(q.limit(http.HandlerFunc(q.metadata))))
		mux.Handle(prefix+"/api/v1/export", auth(q.limit(http.HandlerFunc(q.export))))
		mux.Handle(prefix+"/api/v1/status/buildinfo", http.HandlerFunc(q.buildInfo))
	}
}

type response struct {
	Status    string `json:"status"`
	Data      any    `json:"data,omitempty"`
	ErrorType string `json:"errorType,omitempty"`
	Error     string `json:"error,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError writes an error in the Prometheus API's JSON shape. It is also
// the tenantauth ErrorWriter for the query routes.
func WriteError(w http.ResponseWriter, _ *http.Request, status int, msg string) {
	typ := "bad_data"
	switch {
	case status == http.StatusUnauthorized:
		typ = "unauthorized"
	case status == http.StatusForbidden:
		typ = "forbidden"
	case status == http.StatusTooManyRequests:
		typ = "too_many_requests"
	case status == http.StatusServiceUnavailable:
		typ = "unavailable"
	case status >= 500:
		typ = "internal"
	}
	writeJSON(w, status, response{Status: "error", ErrorType: typ, Error: msg})
}

func (q *Querier) metadata(w http.ResponseWriter, r *http.Request) {
	limit, err := intParam(r, "limit")
	if err != nil {
		WriteError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	perMetric, err := intParam(r, "limit_per_metric")
	if err != nil {
		WriteError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	ids, err := tenantauth.Tenants(r.Context())
	if err != nil {
		WriteError(w, r, http.StatusUnauthorized, err.Error())
		return
	}
	out := map[string][]metadata.Metadata{}
	for _, id := range ids {
		if err := q.meta.Metadata(r.Context(), id, r.FormValue("metric"), limit, perMetric, out); err != nil {
			WriteError(w, r, http.StatusInternalServerError, err.Error())
			return
		}
	}
	writeJSON(w, http.StatusOK, response{Status: "success", Data: out})
}

func intParam(r *http.Request, name string) (int, error) {
	s := r.FormValue(name)
	if s == "" {
		return -1, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%s must be a number", name)
	}
	return n, nil
}

// buildInfo answers like Prometheus, and also says which Cortex/Mimir
// features exist so that Grafana offers them.
func (q *Querier) buildInfo(w http.ResponseWriter, _ *http.Request) {
	features := q.build.Features
	if features == nil {
		features = map[string]string{}
	}
	writeJSON(w, http.StatusOK, response{Status: "success", Data: map[string]any{
		"application": "FluxPulse",
		"version":     q.build.Version,
		"revision":    q.build.Revision,
		"branch":      q.build.Branch,
		"buildUser":   "",
		"buildDate":   q.build.BuildDate,
		"goVersion":   runtime.Version(),
		"features":    features,
	}})
}
