package deletion

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// RequestIDHeader carries the ID of a new request in the answer.
const RequestIDHeader = "X-FluxPulse-Delete-Request-Id"

// Audit actions of deletion requests.
const (
	ActionRequest   = "deletion.request"
	ActionCancel    = "deletion.cancel"
	ActionList      = "deletion.list"
	ActionProcessed = "deletion.processed"
)

// maxFormBytes bounds a form-encoded body of the API; queryguard bounds
// the selectors in it much more tightly.
const maxFormBytes = 4 << 20

// AuditFunc records an action of the API in the audit log.
type AuditFunc func(r *http.Request, action, tenant, outcome string, details map[string]any)

// APIOptions are the API's optional collaborators.
type APIOptions struct {
	// Audit records every request, cancellation and refusal.
	Audit AuditFunc
	// Changed, when set, is told of every new or cancelled request (to
	// wake a compactor in the same process).
	Changed func(tenant string)
	// WriteError writes a refusal; nil writes text.
	WriteError func(w http.ResponseWriter, r *http.Request, status int, msg string)
}

// API serves the Prometheus and Cortex shapes of series deletion, for the
// tenant of each request's context:
//
//	POST|PUT /api/v1/admin/tsdb/delete_series?match[]=…&start=…&end=…  204, ID in X-FluxPulse-Delete-Request-Id
//	GET      /api/v1/admin/tsdb/delete_series                          the tenant's requests (JSON array)
//	POST|PUT /api/v1/admin/tsdb/cancel_delete_request?request_id=…     204
//
// also below /prometheus.
type API struct {
	cfg    Config
	store  *Store
	cache  *Cache
	limits *limits.Overrides
	opts   APIOptions
	now    func() time.Time
}

// NewAPI returns the API over store, telling cache of every change.
func NewAPI(cfg Config, store *Store, cache *Cache, lim *limits.Overrides, opts APIOptions) (*API, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Audit == nil {
		opts.Audit = func(*http.Request, string, string, string, map[string]any) {}
	}
	if opts.WriteError == nil {
		opts.WriteError = func(w http.ResponseWriter, _ *http.Request, status int, msg string) { http.Error(w, msg, status) }
	}
	return &API{cfg: cfg, store: store, cache: cache, limits: lim, opts: opts, now: time.Now}, nil
}

// Register adds the API's routes to mux, each wrapped by auth, which must
// put exactly one tenant in the context (scope delete or admin).
func (a *API) Register(mux *http.ServeMux, auth func(http.Handler) http.Handler) {
	for _, prefix := range []string{"", "/prometheus"} {
		for _, m := range []string{http.MethodPost, http.MethodPut} {
			mux.Handle(m+" "+prefix+"/api/v1/admin/tsdb/delete_series", auth(http.HandlerFunc(a.create)))
			mux.Handle(m+" "+prefix+"/api/v1/admin/tsdb/cancel_delete_request", auth(http.HandlerFunc(a.cancel)))
		}
		mux.Handle(http.MethodGet+" "+prefix+"/api/v1/admin/tsdb/delete_series", auth(http.HandlerFunc(a.list)))
	}
}

// begin returns the request's tenant and parses its parameters from the
// URL and a bounded body, or writes the refusal.
func (a *API) begin(w http.ResponseWriter, r *http.Request) (string, bool) {
	tenant, err := tenantauth.Tenant(r.Context())
	if err != nil {
		a.opts.WriteError(w, r, http.StatusUnauthorized, err.Error())
		return "", false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			a.opts.WriteError(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("the form-encoded body is larger than %d bytes", maxFormBytes))
			return "", false
		}
		a.opts.WriteError(w, r, http.StatusBadRequest, "error parsing form values: "+err.Error())
		return "", false
	}
	return tenant, true
}

