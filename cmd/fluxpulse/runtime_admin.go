package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/fluxpulse/fluxpulse/querier"
	"github.com/fluxpulse/fluxpulse/runtimeconfig"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// runtimeEditor changes the runtime configuration where it lives: the
// runtime file (runtimeconfig.FileStore) or the bucket
// (*runtimeconfig.BucketStore).
type runtimeEditor interface {
	Apply(ctx context.Context, op runtimeconfig.Op) (old, cur *runtimeconfig.Config, err error)
}

// maxAdminBody bounds the body of a runtime admin request.
const maxAdminBody = 64 << 10

// runtimeAdmin serves the tenant and token endpoints of the admin API
// (#17): operator tokens only, on every process.
type runtimeAdmin struct {
	edit    runtimeEditor
	watcher *runtimeconfig.Watcher
	audit   func(r *http.Request, action, tenant, outcome string, details map[string]any)
}

// addRuntimeAdmin adds the tenant and token endpoints to the public
// listener.
func (p *process) addRuntimeAdmin() {
	a := &runtimeAdmin{edit: p.runtimeEd, watcher: p.runtime, audit: p.obs.admin}
	wrap := func(h http.HandlerFunc) http.Handler {
		return p.auth.Middleware(tenantauth.ScopeAdmin, querier.WriteError, operatorOnly(h))
	}
	p.public.Handle("GET /api/v1/admin/tenants", wrap(a.listTenants))
	p.public.Handle("POST /api/v1/admin/tenants", wrap(a.createTenant))
	p.public.Handle("DELETE /api/v1/admin/tenants/{tenant}/record", wrap(a.deleteRecord))
	p.public.Handle("PUT /api/v1/admin/tenants/{tenant}/limits", wrap(a.setLimits))
	p.public.Handle("POST /api/v1/admin/tokens", wrap(a.createToken))
	p.public.Handle("DELETE /api/v1/admin/tokens/{id}", wrap(a.revokeToken))
}

// decodeBody reads a JSON request body into v, refusing unknown fields.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAdminBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		querier.WriteError(w, r, http.StatusBadRequest, "request body: "+err.Error())
		return false
	}
	return true
}

