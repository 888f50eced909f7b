// Package tenantauth decides, once per request, who is calling and for which
// tenants, and carries that decision in the request's context.
//
// Nothing else in FluxPulse reads the X-Scope-OrgID header: handlers call
// Tenant (writes: exactly one tenant) or Tenants (reads: one, or several for
// a federated query) on the context the middleware built. A request without
// a tenant never gets a default one.
//
// Tenant IDs are checked by ValidateID before they reach a file path, an
// object-storage key or a metric label.
package tenantauth
