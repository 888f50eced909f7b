// Package ruler evaluates each tenant's recording and alerting rules and
// sends the alerts they raise to Alertmanager.
//
// Responsibilities:
//   - Rule storage: rule groups in the Prometheus rule-file format, one
//     object per group at <tenant>/rules/<namespace>/<group>.yaml in the
//     bucket (namespace and group base64url-encoded, so any string is a
//     safe object name). The bucket encrypts them with the tenant's key.
//   - The rules configuration API of Cortex and Mimir (YAML bodies) under
//     /api/v1/rules and /prometheus/config/v1/rules, with validation
//     (PromQL, templates, fields, duplicates) and per-tenant limits on
//     groups, rules per group and evaluation interval.
//   - Evaluation: one Prometheus rules.Manager per tenant, fed from memory
//     by a GroupLoader, querying through the shared PromQL engine with a
//     context that names the tenant, and writing results (recording rules,
//     ALERTS and ALERTS_FOR_STATE) through a Pusher (the distributor), so
//     that they are validated, limited and counted like any push.
//   - Notification: one Prometheus notifier.Manager per tenant with
//     alerting rules and an Alertmanager URL (-ruler.alertmanager-url, or
//     the tenant's ruler_alertmanager_url limit), sending X-Scope-OrgID;
//     without one, to the tenant's own Alertmanager in FluxPulse
//     (Dependencies.Alertmanager: an in-process handler, or a URL with the
//     cluster secret when roles run apart).
//   - The Prometheus API's GET /api/v1/rules and /api/v1/alerts for the
//     tenant of the request.
//
// State machine of a tenant (owned by the Run goroutine):
//
//	absent ──sync finds rule objects──► active (manager running, groups loaded)
//	active ──sync: objects changed────► active (manager.Update; unchanged groups keep their state)
//	active ──sync: no objects left────► absent (manager stopped, notifier drained, metrics removed)
//	any    ──Run's context ends───────► stopped
//
// A sync of every tenant runs when Run starts and every
// -ruler.poll-interval; a change through the API of this process syncs that
// tenant at once. Other processes sharing the bucket see the change on their
// next poll.
//
// Invariants:
//   - Only the Run goroutine creates, updates and stops tenants; HTTP
//     handlers read them under a read lock and write only to the bucket.
//   - A stored group has passed the same validation as the API's: a group
//     that no longer loads (edited by hand) is skipped and logged, never
//     allowed to stop the tenant's other groups.
//   - Every metric registered for a tenant (rule group and notifier
//     metrics, labelled tenant) is unregistered when the tenant goes away,
//     so that a tenant can come back without a duplicate registration.
//   - New starts no goroutine; Run blocks until its context ends and stops
//     every manager and notifier before returning.
package ruler
