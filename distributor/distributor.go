package distributor

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/remotewrite"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// Config configures the distributor.
type Config struct {
	MaxRequestSize             int
	MaxDecompressedRequestSize int
	MaxInflightBytes           int
	BodyReadTimeout            time.Duration
}

// Flag names, quoted in the errors they cause.
const (
	FlagMaxRequestSize             = "distributor.max-request-size"
	FlagMaxDecompressedRequestSize = "distributor.max-decompressed-request-size"
	FlagMaxInflightBytes           = "distributor.max-inflight-bytes"
	FlagBodyReadTimeout            = "distributor.body-read-timeout"
)

// RegisterFlags registers the distributor's flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.MaxRequestSize, FlagMaxRequestSize, 16<<20, "Maximum size in bytes of a compressed remote-write request body.")
	fs.IntVar(&c.MaxDecompressedRequestSize, FlagMaxDecompressedRequestSize, 64<<20, "Maximum size in bytes of a remote-write request once decompressed.")
	fs.IntVar(&c.MaxInflightBytes, FlagMaxInflightBytes, 128<<20, "Maximum bytes of remote-write request bodies, compressed and decompressed, held in memory at once across all requests; a request that would go over it is refused with 503 and Retry-After. At least -"+FlagMaxRequestSize+" plus -"+FlagMaxDecompressedRequestSize+", each rounded up to a power of two.")
	fs.DurationVar(&c.BodyReadTimeout, FlagBodyReadTimeout, 30*time.Second, "How long a remote-write request body may take to arrive once its headers are read; a slower one is refused with 408. Prometheus gives up on a request after its remote_timeout, 30s by default.")
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.MaxRequestSize <= 0 || c.MaxDecompressedRequestSize <= 0 || c.BodyReadTimeout <= 0 {
		return fmt.Errorf("-%s, -%s and -%s must be positive", FlagMaxRequestSize, FlagMaxDecompressedRequestSize, FlagBodyReadTimeout)
	}
	// The most one request can hold: its compressed body while it grows
	// (the old buffer and the new one, twice as large), or the whole
	// compressed body and the decompressed one; each is rounded up to a
	// power of two.
	body, raw := bufferSize(c.MaxRequestSize), bufferSize(c.MaxDecompressedRequestSize)
	if need := max(body+body/2, body+raw); c.MaxInflightBytes < need {
		return fmt.Errorf("-%s must be at least -%s plus -%s, each rounded up to a power of two: %d bytes; got %d", FlagMaxInflightBytes, FlagMaxRequestSize, FlagMaxDecompressedRequestSize, need, c.MaxInflightBytes)
	}
	return nil
}

// Record describes one finished push, for usage accounting and the audit
// log. Received counts what the request carried; Result what was stored and
// refused.
type Record struct {
	Version                        remotewrite.Version
	Status                         int
	Bytes                          int
	Samples, Histograms, Exemplars int
	Result                         remotewrite.Result
}

// Observer is told about every push that named a tenant.
type Observer func(r *http.Request, tenant string, rec Record)

// Observe sets the function told about every push. Set it before serving.
func (d *Distributor) Observe(o Observer) { d.observer = o }

// Pusher stores validated requests: the ingester, in process or remote.
//
// Push must not keep req or any string of it after it returns. A non-nil
// error means nothing was stored and the sender may retry; refusals of
// individual series or samples are reported in the Result instead.
type Pusher interface {
	Push(ctx context.Context, tenant string, req *remotewrite.Request) (remotewrite.Result, error)
}

// Distributor receives remote-write requests, validates them against the
// tenant's limits and hands them to a Pusher.
type Distributor struct {
	cfg    Config
	pusher Pusher
	limits *limits.Overrides
	logger *slog.Logger
	now    func() time.Time

	bufs     *bodyBuffers
	rates    rateLimiters
	observer Observer

	received    *prometheus.CounterVec
	recvBytes   *prometheus.CounterVec
	discarded   *prometheus.CounterVec
	requests    *prometheus.CounterVec
	rateLimited *prometheus.CounterVec
	haDropped   *prometheus.CounterVec
	ha          HATracker // nil: no HA deduplication
	reqSeconds  prometheus.Histogram
}

