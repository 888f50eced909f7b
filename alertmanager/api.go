package alertmanager

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/fluxpulse/fluxpulse/audit"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// APIPrefix is where each tenant's Alertmanager API v2 is served, as in
// Cortex and Mimir: amtool --alertmanager.url=http://host:9009/alertmanager,
// or a Grafana Alertmanager data source of implementation Mimir or Cortex
// with URL http://host:9009.
const APIPrefix = "/alertmanager"

// configPath is the configuration API of Cortex and Mimir.
const configPath = "/api/v1/alerts"

// maxAPIBodyBytes bounds request bodies of the API v2 (alerts, silences).
const maxAPIBodyBytes = 8 << 20

// Register adds the configuration API and the tenants' API v2 to mux,
// each wrapped by auth, which must put one tenant in the context (scope
// alerts).
func (a *Alertmanager) Register(mux *http.ServeMux, auth func(http.Handler) http.Handler) {
	mux.Handle("GET "+configPath, auth(http.HandlerFunc(a.getConfig)))
	mux.Handle("POST "+configPath, auth(http.HandlerFunc(a.setConfig)))
	mux.Handle("DELETE "+configPath, auth(http.HandlerFunc(a.deleteConfig)))
	mux.Handle(APIPrefix+"/api/v2/", auth(http.HandlerFunc(a.serveAPI)))
}

// requestTenant returns the tenant of a request, or writes the error.
func requestTenant(w http.ResponseWriter, r *http.Request) (string, bool) {
	id, err := tenantauth.Tenant(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return "", false
	}
	return id, true
}

// getConfig answers GET /api/v1/alerts with the tenant's configuration,
// every secret replaced by <secret>.
func (a *Alertmanager) getConfig(w http.ResponseWriter, r *http.Request) {
	id, ok := requestTenant(w, r)
	if !ok {
		return
	}
	uc, err := a.store.getConfig(r.Context(), id)
	if errors.Is(err, errNoConfig) {
		http.Error(w, errNoConfig.Error(), http.StatusNotFound)
		return
	}
	if err != nil {
		a.serverError(w, err)
		return
	}
	text, err := redactSecrets(uc.AlertmanagerConfig)
	if err != nil {
		a.serverError(w, fmt.Errorf("tenant %s: %w", id, err))
		return
	}
	b, err := yaml.Marshal(&UserConfig{TemplateFiles: uc.TemplateFiles, AlertmanagerConfig: text})
	if err != nil {
		a.serverError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(b)
}

// setConfig answers POST /api/v1/alerts: it checks the configuration
// with Alertmanager's own parser and the tenant's limits, stores it and
// applies it, and answers 201 Created.
func (a *Alertmanager) setConfig(w http.ResponseWriter, r *http.Request) {
	id, ok := requestTenant(w, r)
	if !ok {
		return
	}
	entry := audit.Entry{Actor: tenantauth.Actor(r.Context()), Tenant: id, Action: audit.ActionAlertmanagerConfigChange,
		Target: "alertmanager configuration", Outcome: audit.OutcomeSuccess, Details: map[string]any{}}
	status, err := a.storeConfig(w, r, id, entry.Details)
	if err == nil {
		err = a.syncTenant(r.Context(), id)
		status = http.StatusInternalServerError
		if errors.Is(err, ErrTooManyTenants) || errors.Is(err, ErrShuttingDown) {
			status = http.StatusServiceUnavailable
		}
	}
	if err != nil {
		entry.Outcome = audit.OutcomeFailure
		entry.Details["status"] = status
		entry.Details["error"] = err.Error()
		a.audit(entry)
		if status == http.StatusInternalServerError {
			a.serverError(w, err)
			return
		}
		http.Error(w, err.Error(), status)
		return
	}
	a.audit(entry)
	w.WriteHeader(http.StatusCreated)
}

// storeConfig reads, checks and stores a posted configuration. It returns
// the status to answer with when it fails; its errors hold no secret.
func (a *Alertmanager) storeConfig(w http.ResponseWriter, r *http.Request, id string, details map[string]any) (int, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return http.StatusRequestEntityTooLarge, fmt.Errorf("%w: the body is larger than %d bytes", ErrInvalidConfig, MaxBodyBytes)
	}
	if err != nil {
		return http.StatusBadRequest, fmt.Errorf("read the body: %w", err)
	}
	uc, err := decodeUserConfig(body)
	if err != nil {
		return http.StatusBadRequest, err
	}
	details["bytes"] = len(body)
	details["templates"] = slices.Sorted(maps.Keys(uc.TemplateFiles))
	stored := ""
	if old, err := a.store.getConfig(r.Context(), id); err == nil {
		stored = old.AlertmanagerConfig
	} else if !errors.Is(err, errNoConfig) {
		return http.StatusInternalServerError, err
	}
	if uc.AlertmanagerConfig, err = restoreSecrets(uc.AlertmanagerConfig, stored); err != nil {
		return http.StatusBadRequest, err
	}
	if err := checkLimits(uc, a.deps.Limits.Limits(id)); err != nil {
		return http.StatusBadRequest, err
	}
	c, err := a.compileChecked(uc)
	if err != nil {
		return http.StatusBadRequest, err
	}
	var receivers []string
	for _, rcv := range c.cfg.Receivers {
		receivers = append(receivers, rcv.Name)
	}
	details["receivers"] = receivers
	b, err := uc.encode()
	if err != nil {
		return http.StatusInternalServerError, err
	}
	if err := a.store.put(r.Context(), id, configObject, b); err != nil {
		return http.StatusInternalServerError, err
	}
	return 0, nil
}

