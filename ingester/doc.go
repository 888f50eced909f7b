// Package ingester keeps one Prometheus TSDB per tenant, with its
// write-ahead log, under <dir>/<tenant>.
//
// Lifecycle: New creates the directory and starts nothing. Run reopens every
// tenant found on disk, several at once, replaying their WALs; Ready turns
// true when that is done. Tenants that push for the first time are created
// lazily; a tenant that is only queried never gets a TSDB. A push waits for a
// TSDB being opened only as long as its context allows. Close closes every
// TSDB cleanly and should come after the HTTP server has drained.
//
// Invariants:
//   - A push that returned without error has been committed to the tenant's
//     WAL (written to the operating system), so killing the process loses
//     none of it.
//   - Nothing of a request body is retained: labels and metadata strings are
//     copied before they are stored.
//   - Per-tenant TSDBs get no metrics registry of their own; the ingester
//     exports per-tenant figures (fluxpulse_ingester_*) instead.
//   - A TSDB is never closed under a user: pushes, queriers (until Close)
//     and background work hold their tenant, and DeleteTenant and Close
//     wait for the holders to finish. While a tenant is being deleted, its
//     name stays taken: new pushes and queries wait, then see it empty.
package ingester
