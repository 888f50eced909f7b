package agent

import (
	"maps"
	"slices"
)

// Metric families the agent produces itself.
const (
	// HeartbeatMetric is 1 at every collection, so a host whose series
	// stop arriving is detectable with absent_over_time or with
	// `max_over_time(x[1h]) unless max_over_time(x[2m])`.
	HeartbeatMetric = "fluxpulse_agent_heartbeat"
	// ProcessUpMetric is 1 when at least one process with the given name
	// runs, else 0; one series for every name in -process.
	ProcessUpMetric = "fluxpulse_agent_process_up"
	// ProcessesMetric counts the processes with the given name.
	ProcessesMetric = "fluxpulse_agent_processes"
)

// collectors are the node_exporter collectors the agent runs. Each one
// reads kernel counters from /proc or /sys, or unit states from systemd;
// none reads process command lines, environments, logs or file contents.
// systemd is added only where systemd runs.
var collectors = []string{"cpu", "meminfo", "diskstats", "filesystem", "netdev", "loadavg", "stat", "time", "processes"}

// allowList maps every metric family that may leave the host to the reason
// it is sent. Families a collector produces that are not listed are dropped
// and counted in fluxpulse_agent_dropped_series_total: a new node_exporter
// version cannot widen what is sent without a change here.
var allowList = map[string]string{
	// CPU, per core (label cpu) and mode; the overall figure is their sum.
	"node_cpu_seconds_total": "CPU time per core and mode",

	// Memory.
	"node_memory_MemTotal_bytes":     "memory",
	"node_memory_MemFree_bytes":      "memory",
	"node_memory_MemAvailable_bytes": "memory",
	"node_memory_Buffers_bytes":      "memory",
	"node_memory_Cached_bytes":       "memory",
	"node_memory_Shmem_bytes":        "memory",
	"node_memory_Slab_bytes":         "memory",
	"node_memory_SReclaimable_bytes": "memory",
	"node_memory_Dirty_bytes":        "memory",
	"node_memory_SwapTotal_bytes":    "swap",
	"node_memory_SwapFree_bytes":     "swap",
	"node_memory_SwapCached_bytes":   "swap",

	// Disk I/O per block device.
	"node_disk_reads_completed_total":          "disk I/O",
	"node_disk_writes_completed_total":         "disk I/O",
	"node_disk_read_bytes_total":               "disk I/O",
	"node_disk_written_bytes_total":            "disk I/O",
	"node_disk_read_time_seconds_total":        "disk I/O latency",
	"node_disk_write_time_seconds_total":       "disk I/O latency",
	"node_disk_io_time_seconds_total":          "disk utilisation",
	"node_disk_io_time_weighted_seconds_total": "disk queue",
	"node_disk_io_now":                         "disk queue",

	// Filesystems per mount point.
	"node_filesystem_size_bytes":   "disk space",
	"node_filesystem_avail_bytes":  "disk space",
	"node_filesystem_free_bytes":   "disk space",
	"node_filesystem_files":        "inodes",
	"node_filesystem_files_free":   "inodes",
	"node_filesystem_readonly":     "read-only remounts",
	"node_filesystem_device_error": "unreadable filesystems",

	// Network interfaces.
	"node_network_receive_bytes_total":    "network traffic",
	"node_network_transmit_bytes_total":   "network traffic",
	"node_network_receive_packets_total":  "network traffic",
	"node_network_transmit_packets_total": "network traffic",
	"node_network_receive_errs_total":     "network errors",
	"node_network_transmit_errs_total":    "network errors",
	"node_network_receive_drop_total":     "network drops",
	"node_network_transmit_drop_total":    "network drops",

	// Load, boot time and uptime (node_time_seconds - node_boot_time_seconds).
	"node_load1":             "load",
	"node_load5":             "load",
	"node_load15":            "load",
	"node_boot_time_seconds": "boot time",
	"node_time_seconds":      "uptime",

	// Process and scheduler counts (numbers only, no process data).
	"node_procs_running":           "processes runnable",
	"node_procs_blocked":           "processes blocked on I/O",
	"node_forks_total":             "process creation rate",
	"node_context_switches_total":  "scheduler activity",
	"node_processes_state":         "processes per state",
	"node_processes_pids":          "process count",
	"node_processes_threads":       "thread count",
	"node_processes_max_processes": "pid limit",
	"node_processes_max_threads":   "thread limit",

	// systemd units (name, state, type) where systemd runs.
	"node_systemd_unit_state":     "service states",
	"node_systemd_system_running": "systemd health",
	"node_systemd_units":          "units per state",

	// Which collectors worked, so a failing one is visible.
	"node_scrape_collector_success": "collector health",

	// The agent's own series.
	HeartbeatMetric: "host heartbeat",
	ProcessUpMetric: "named process up or down",
	ProcessesMetric: "named process count",
}

// AllowList returns the metric families that may leave the host, sorted.
func AllowList() []string {
	return slices.Sorted(maps.Keys(allowList))
}

// Allowed reports whether the metric family name may leave the host.
func Allowed(name string) bool {
	_, ok := allowList[name]
	return ok
}