// New returns a Distributor.
func New(cfg Config, p Pusher, lim *limits.Overrides, logger *slog.Logger, reg prometheus.Registerer) (*Distributor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	f := promauto.With(reg)
	bufs := &bodyBuffers{limit: int64(cfg.MaxInflightBytes), idle: trimIdle}
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "fluxpulse_distributor_inflight_body_bytes", Help: "Bytes of request bodies, compressed and decompressed, held in memory now (the limit is -" + FlagMaxInflightBytes + ")."},
		func() float64 { return float64(bufs.inUse()) })
	return &Distributor{
		cfg: cfg, pusher: p, limits: lim, logger: logger, now: time.Now,
		bufs: bufs,
		received: f.NewCounterVec(prometheus.CounterOpts{
			Name: "fluxpulse_distributor_received_samples_total", Help: "Samples, histograms and exemplars received per tenant, before validation."}, []string{"tenant", "type"}),
		recvBytes: f.NewCounterVec(prometheus.CounterOpts{
			Name: "fluxpulse_distributor_received_bytes_total", Help: "Compressed remote-write bytes received per tenant."}, []string{"tenant"}),
		discarded: f.NewCounterVec(prometheus.CounterOpts{
			Name: "fluxpulse_distributor_discarded_samples_total", Help: "Samples refused per tenant, by validation or by the store."}, []string{"tenant"}),
		haDropped: f.NewCounterVec(prometheus.CounterOpts{
			Name: "fluxpulse_distributor_ha_dropped_samples_total", Help: "Samples dropped per tenant because they came from a replica of an HA pair that is not the elected one."}, []string{"tenant"}),
		rateLimited: f.NewCounterVec(prometheus.CounterOpts{
			Name: "fluxpulse_distributor_rate_limited_samples_total", Help: "Samples refused with 429 by the per-tenant ingestion rate limit."}, []string{"tenant"}),
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "fluxpulse_distributor_requests_total", Help: "Remote-write requests by protocol version and status code."}, []string{"version", "code"}),
		reqSeconds: f.NewHistogram(prometheus.HistogramOpts{
			Name: "fluxpulse_distributor_request_duration_seconds", Help: "Time to handle a remote-write request.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 3, 10)}),
	}, nil
}

const (
	protobufType = "application/x-protobuf"
	v1Proto      = "prometheus.WriteRequest"
	v2Proto      = "io.prometheus.write.v2.Request"
)

// version negotiates the protocol from the Content-Type, as the remote-write
// specifications define it. No Content-Type means 1.0, as Prometheus
// receivers assume.
func version(contentType string) (remotewrite.Version, error) {
	if contentType == "" {
		return remotewrite.V1, nil
	}
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return 0, &httpError{http.StatusUnsupportedMediaType, fmt.Sprintf("cannot parse Content-Type %q: %v", contentType, err)}
	}
	if mt != protobufType {
		return 0, &httpError{http.StatusUnsupportedMediaType, fmt.Sprintf("unsupported Content-Type %q: expected %s (remote write 1.0) or %s;proto=%s (remote write 2.0)", contentType, protobufType, protobufType, v2Proto)}
	}
	switch p := params["proto"]; p {
	case "", v1Proto:
		return remotewrite.V1, nil
	case v2Proto:
		return remotewrite.V2, nil
	default:
		return 0, &httpError{http.StatusUnsupportedMediaType, fmt.Sprintf("unsupported proto=%q in Content-Type: expected %s or %s", p, v1Proto, v2Proto)}
	}
}

// ServeHTTP handles POST /api/v1/push and /api/v1/write. The tenant comes
// from the request context (tenantauth middleware).
func (d *Distributor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := d.now()
	var rec Record
	ver, status := d.serve(w, r, &rec)
	d.requests.WithLabelValues(strconv.Itoa(int(ver)), strconv.Itoa(status)).Inc()
	d.reqSeconds.Observe(time.Since(start).Seconds())
	if tenant, err := tenantauth.Tenant(r.Context()); err == nil && d.observer != nil {
		rec.Version, rec.Status = ver, status
		d.observer(r, tenant, rec)
	}
}

