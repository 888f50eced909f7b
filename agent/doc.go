// Package agent is the FluxPulse host agent: it collects a host's metrics
// with node_exporter's collectors, in process, and sends them to FluxPulse
// (or any remote-write receiver) through a write-ahead log.
//
// Responsibilities:
//   - Collect, every -scrape.interval: CPU per core, memory, disk I/O,
//     filesystems, network interfaces, load, boot time and time (uptime),
//     process counts, systemd unit states where systemd runs, the status of
//     the processes named with -process, and a heartbeat series.
//   - Send only metric families on the allow-list (allowlist.go); anything
//     else a collector produces is dropped and counted.
//   - Write every sample to the WAL (Prometheus agent mode, tsdb/agent)
//     before it is sent; send with Prometheus' remote-write queue
//     (storage/remote), retrying with backoff.
//
// Lifecycle: New sets up the collectors and starts nothing. Gather collects
// once without writing (the -dry-run). Run opens the WAL, then:
//
//	backlog ──(caught up, under appendMu)──► queue ──(ctx ends)──► closed
//
// In the backlog state, collections go to the WAL while the backlog sender
// reads the WAL from its last checkpoint and sends every sample from the
// saved send progress on; Prometheus' queue is not started yet, because its
// WAL watcher sends only samples newer than its own start and would skip
// what an earlier run left unsent. Once the backlog sender has caught up,
// it holds appendMu, sends the last records, starts the queue and waits
// until the watcher has fixed its start; from then on the queue sends
// everything. On shutdown the queue gets a few seconds to flush, the send
// progress is saved and the WAL is closed.
//
// Invariants:
//   - Nothing leaves the host that is not on the allow-list, and the agent
//     reads no command lines, environments, logs or file contents: named
//     processes are matched on /proc/<pid>/comm only.
//   - A sample is in the WAL before anything sends it.
//   - Every sample in the WAL is sent by exactly one of the backlog sender
//     and the queue, and samples of a series are sent in time order, so a
//     receiver without an out-of-order window accepts all of them. Samples
//     older than -wal.retention that could not be sent are dropped.
//   - The send progress (WALDir/sent-until) never claims more than was
//     sent; sending a sample again is harmless (receivers ignore exact
//     duplicates), so a stale progress file only costs bandwidth.
//   - The queue has one shard, so its highest sent timestamp means every
//     older sample was sent.
//   - Only this package touches kingpin, whose global command line
//     configures node_exporter's collectors; it parses fixed arguments once
//     per process, never os.Args.
package agent
