// Package usage counts what each tenant uses, for billing: samples,
// histograms, exemplars and bytes received, samples rejected, queries,
// samples and series queried (counters), and active series and stored
// bytes (gauges, sampled).
//
// Responsibilities:
//   - Recorder.Add counts, on every push and query. It is lock-free once a
//     tenant has been seen: a sync.Map lookup and an atomic add.
//   - The counters and the latest gauge sample are exposed on /metrics as
//     fluxpulse_usage_<kind>_total{tenant} and fluxpulse_usage_<gauge>{tenant}
//     through a collector registered on the injected Registerer.
//   - Recorder.Run keeps an hourly record: when the clock leaves an hour it
//     samples the gauges (GaugeFunc) and writes that hour's file; it writes
//     the hour in progress every minute and, marked partial, when it stops.
//   - Report (files only) and Recorder.Report (files plus live figures)
//     return rows per tenant and hour; WriteJSON and WriteCSV render them;
//     Recorder.Handler serves them to the admin endpoint.
//
// Files: <dir>/<YYYY-MM-DDTHH>Z.json, one per UTC hour, written atomically
// (temporary file, fsync, rename, fsync of the directory). See
// docs/audit-and-usage.md for the format.
//
// Invariants:
//   - Every Add lands in exactly one hour: an hour's counters are the
//     difference between two snapshots of the totals, and the snapshot that
//     closes an hour is the one that starts the next.
//   - A restart loses nothing that was written: a new Recorder reads the
//     file of the hour in progress and adds its own counts to it. Without a
//     clean stop it loses at most the last minute's counts.
//   - Hour files are only ever replaced whole; a closed hour whose write
//     failed is kept in memory and written again on every tick.
//   - One Recorder writes a directory at a time; readers (the CLI, Report)
//     may read it at any time.
//   - A nil *Recorder counts nothing and reports nothing.
//
// Counters on /metrics count since the process started (rate() handles
// restarts); the hour files are what billing should use. Tenants are kept
// in memory for the life of the process: they are authenticated tenants,
// not arbitrary strings.
package usage