func (d *Distributor) serve(w http.ResponseWriter, r *http.Request, rec *Record) (remotewrite.Version, int) {
	fail := func(v remotewrite.Version, err error) (remotewrite.Version, int) {
		status := statusOf(err)
		if status == http.StatusServiceUnavailable && w.Header().Get("Retry-After") == "" {
			w.Header().Set("Retry-After", "1")
		}
		http.Error(w, err.Error(), status)
		return v, status
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return fail(0, &httpError{http.StatusMethodNotAllowed, "remote write takes POST"})
	}
	tenant, err := tenantauth.Tenant(r.Context())
	if err != nil {
		return fail(0, &httpError{http.StatusUnauthorized, err.Error()})
	}
	ver, err := version(r.Header.Get("Content-Type"))
	if err != nil {
		return fail(0, err)
	}
	if enc := r.Header.Get("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "snappy") {
		return fail(ver, &httpError{http.StatusUnsupportedMediaType, fmt.Sprintf("unsupported Content-Encoding %q: remote write bodies must be snappy-compressed", enc)})
	}

	// A tenant with an empty bucket is refused before its body is read or
	// decoded: a flood over the limit costs the server little.
	if lim := d.limits.Limits(tenant); lim.IngestionRate > 0 && d.rates.empty(tenant, d.now(), lim.IngestionRate, lim.IngestionBurstSize) {
		w.Header().Set("Retry-After", "1")
		return fail(ver, d.rateError(tenant, lim, -1))
	}
	body, err := d.readBody(w, r)
	if body.wire > 0 {
		d.recvBytes.WithLabelValues(tenant).Add(float64(body.wire))
		rec.Bytes = body.wire
	}
	if err != nil {
		return fail(ver, err)
	}
	defer d.bufs.put(body.buf)
	raw := body.data

	req := remotewrite.GetRequest()
	defer remotewrite.Release(req)
	if ver == remotewrite.V2 {
		err = remotewrite.DecodeV2(req, raw)
	} else {
		err = remotewrite.DecodeV1(req, raw)
	}
	if err != nil {
		return fail(ver, &httpError{http.StatusBadRequest, fmt.Sprintf("%s body is not a valid protobuf message: %v", ver, err)})
	}

	rec.Samples, rec.Histograms, rec.Exemplars = req.Counts()
	// A replica of an HA pair that is not the elected one is told its
	// samples were accepted, as Cortex and Mimir answer it, and they are
	// dropped before they count against the rate limit.
	if dropped, err := d.dedupe(r.Context(), tenant, req); err != nil {
		return fail(ver, err)
	} else if dropped {
		if ver == remotewrite.V2 {
			h := w.Header()
			h.Set("X-Prometheus-Remote-Write-Samples-Written", "0")
			h.Set("X-Prometheus-Remote-Write-Histograms-Written", "0")
			h.Set("X-Prometheus-Remote-Write-Exemplars-Written", "0")
		}
		w.WriteHeader(http.StatusAccepted)
		return ver, http.StatusAccepted
	}
	if wait, err := d.checkRate(tenant, req); err != nil {
		if wait > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		}
		return fail(ver, err)
	}
	total := len(req.Series)
	res, err := d.push(r.Context(), tenant, req)
	rec.Result = res
	if ver == remotewrite.V2 {
		h := w.Header()
		h.Set("X-Prometheus-Remote-Write-Samples-Written", strconv.Itoa(res.Samples))
		h.Set("X-Prometheus-Remote-Write-Histograms-Written", strconv.Itoa(res.Histograms))
		h.Set("X-Prometheus-Remote-Write-Exemplars-Written", strconv.Itoa(res.Exemplars))
	}
	if err != nil {
		return fail(ver, d.pushError(tenant, err))
	}
	if res.Rejected() {
		return fail(ver, &httpError{http.StatusBadRequest, res.Message(total)})
	}
	w.WriteHeader(http.StatusNoContent)
	return ver, http.StatusNoContent
}

