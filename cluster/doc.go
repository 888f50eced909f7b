// Package cluster is how the processes of a FluxPulse cluster find each
// other: dskit's memberlist KV store, gossiped between every process, and
// the ingester hash ring kept in it (dskit's ring, as Cortex, Mimir, Loki
// and Tempo run it; nothing here is a ring or a gossip protocol of its own).
//
// An ingester joins the ring with a BasicLifecycler once its write-ahead
// logs are replayed: it registers ACTIVE with the tokens persisted in its
// data directory (or new ones on its first start), heartbeats, and on
// shutdown goes LEAVING but stays in the ring with its tokens unless
// -ingester.ring.unregister-on-shutdown is set, so that a restart replays
// its WAL and takes back the same series. An instance whose heartbeat is
// older than ten heartbeat timeouts is forgotten by the others.
//
// Distributors and queriers only read the ring. Every process that is
// part of a cluster exports fluxpulse_ring_members and serves the ring's
// and memberlist's status pages.
package cluster