func (a *API) create(w http.ResponseWriter, r *http.Request) {
	tenant, ok := a.begin(w, r)
	if !ok {
		return
	}
	p := Params{Tenant: tenant, Actor: tenantauth.Actor(r.Context()), Selectors: r.Form["match[]"], Start: r.Form.Get("start"), End: r.Form.Get("end")}
	lim := a.limits.Limits(tenant)
	req, err := NewRequest(p, lim, a.now(), a.cfg.CancelPeriod)
	if err == nil {
		err = a.store.Add(r.Context(), req, lim.MaxDeleteRequests)
	}
	if err != nil {
		status := statusOf(err)
		a.opts.Audit(r, ActionRequest, tenant, outcome(status), map[string]any{"selectors": p.Selectors, "error": err.Error()})
		a.opts.WriteError(w, r, status, err.Error())
		return
	}
	a.cache.Put(req)
	a.opts.Audit(r, ActionRequest, tenant, "success", details(req))
	if a.opts.Changed != nil {
		a.opts.Changed(tenant)
	}
	w.Header().Set(RequestIDHeader, req.ID)
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) list(w http.ResponseWriter, r *http.Request) {
	tenant, err := tenantauth.Tenant(r.Context())
	if err != nil {
		a.opts.WriteError(w, r, http.StatusUnauthorized, err.Error())
		return
	}
	reqs, err := a.store.List(r.Context(), tenant)
	if err != nil {
		a.opts.Audit(r, ActionList, tenant, "failure", map[string]any{"error": err.Error()})
		a.opts.WriteError(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	a.opts.Audit(r, ActionList, tenant, "success", map[string]any{"requests": len(reqs)})
	if reqs == nil {
		reqs = []Request{}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(reqs)
}

func (a *API) cancel(w http.ResponseWriter, r *http.Request) {
	tenant, ok := a.begin(w, r)
	if !ok {
		return
	}
	id := r.Form.Get("request_id")
	now := a.now()
	var (
		req Request
		err error
	)
	if id == "" {
		err = invalid(`no request_id parameter provided: name the request to cancel (GET /api/v1/admin/tsdb/delete_series lists them)`)
	} else {
		req, err = a.store.Update(r.Context(), tenant, id, func(req *Request) error {
			return cancelRequest(req, tenantauth.Actor(r.Context()), now)
		})
	}
	if err != nil {
		status := statusOf(err)
		a.opts.Audit(r, ActionCancel, tenant, outcome(status), map[string]any{"request_id": id, "error": err.Error()})
		a.opts.WriteError(w, r, status, err.Error())
		return
	}
	a.cache.Put(req)
	a.opts.Audit(r, ActionCancel, tenant, "success", details(req))
	if a.opts.Changed != nil {
		a.opts.Changed(tenant)
	}
	w.WriteHeader(http.StatusNoContent)
}

// cancelRequest cancels a pending request within its cancel period.
func cancelRequest(req *Request, actor string, now time.Time) error {
	if req.State != StatePending {
		return invalid("deletion request %s is %s: only a pending request can be cancelled", req.ID, req.State)
	}
	if !now.Before(req.CancellableUntil) {
		return invalid("deletion request %s could be cancelled until %s (-%s after it was made) and is being carried out",
			req.ID, req.CancellableUntil.Format(time.RFC3339), FlagCancelPeriod)
	}
	req.State, req.CancelledAt, req.CancelledBy = StateCancelled, now.UTC(), actor
	return nil
}

// details are what the audit log keeps of a request.
func details(r Request) map[string]any {
	return map[string]any{"request_id": r.ID, "selectors": r.Selectors, "start": fmtMs(r.Start), "end": fmtMs(r.End),
		"state": string(r.State), "cancellable_until": r.CancellableUntil.Format(time.RFC3339)}
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrLimit):
		return http.StatusTooManyRequests
	}
	return http.StatusInternalServerError
}

func outcome(status int) string {
	if status >= 500 {
		return "failure"
	}
	return "denied"
}