// checkRate applies the tenant's ingestion rate limit to the whole request:
// it is stored whole or refused whole.
func (d *Distributor) checkRate(tenant string, req *remotewrite.Request) (time.Duration, error) {
	lim := d.limits.Limits(tenant)
	if lim.IngestionRate <= 0 {
		return 0, nil
	}
	ns, nh, _ := req.Counts()
	n := ns + nh
	if n > lim.IngestionBurstSize {
		return 0, &httpError{http.StatusBadRequest, fmt.Sprintf("request has %d samples, more than the ingestion burst size of %d (%s): send smaller requests",
			n, lim.IngestionBurstSize, limits.Source(limits.FlagIngestionBurstSize))}
	}
	wait := d.rates.reserve(tenant, d.now(), lim.IngestionRate, lim.IngestionBurstSize, n)
	if wait == 0 {
		return 0, nil
	}
	d.rateLimited.WithLabelValues(tenant).Add(float64(n))
	return wait, d.rateError(tenant, lim, n)
}

// ErrRateLimited is wrapped by Push's error when the tenant is over its
// ingestion rate; the caller may retry later. It matches
// remotewrite.ErrLimited.
var ErrRateLimited = remotewrite.NewError(remotewrite.ErrLimited, "ingestion rate limit reached")

// pushError is the answer to a push the Pusher failed: its status comes from
// statusOf; a retryable one says so (and a 503 gets Retry-After).
func (d *Distributor) pushError(tenant string, err error) error {
	status := statusOf(err)
	switch {
	case status == http.StatusServiceUnavailable:
		return &httpError{status, "the samples were not stored, retry: " + err.Error()}
	case status >= 500:
		d.logger.Warn("push failed", "tenant", tenant, "err", err)
		return &httpError{status, "storing the samples failed, retry: " + err.Error()}
	}
	return &httpError{status, "the samples were not stored: " + err.Error()}
}

// Push validates and stores req for tenant exactly as a remote-write request
// is handled, rate limit included: in-process writers (the ruler's
// recording rules) are validated and counted like any push. Refusals are in
// the Result; an error means nothing was stored.
func (d *Distributor) Push(ctx context.Context, tenant string, req *remotewrite.Request) (remotewrite.Result, error) {
	if _, err := d.checkRate(tenant, req); err != nil {
		if he, ok := errors.AsType[*httpError](err); ok && he.status == http.StatusTooManyRequests {
			return remotewrite.Result{}, fmt.Errorf("%w: %s", ErrRateLimited, he.msg)
		}
		return remotewrite.Result{}, err
	}
	return d.push(ctx, tenant, req)
}

// rateError is the 429 of a tenant over its ingestion rate; n < 0 when the
// request was refused unread.
func (d *Distributor) rateError(tenant string, lim limits.Limits, n int) error {
	what := fmt.Sprintf("the request of %d samples", n)
	if n < 0 {
		what = "the request"
	}
	return &httpError{http.StatusTooManyRequests, fmt.Sprintf("ingestion rate limit of %g samples/s with a burst of %d reached for tenant %s (%s; %s); %s was not stored, retry later",
		lim.IngestionRate, lim.IngestionBurstSize, tenant, limits.Source(limits.FlagIngestionRate), limits.Source(limits.FlagIngestionBurstSize), what)}
}

// push validates req and stores what passes. The result counts both.
func (d *Distributor) push(ctx context.Context, tenant string, req *remotewrite.Request) (remotewrite.Result, error) {
	var res remotewrite.Result
	ns, nh, ne := req.Counts()
	d.received.WithLabelValues(tenant, "sample").Add(float64(ns))
	d.received.WithLabelValues(tenant, "histogram").Add(float64(nh))
	d.received.WithLabelValues(tenant, "exemplar").Add(float64(ne))

	// By pointer: the validator holds the tenant's limits (352 bytes), which
	// a value receiver copied on every call, several times a sample (#18).
	v := newValidator(d.limits.Limits(tenant), d.now())
	v.validateMetadata(req, &res)
	req.Validate = &v
	if len(req.Series) > 0 || len(req.Metadata) > 0 {
		stored, err := d.pusher.Push(ctx, tenant, req)
		if err != nil {
			return res, err
		}
		res.Merge(stored)
	}
	if res.RejectedSamples > 0 {
		d.discarded.WithLabelValues(tenant).Add(float64(res.RejectedSamples))
	}
	return res, nil
}
