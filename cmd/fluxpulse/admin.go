package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/fluxpulse/fluxpulse/blockstore"
	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/encryption"
	"github.com/fluxpulse/fluxpulse/ingester"
	"github.com/fluxpulse/fluxpulse/querier"
	"github.com/fluxpulse/fluxpulse/tenantauth"
	"github.com/fluxpulse/fluxpulse/tenantcopy"
)

// admin serves the administrative endpoints (admin scope).
type admin struct {
	raw    bucket.Bucket
	enc    bucket.Bucket
	keys   *encryption.Keyring
	ing    tenantDeleter
	store  tenantForgetter
	logger *slog.Logger
	// audit records an administrative action; set by the server.
	audit func(r *http.Request, action, tenant, outcome string, details map[string]any)
	// copySources are where a copy of a tenant comes from.
	copySources func() (tenantcopy.Sources, error)
}

// tenantDeleter drops what the ingesters hold of a tenant.
type tenantDeleter interface {
	DeleteTenant(ctx context.Context, tenant string) error
}

// localTenants deletes tenants of the ingester of this process.
type localTenants struct{ ing *ingester.Ingester }

// DeleteTenant implements tenantDeleter.
func (l localTenants) DeleteTenant(_ context.Context, tenant string) error {
	return l.ing.DeleteTenant(tenant)
}

// operatorOnly refuses a request that does not carry an operator token.
func operatorOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !tenantauth.IsOperator(r.Context()) {
			http.Error(w, "only an operator token (one created without -tenant) may do this", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// tenantForgetter drops what a reader keeps of a tenant: the block
// store's indexes.
type tenantForgetter interface {
	Forget(tenant string)
}

// addAdmin serves the administrative endpoints (admin scope) over the
// ingester and block store of this process.
func (p *process) addAdmin(ing tenantDeleter, store tenantForgetter) {
	a := &admin{raw: p.storage.raw, enc: p.storage.enc, keys: p.storage.keys, ing: ing, store: store, logger: p.logger, audit: p.obs.admin,
		copySources: p.copySources}
	a.register(p.public, p.auth)
}

// tenantOf returns the tenant named in the path if the request may act on
// it, else writes the error.
func (a *admin) tenantOf(w http.ResponseWriter, r *http.Request) (string, bool) {
	tenant := r.PathValue("tenant")
	if err := tenantauth.ValidateID(tenant); err != nil {
		querier.WriteError(w, r, http.StatusBadRequest, err.Error())
		return "", false
	}
	own, err := tenantauth.Tenant(r.Context())
	if err != nil || own != tenant {
		querier.WriteError(w, r, http.StatusForbidden, fmt.Sprintf("the request's tenant (X-Scope-OrgID or token) must be %q, the tenant in the path", tenant))
		return "", false
	}
	return tenant, true
}

// deleteTenant crypto-shreds a tenant: its data keys are deleted, so every
// object it has in the bucket is unreadable at once; the ingester drops its
// local data and the store forgets its blocks. The compactor removes the
// objects in the background.
func (a *admin) deleteTenant(w http.ResponseWriter, r *http.Request) {
	tenant, ok := a.tenantOf(w, r)
	if !ok {
		return
	}
	err := a.keys.DeleteTenantKeys(r.Context(), tenant)
	if err == nil {
		err = a.ing.DeleteTenant(r.Context(), tenant)
	}
	a.store.Forget(tenant)
	if err != nil {
		a.audit(r, "tenant.delete", tenant, "failure", map[string]any{"error": err.Error()})
		querier.WriteError(w, r, http.StatusInternalServerError, "delete tenant: "+err.Error())
		return
	}
	a.audit(r, "tenant.delete", tenant, "success", nil)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": map[string]string{
		"tenant": tenant, "state": "data keys deleted: the tenant's data is unreadable; its objects are removed in the background"}})
}

// blocks reports a tenant's blocks in the bucket.
func (a *admin) blocks(w http.ResponseWriter, r *http.Request) {
	tenant, ok := a.tenantOf(w, r)
	if !ok {
		return
	}
	infos, err := blockstore.Report(r.Context(), a.raw, a.enc, tenant)
	if err != nil {
		querier.WriteError(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	a.audit(r, "blocks.report", tenant, "success", map[string]any{"blocks": len(infos)})
	if infos == nil {
		infos = []blockstore.BlockInfo{}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": infos})
}

// register adds the admin routes behind admin-scope authentication.
func (a *admin) register(mux *http.ServeMux, auth *tenantauth.Authenticator) {
	wrap := func(h http.HandlerFunc) http.Handler {
		return auth.Middleware(tenantauth.ScopeAdmin, querier.WriteError, h)
	}
	mux.Handle("DELETE /api/v1/admin/tenants/{tenant}", wrap(a.deleteTenant))
	mux.Handle("GET /api/v1/admin/tenants/{tenant}/blocks", wrap(a.blocks))
	mux.Handle("GET /api/v1/admin/tenants/{tenant}/copy", wrap(a.copyTenant))
}