// deleteConfig answers DELETE /api/v1/alerts: it stops the tenant's
// Alertmanager and deletes its configuration, silences and notification
// log. Deleting what does not exist succeeds, as in Cortex.
func (a *Alertmanager) deleteConfig(w http.ResponseWriter, r *http.Request) {
	id, ok := requestTenant(w, r)
	if !ok {
		return
	}
	entry := audit.Entry{Actor: tenantauth.Actor(r.Context()), Tenant: id, Action: audit.ActionAlertmanagerConfigDelete,
		Target: "alertmanager configuration", Outcome: audit.OutcomeSuccess}
	err := a.deleteTenant(r.Context(), id)
	if err != nil {
		entry.Outcome = audit.OutcomeFailure
		entry.Details = map[string]any{"error": err.Error()}
	}
	a.audit(entry)
	if err != nil {
		a.serverError(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// deleteTenant stops the tenant's Alertmanager, then deletes what it
// stored, so that no snapshot is written after the deletion.
func (a *Alertmanager) deleteTenant(ctx context.Context, id string) error {
	a.syncMu.Lock()
	defer a.syncMu.Unlock()
	if t := a.tenant(id); t != nil {
		a.remove(ctx, t, false)
	}
	return a.store.deleteAll(ctx, id)
}

// serveAPI serves a tenant's Alertmanager API v2 below /alertmanager.
func (a *Alertmanager) serveAPI(w http.ResponseWriter, r *http.Request) {
	id, t, ok := a.requestInstance(w, r)
	if !ok {
		return
	}
	if t == nil {
		http.Error(w, fmt.Sprintf("tenant %s has no Alertmanager configuration: POST one to %s", id, configPath), http.StatusNotFound)
		return
	}
	r2 := apiRequest(w, r, strings.TrimPrefix(r.URL.Path, APIPrefix), strings.TrimPrefix(r.URL.RawPath, APIPrefix))
	if action := silenceAction(r2); action != "" {
		a.serveSilenceChange(w, r2, t, action)
		return
	}
	if r2.Method == http.MethodGet && r2.URL.Path == "/api/v2/status" {
		serveStatus(w, r2, t)
		return
	}
	t.api.Handler.ServeHTTP(w, r2)
}

// serveStatus serves the API's status with the configuration redacted as
// GET /api/v1/alerts redacts it: Alertmanager hides the values of its
// secret types, not a password in a URL of another type.
func serveStatus(w http.ResponseWriter, r *http.Request, t *tenant) {
	bw := &bufferWriter{header: http.Header{}}
	t.api.Handler.ServeHTTP(bw, r)
	var status map[string]any
	if bw.status == http.StatusOK && json.Unmarshal(bw.body.Bytes(), &status) == nil {
		if cfg, ok := status["config"].(map[string]any); ok {
			if orig, ok := cfg["original"].(string); ok {
				red, err := redactSecrets(orig)
				if err != nil {
					red = secretPlaceholder
				}
				cfg["original"] = red
				if b, err := json.Marshal(status); err == nil {
					bw.body.Reset()
					bw.body.Write(b)
				}
			}
		}
	}
	maps.Copy(w.Header(), bw.header)
	w.Header().Del("Content-Length")
	w.WriteHeader(bw.status)
	_, _ = w.Write(bw.body.Bytes())
}

// bufferWriter keeps a whole response, for changing it before it is sent.
type bufferWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferWriter) Header() http.Header { return b.header }

func (b *bufferWriter) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}

func (b *bufferWriter) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

// apiRequest is r as a tenant's API v2 handler takes it: at path (below
// /api/v2/), with its body bounded.
func apiRequest(w http.ResponseWriter, r *http.Request, path, rawPath string) *http.Request {
	r2 := r.Clone(r.Context())
	r2.URL.Path, r2.URL.RawPath = path, rawPath
	r2.Body = http.MaxBytesReader(w, r.Body, maxAPIBodyBytes)
	return r2
}

// requestInstance returns the request's tenant and its Alertmanager (nil
// for none), or writes why there is none available.
func (a *Alertmanager) requestInstance(w http.ResponseWriter, r *http.Request) (string, *tenant, bool) {
	id, ok := requestTenant(w, r)
	if !ok {
		return "", nil, false
	}
	t, err := a.instance(r.Context(), id)
	switch {
	case errors.Is(err, ErrShuttingDown), errors.Is(err, ErrTooManyTenants):
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return "", nil, false
	case err != nil:
		a.serverError(w, err)
		return "", nil, false
	}
	return id, t, true
}

// PushHandler serves the ruler's alert posts (POST <prefix>/api/v2/alerts)
// for the tenant in the request's context: in process, and behind the
// internal route that only the cluster may call. Alerts of a tenant
// without an Alertmanager are dropped, counted, and answered 200, so that
// the ruler neither retries nor logs them as failures.
func (a *Alertmanager) PushHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/api/v2/alerts") {
			http.NotFound(w, r)
			return
		}
		id, t, ok := a.requestInstance(w, r)
		if !ok {
			return
		}
		if t == nil {
			a.m.discarded.WithLabelValues(id).Inc()
			return
		}
		t.api.Handler.ServeHTTP(w, apiRequest(w, r, "/api/v2/alerts", ""))
	})
}

