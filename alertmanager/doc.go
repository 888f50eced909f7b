// Package alertmanager is FluxPulse's multi-tenant Alertmanager: every
// tenant configures its own receivers, routes, inhibition rules, templates
// and silences, and gets notifications from its own Alertmanager (#16).
//
// Responsibilities:
//   - One Alertmanager per tenant, built from the packages of
//     github.com/prometheus/alertmanager as cmd/alertmanager wires them
//     (provider/mem, silence, nflog, inhibit, dispatch, notify, api/v2),
//     without clustering. It starts when the tenant has a configuration
//     (or uses the fallback one, -alertmanager.configs.fallback), reloads
//     when the configuration changes, and stops when it is deleted.
//   - Storage in the tenant's prefix of the bucket, which encrypts it with
//     the tenant's key: <tenant>/alertmanager/config.yaml (templates and
//     configuration), silences and nflog (Alertmanager's snapshots),
//     written every -alertmanager.persist-interval when they changed, at
//     shutdown, and, for silences, whenever the API changes one. They are
//     read back when the tenant's Alertmanager starts, so a restart keeps
//     silences and the notification log (no repeated notification within
//     repeat_interval).
//   - The configuration API of Cortex and Mimir (GET, POST, DELETE
//     /api/v1/alerts; template_files and alertmanager_config), checked
//     with Alertmanager's own parser and the tenant's limits; and every
//     tenant's Alertmanager API v2 below /alertmanager (alerts, alert
//     groups, silences, receivers, status), for amtool and Grafana.
//   - PushHandler: the ruler's alerts, in process or over the cluster's
//     internal route.
//   - Safety where customers write the receiver configuration: the
//     receivers firewall (every connection of every integration, e-mail
//     included, is checked after name resolution), fields naming server
//     files or the server's proxy or AWS credentials refused, per-tenant
//     limits (configuration and template sizes, alerts, silences,
//     notification rate per integration), secrets never shown (GET
//     answers <secret>, errors are redacted), every configuration change
//     and silence in the audit log.
//
// State machine of a tenant:
//
//	absent ──configuration stored, or fallback used────► running
//	running ──configuration changed (hash)─────────────► running (reloaded: alerts, silences, nflog kept)
//	running ──configuration deleted (API, or gone on a poll)─► absent (state deleted with it)
//	running ──Run's context ends────────────────────────► stopped (state written)
//
// Invariants:
//   - Starting, reloading and stopping tenants are serialized (syncMu);
//     requests read the running tenants under a read lock.
//   - A tenant whose stored state exists but cannot be read does not
//     start: starting empty would overwrite the state at the next
//     snapshot.
//   - No snapshot is written for a tenant after it stopped; a deletion
//     stops the tenant before it deletes the objects.
//   - Every metric registered for a tenant is unregistered when it stops.
//   - New starts no goroutine; Run blocks until its context ends and
//     stops every tenant before returning.
package alertmanager