// apply makes the change, applies the result in this process at once and
// answers; other processes apply it within -runtime-config.reload-period.
func (a *runtimeAdmin) apply(w http.ResponseWriter, r *http.Request, op runtimeconfig.Op, status int, data any) {
	op.Actor, op.Time = tenantauth.Actor(r.Context()), time.Now().UTC().Truncate(time.Second)
	_, cur, err := a.edit.Apply(r.Context(), op)
	target := op.Tenant
	if op.Action == runtimeconfig.OpTokenRevoke {
		target = op.TokenID
	}
	if err != nil {
		code := http.StatusInternalServerError
		switch {
		case errors.Is(err, runtimeconfig.ErrExists):
			code = http.StatusConflict
		case errors.Is(err, runtimeconfig.ErrNotFound):
			code = http.StatusNotFound
		case errors.Is(err, runtimeconfig.ErrRefused):
			code = http.StatusBadRequest
		}
		a.audit(r, op.Action, op.Tenant, "failure", map[string]any{"target": target, "error": err.Error()})
		querier.WriteError(w, r, code, err.Error())
		return
	}
	a.watcher.Reload(r.Context())
	a.audit(r, op.Action, op.Tenant, "success", map[string]any{"target": target})
	if data == nil {
		data = tenantView(cur, op.Tenant)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": data})
}

// tenantJSON is a tenant as the admin API shows it: never a secret.
type tenantJSON struct {
	Tenant string         `json:"tenant"`
	Limits map[string]any `json:"limits,omitempty"`
	Tokens []tokenJSON    `json:"tokens"`
}

// tokenJSON is a token's metadata; Token is set only in the answer that
// creates it.
type tokenJSON struct {
	ID          string    `json:"id"`
	Token       string    `json:"token,omitempty"`
	Tenant      string    `json:"tenant,omitempty"`
	Scopes      []string  `json:"scopes"`
	Created     time.Time `json:"created,omitzero"`
	Expires     time.Time `json:"expires,omitzero"`
	Description string    `json:"description,omitempty"`
	Tenants     []string  `json:"tenants,omitempty"`
}

func tokenView(tenant string, t tenantauth.Token) tokenJSON {
	scopes := make([]string, len(t.Scopes))
	for i, s := range t.Scopes {
		scopes[i] = string(s)
	}
	return tokenJSON{ID: t.ID, Tenant: tenant, Scopes: scopes, Created: t.Created, Expires: t.Expires,
		Description: t.Description, Tenants: t.Tenants}
}

// tenantView shows one tenant of c, or nil if it has none.
func tenantView(c *runtimeconfig.Config, tenant string) any {
	t, ok := c.File.Tenants[tenant]
	if !ok {
		return map[string]string{"tenant": tenant}
	}
	out := tenantJSON{Tenant: tenant, Tokens: []tokenJSON{}}
	if !t.Limits.IsZero() {
		_ = t.Limits.Decode(&out.Limits)
	}
	for _, tok := range t.Tokens {
		out.Tokens = append(out.Tokens, tokenView("", tok))
	}
	return out
}

// listTenants shows every tenant with its limits and token metadata, and
// the operator tokens.
func (a *runtimeAdmin) listTenants(w http.ResponseWriter, r *http.Request) {
	c := a.watcher.Current()
	tenants := []any{}
	for _, id := range c.File.TenantIDs() {
		tenants = append(tenants, tenantView(c, id))
	}
	admins := []tokenJSON{}
	for _, t := range c.File.AdminTokens {
		admins = append(admins, tokenView("", t))
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": map[string]any{"tenants": tenants, "admin_tokens": admins}})
}

// createTenant creates a tenant, with limits of its own if given:
// {"tenant": "acme", "limits": {"max_series": 100000}}.
func (a *runtimeAdmin) createTenant(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Tenant string         `json:"tenant"`
		Limits map[string]any `json:"limits"`
	}
	if !decodeBody(w, r, &req) {
		return
	}
	if err := tenantauth.ValidateID(req.Tenant); err != nil {
		querier.WriteError(w, r, http.StatusBadRequest, "tenant: "+err.Error())
		return
	}
	a.apply(w, r, runtimeconfig.Op{Action: runtimeconfig.OpTenantCreate, Tenant: req.Tenant, Limits: yamlValues(req.Limits)}, http.StatusCreated, nil)
}

// deleteRecord removes a tenant with its tokens and limits: it can no
// longer push or query. Its data stays (DELETE /api/v1/admin/tenants/X
// deletes that).
func (a *runtimeAdmin) deleteRecord(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenant")
	if err := tenantauth.ValidateID(tenant); err != nil {
		querier.WriteError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	a.apply(w, r, runtimeconfig.Op{Action: runtimeconfig.OpTenantDelete, Tenant: tenant}, http.StatusOK, map[string]string{"tenant": tenant})
}

// setLimits sets limits of a tenant, key by key; null removes one, so the
// default applies again: {"max_series": 100000, "ingestion_rate": null}.
func (a *runtimeAdmin) setLimits(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenant")
	if err := tenantauth.ValidateID(tenant); err != nil {
		querier.WriteError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	var set map[string]any
	if !decodeBody(w, r, &set) {
		return
	}
	for k := range set {
		if !slices.Contains(runtimeconfig.LimitKeys(), k) {
			querier.WriteError(w, r, http.StatusBadRequest, fmt.Sprintf("unknown limit %q", k))
			return
		}
	}
	a.apply(w, r, runtimeconfig.Op{Action: runtimeconfig.OpLimitsSet, Tenant: tenant, Limits: yamlValues(set)}, http.StatusOK, nil)
}

// createToken creates a token and answers with it, the only time it is
// shown: {"tenant": "acme", "scopes": ["write","read"], "expires_in": "720h",
// "description": "prometheus eu-1"}. Without a tenant it creates an
// operator token.
func (a *runtimeAdmin) createToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Tenant      string   `json:"tenant"`
		Scopes      []string `json:"scopes"`
		ExpiresIn   string   `json:"expires_in"`
		Description string   `json:"description"`
		Tenants     []string `json:"tenants"`
	}
	if !decodeBody(w, r, &req) {
		return
	}
	spec, err := tokenSpec(req.Tenant, req.Scopes, req.ExpiresIn)
	if err != nil {
		querier.WriteError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	spec.Description, spec.Tenants = req.Description, req.Tenants
	token, entry, err := runtimeconfig.NewTokenEntry(spec, time.Now())
	if err != nil {
		querier.WriteError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	view := tokenView(req.Tenant, entry)
	view.Token = token
	a.apply(w, r, runtimeconfig.Op{Action: runtimeconfig.OpTokenCreate, Tenant: req.Tenant, Token: &entry}, http.StatusCreated, view)
}

// tokenSpec checks what a token request asks for.
func tokenSpec(tenant string, scopes []string, expiresIn string) (runtimeconfig.TokenSpec, error) {
	spec := runtimeconfig.TokenSpec{Tenant: tenant}
	if tenant != "" {
		if err := tenantauth.ValidateID(tenant); err != nil {
			return spec, fmt.Errorf("tenant: %w", err)
		}
	}
	if len(scopes) == 0 {
		return spec, errors.New("scopes: name at least one of write, read, rules, alerts, delete, admin")
	}
	var err error
	if spec.Scopes, err = tenantauth.ParseScopes(strings.Join(scopes, ",")); err != nil {
		return spec, fmt.Errorf("scopes: %w", err)
	}
	if expiresIn != "" {
		if spec.TTL, err = time.ParseDuration(expiresIn); err != nil || spec.TTL <= 0 {
			return spec, fmt.Errorf("expires_in: %q is not a positive duration such as 720h", expiresIn)
		}
	}
	return spec, nil
}

// revokeToken removes a token, wherever it is.
func (a *runtimeAdmin) revokeToken(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	a.apply(w, r, runtimeconfig.Op{Action: runtimeconfig.OpTokenRevoke, TokenID: id}, http.StatusOK, map[string]string{"id": id})
}

// yamlValues turns JSON values into what the YAML limits decode: numbers
// that are whole stay integers.
func yamlValues(m map[string]any) map[string]any {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		if f, ok := v.(float64); ok && f == float64(int64(f)) {
			v = int64(f)
		}
		out[k] = v
	}
	return out
}
