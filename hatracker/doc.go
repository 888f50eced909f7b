// Package hatracker deduplicates the samples of Prometheus HA pairs, as
// Cortex and Mimir define it: two (or more) Prometheus servers scrape the
// same targets and send the same series, told apart only by a replica
// label (__replica__) under a shared cluster label (cluster). For each
// tenant and cluster one replica is elected; pushes from the others are
// answered 202 and dropped, and the replica label is removed from what is
// stored. When the elected replica sends nothing for the failover timeout,
// the next replica to push takes over.
//
// The election is kept in a KV store: dskit's memberlist KV when roles
// run apart, so that every distributor elects the same replica, and an
// in-process store in -target=all. The value kept per (tenant, cluster) is
// a Replica whose merge takes the later election, so gossip converges.
package hatracker