// silenceAction returns the audit action of a request that changes a
// silence, or "".
func silenceAction(r *http.Request) string {
	switch {
	case r.Method == http.MethodPost && strings.TrimSuffix(r.URL.Path, "/") == "/api/v2/silences":
		return audit.ActionSilenceCreate
	case r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, "/api/v2/silence/"):
		return audit.ActionSilenceExpire
	}
	return ""
}

// postedSilence is what the audit log keeps of a posted silence.
type postedSilence struct {
	ID       string `json:"id"`
	Matchers []struct {
		Name    string `json:"name"`
		Value   string `json:"value"`
		IsRegex bool   `json:"isRegex"`
		IsEqual *bool  `json:"isEqual"`
	} `json:"matchers"`
	StartsAt  time.Time `json:"startsAt"`
	EndsAt    time.Time `json:"endsAt"`
	CreatedBy string    `json:"createdBy"`
}

// matchers renders the silence's matchers as Alertmanager writes them.
func (s *postedSilence) matchers() string {
	parts := make([]string, len(s.Matchers))
	for i, m := range s.Matchers {
		op := "="
		switch eq := m.IsEqual == nil || *m.IsEqual; {
		case m.IsRegex && eq:
			op = "=~"
		case m.IsRegex:
			op = "!~"
		case !eq:
			op = "!="
		}
		parts[i] = fmt.Sprintf("%s%s%q", m.Name, op, m.Value)
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// serveSilenceChange serves a silence's creation, update or expiry,
// writes the silences to the bucket once it succeeded (so that an
// answered change survives a crash), and records it in the audit log.
func (a *Alertmanager) serveSilenceChange(w http.ResponseWriter, r *http.Request, t *tenant, action string) {
	entry := audit.Entry{Actor: tenantauth.Actor(r.Context()), Tenant: t.id, Action: action, Details: map[string]any{}}
	if action == audit.ActionSilenceCreate {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "read the body: "+err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		var s postedSilence
		if json.Unmarshal(body, &s) == nil {
			if s.ID != "" {
				entry.Action, entry.Target = audit.ActionSilenceUpdate, s.ID
			}
			entry.Details["matchers"] = s.matchers()
			entry.Details["starts_at"] = s.StartsAt.UTC().Format(time.RFC3339)
			entry.Details["ends_at"] = s.EndsAt.UTC().Format(time.RFC3339)
			entry.Details["created_by"] = s.CreatedBy
		}
	} else {
		entry.Target = strings.TrimPrefix(r.URL.Path, "/api/v2/silence/")
	}
	cw := &captureWriter{ResponseWriter: w}
	t.api.Handler.ServeHTTP(cw, r)
	entry.Details["status"] = cw.status
	if cw.status/100 != 2 {
		entry.Outcome = audit.OutcomeFailure
		entry.Details["error"] = strings.TrimSpace(cw.body.String())
		a.audit(entry)
		return
	}
	entry.Outcome = audit.OutcomeSuccess
	var created struct {
		SilenceID string `json:"silenceID"`
	}
	if json.Unmarshal(cw.body.Bytes(), &created) == nil && created.SilenceID != "" {
		entry.Target = created.SilenceID
	}
	a.audit(entry)
	t.silencesDirty.Store(true)
	if err := a.persist(r.Context(), t); err != nil {
		a.logger.Error("write silences after a change; retrying at the next interval", "tenant", t.id, "err", err)
	}
}

// captureWriter passes a response on and keeps its status and the start
// of its body.
type captureWriter struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

const maxCapturedBytes = 4 << 10

func (c *captureWriter) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *captureWriter) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	if room := maxCapturedBytes - c.body.Len(); room > 0 {
		c.body.Write(b[:min(len(b), room)])
	}
	return c.ResponseWriter.Write(b)
}

// serverError logs a fault and answers 500 without its details.
func (a *Alertmanager) serverError(w http.ResponseWriter, err error) {
	a.logger.Error("Alertmanager API", "err", err)
	http.Error(w, "internal error reading or writing the Alertmanager configuration or state; see the server log", http.StatusInternalServerError)
}
